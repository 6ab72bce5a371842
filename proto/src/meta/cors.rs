//! A bucket's CORS configuration, as stored in the Raft group. The gateway validates it
//! (AWS rules) before committing it and evaluates it on every cross-origin request.

use serde::{Deserialize, Serialize};

/// The rules of PutBucketCors, in the order given (the first matching rule wins).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct CorsConfig {
    pub rules: Vec<CorsRule>,
}

/// One `<CORSRule>`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct CorsRule {
    /// Optional rule name (`<ID>`).
    pub id: Option<String>,
    /// Origins, each with at most one `*` wildcard (`*` alone matches every origin).
    pub allowed_origins: Vec<String>,
    /// `GET`, `PUT`, `HEAD`, `POST` and/or `DELETE`.
    pub allowed_methods: Vec<String>,
    /// Headers a preflight may ask for, each with at most one `*` wildcard.
    pub allowed_headers: Vec<String>,
    /// Response headers scripts may read.
    pub expose_headers: Vec<String>,
    /// How long a browser may cache a preflight answer.
    pub max_age_seconds: Option<u32>,
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::meta::{MetaCommand, MetaError, MetaResult, Metadata};

    fn config(origin: &str) -> CorsConfig {
        CorsConfig {
            rules: vec![CorsRule {
                allowed_origins: vec![origin.into()],
                allowed_methods: vec!["GET".into()],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn set_replace_and_delete_cors() {
        let mut m = Metadata::default();
        m.apply(&MetaCommand::CreateBucket {
            id: Uuid::new_v4(),
            name: "b".into(),
            owner: String::new(),
            region: "us-east-1".into(),
            created_ms: 0,
        });
        let set = |cors| MetaCommand::SetBucketCors {
            bucket: "b".into(),
            cors,
        };
        let MetaResult::Bucket(b) = m.apply(&set(Some(config("https://a.example")))) else {
            panic!("SetBucketCors refused")
        };
        assert_eq!(b.cors, Some(config("https://a.example")));
        m.apply(&set(Some(config("*"))));
        assert_eq!(m.buckets["b"].cors, Some(config("*")));
        m.apply(&set(None));
        assert_eq!(m.buckets["b"].cors, None);
        assert_eq!(
            m.apply(&MetaCommand::SetBucketCors {
                bucket: "missing".into(),
                cors: Some(config("*")),
            }),
            MetaResult::Err(MetaError::NoSuchBucket("missing".into()))
        );
    }

    #[test]
    fn buckets_stored_before_cors_existed_still_load() {
        let old = r#"{"id":"00000000-0000-0000-0000-000000000001","name":"b","created_ms":1,
                      "owner":"k","region":"us-east-1"}"#;
        let b: crate::meta::Bucket = serde_json::from_str(old).unwrap();
        assert_eq!(b.cors, None);
    }
}
