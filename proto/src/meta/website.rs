//! A bucket's static-website configuration (S3's `WebsiteConfiguration` plus Cairn's SPA
//! fallback) and the semantic checks S3 applies to it before it is stored.
//!
//! The checks run at the edges (the gateway's PutBucketWebsite, the admin CLI), never in
//! [`super::Metadata::apply`]: a replica running another version must apply the same
//! committed commands the same way.

use serde::{Deserialize, Serialize};

/// Most routing rules one configuration may hold (as S3).
pub const MAX_ROUTING_RULES: usize = 50;

/// How a bucket is served by the website endpoint.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct WebsiteConfig {
    /// Suffix appended to requests for `/` and `dir/` (`IndexDocument/Suffix`).
    pub index_document: Option<String>,
    /// Key served with status 404 when a key is missing (`ErrorDocument/Key`).
    pub error_document: Option<String>,
    /// Redirects every request to another host; excludes every other setting.
    pub redirect_all: Option<RedirectAll>,
    /// Conditional redirects, evaluated in order.
    pub routing_rules: Vec<RoutingRule>,
    /// Cairn extension: key served with status 200 for a missing key whose last path
    /// segment has no file extension (client-side routed single-page apps).
    pub spa_fallback: Option<String>,
}

/// `http` or `https`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Http,
    Https,
}

impl Protocol {
    /// Parses S3's spelling (`http` / `https`).
    pub fn parse(s: &str) -> Option<Protocol> {
        match s {
            "http" => Some(Protocol::Http),
            "https" => Some(Protocol::Https),
            _ => None,
        }
    }

    /// The URL scheme.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Https => "https",
        }
    }
}

/// `RedirectAllRequestsTo`: every request goes to `host_name`, keeping its path.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct RedirectAll {
    pub host_name: String,
    /// The request's protocol when `None`.
    pub protocol: Option<Protocol>,
}

/// One `RoutingRule`: when `condition` holds (always, if `None`), answer with `redirect`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct RoutingRule {
    pub condition: Option<Condition>,
    pub redirect: Redirect,
}

/// When a routing rule applies; every given test must hold.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Condition {
    /// The requested key starts with this prefix.
    pub key_prefix_equals: Option<String>,
    /// Serving the request failed with this HTTP status (4XX or 5XX).
    pub http_error_code_returned_equals: Option<u16>,
}

/// Where a routing rule sends the client.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Redirect {
    /// The request's protocol when `None`.
    pub protocol: Option<Protocol>,
    /// The request's host when `None`.
    pub host_name: Option<String>,
    /// Replaces the condition's `key_prefix_equals` (or nothing) at the start of the key.
    pub replace_key_prefix_with: Option<String>,
    /// Replaces the whole key.
    pub replace_key_with: Option<String>,
    /// 3XX except 300; 301 when `None`.
    pub http_redirect_code: Option<u16>,
}

/// Status of a routing-rule redirect without `HttpRedirectCode` (as S3).
pub const DEFAULT_REDIRECT_CODE: u16 = 301;

impl Redirect {
    /// The status to answer with.
    pub fn code(&self) -> u16 {
        self.http_redirect_code.unwrap_or(DEFAULT_REDIRECT_CODE)
    }
}

/// Which S3 error a refused configuration gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvalidKind {
    /// `InvalidArgument`.
    Argument,
    /// `InvalidRequest`.
    Request,
}

/// Why a website configuration is refused, with S3's message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidWebsite {
    pub kind: InvalidKind,
    pub message: String,
}

fn argument(message: impl Into<String>) -> InvalidWebsite {
    InvalidWebsite {
        kind: InvalidKind::Argument,
        message: message.into(),
    }
}

fn request(message: impl Into<String>) -> InvalidWebsite {
    InvalidWebsite {
        kind: InvalidKind::Request,
        message: message.into(),
    }
}

/// Whether `code` is a status S3 accepts as a redirect code (3XX except 300).
pub fn valid_redirect_code(code: u16) -> bool {
    (301..=399).contains(&code)
}

/// Whether `code` is a status S3 accepts in `HttpErrorCodeReturnedEquals` (4XX or 5XX).
pub fn valid_error_code(code: u16) -> bool {
    (400..=599).contains(&code)
}

impl WebsiteConfig {
    /// Applies S3's checks (messages as S3 words them); Cairn's SPA fallback must name a key
    /// and needs an index document.
    pub fn validate(&self) -> Result<(), InvalidWebsite> {
        if let Some(all) = &self.redirect_all {
            if self.index_document.is_some()
                || self.error_document.is_some()
                || !self.routing_rules.is_empty()
                || self.spa_fallback.is_some()
            {
                return Err(argument(
                    "RedirectAllRequestsTo cannot be provided in conjunction with other Routing Rules.",
                ));
            }
            if all.host_name.is_empty() {
                return Err(request(
                    "A host name must be provided to redirect all requests (e.g. \"example.com\").",
                ));
            }
            return Ok(());
        }
        let Some(suffix) = &self.index_document else {
            return Err(argument(
                "A value for IndexDocument Suffix must be provided if RedirectAllRequestsTo is empty",
            ));
        };
        if suffix.is_empty() || suffix.contains('/') {
            return Err(argument("The IndexDocument Suffix is not well formed"));
        }
        if self.error_document.as_ref().is_some_and(String::is_empty) {
            return Err(argument("The ErrorDocument Key is not well formed"));
        }
        if self.spa_fallback.as_ref().is_some_and(String::is_empty) {
            return Err(argument("The SPA fallback key is not well formed"));
        }
        if self.routing_rules.len() > MAX_ROUTING_RULES {
            return Err(request(format!(
                "The number of routing rules must not exceed {MAX_ROUTING_RULES}."
            )));
        }
        self.routing_rules
            .iter()
            .try_for_each(RoutingRule::validate)
    }
}

impl RoutingRule {
    fn validate(&self) -> Result<(), InvalidWebsite> {
        if let Some(c) = &self.condition {
            if c.key_prefix_equals.is_none() && c.http_error_code_returned_equals.is_none() {
                return Err(request(
                    "Condition cannot be empty. To redirect all requests without a condition, \
                     the condition element shouldn't be present.",
                ));
            }
            if let Some(code) = c.http_error_code_returned_equals
                && !valid_error_code(code)
            {
                return Err(request(format!(
                    "The provided HTTP error code ({code}) is not valid. Valid codes are 4XX or 5XX."
                )));
            }
        }
        let r = &self.redirect;
        if r.replace_key_with.is_some() && r.replace_key_prefix_with.is_some() {
            return Err(request(
                "You can only define ReplaceKeyPrefix or ReplaceKey but not both.",
            ));
        }
        if let Some(code) = r.http_redirect_code
            && !valid_redirect_code(code)
        {
            return Err(request(format!(
                "The provided HTTP redirect code ({code}) is not valid. Valid codes are 3XX except 300."
            )));
        }
        if r.host_name.as_ref().is_some_and(String::is_empty) {
            return Err(request("The HostName of a redirect must not be empty."));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{Bucket, MetaCommand, MetaError, MetaResult, Metadata};

    fn site() -> WebsiteConfig {
        WebsiteConfig {
            index_document: Some("index.html".into()),
            error_document: Some("404.html".into()),
            ..Default::default()
        }
    }

    fn rule(condition: Option<Condition>, redirect: Redirect) -> RoutingRule {
        RoutingRule {
            condition,
            redirect,
        }
    }

    #[track_caller]
    fn refused(config: &WebsiteConfig, kind: InvalidKind, words: &str) {
        let err = config.validate().unwrap_err();
        assert_eq!(err.kind, kind, "{err}");
        assert!(err.message.contains(words), "{err}");
    }

    #[test]
    fn accepts_index_error_and_rules() {
        let mut c = site();
        c.routing_rules = vec![
            rule(
                Some(Condition {
                    key_prefix_equals: Some("docs/".into()),
                    ..Default::default()
                }),
                Redirect {
                    replace_key_prefix_with: Some("documents/".into()),
                    http_redirect_code: Some(302),
                    ..Default::default()
                },
            ),
            rule(
                None,
                Redirect {
                    host_name: Some("example.com".into()),
                    protocol: Some(Protocol::Https),
                    ..Default::default()
                },
            ),
        ];
        c.spa_fallback = Some("index.html".into());
        assert_eq!(c.validate(), Ok(()));
        let all = WebsiteConfig {
            redirect_all: Some(RedirectAll {
                host_name: "example.com".into(),
                protocol: None,
            }),
            ..Default::default()
        };
        assert_eq!(all.validate(), Ok(()));
    }

    #[test]
    fn refuses_what_s3_refuses() {
        refused(
            &WebsiteConfig::default(),
            InvalidKind::Argument,
            "IndexDocument Suffix must be provided",
        );
        for suffix in ["", "a/index.html"] {
            let mut c = site();
            c.index_document = Some(suffix.into());
            refused(&c, InvalidKind::Argument, "not well formed");
        }
        let mut c = site();
        c.error_document = Some(String::new());
        refused(&c, InvalidKind::Argument, "ErrorDocument Key");

        let mut c = site();
        c.redirect_all = Some(RedirectAll {
            host_name: "example.com".into(),
            protocol: None,
        });
        refused(&c, InvalidKind::Argument, "in conjunction");
        let empty_host = WebsiteConfig {
            redirect_all: Some(RedirectAll::default()),
            ..Default::default()
        };
        refused(&empty_host, InvalidKind::Request, "host name");

        let mut c = site();
        c.routing_rules = vec![rule(
            None,
            Redirect {
                replace_key_with: Some("a".into()),
                replace_key_prefix_with: Some("b".into()),
                ..Default::default()
            },
        )];
        refused(&c, InvalidKind::Request, "but not both");
        for code in [200, 300, 400, 0] {
            c.routing_rules = vec![rule(
                None,
                Redirect {
                    http_redirect_code: Some(code),
                    ..Default::default()
                },
            )];
            refused(&c, InvalidKind::Request, "3XX except 300");
        }
        c.routing_rules = vec![rule(Some(Condition::default()), Redirect::default())];
        refused(&c, InvalidKind::Request, "Condition cannot be empty");
        c.routing_rules = vec![rule(
            Some(Condition {
                http_error_code_returned_equals: Some(302),
                ..Default::default()
            }),
            Redirect::default(),
        )];
        refused(&c, InvalidKind::Request, "4XX or 5XX");
        c.routing_rules = vec![rule(None, Redirect::default()); MAX_ROUTING_RULES + 1];
        refused(&c, InvalidKind::Request, "must not exceed");
    }

    #[test]
    fn apply_sets_and_removes_the_configuration() {
        let mut m = Metadata::default();
        let set = |website: Option<WebsiteConfig>| MetaCommand::SetBucketWebsite {
            bucket: "www".into(),
            website,
        };
        assert_eq!(
            m.apply(&set(Some(site()))),
            MetaResult::Err(MetaError::NoSuchBucket("www".into()))
        );
        m.apply(&MetaCommand::CreateBucket {
            id: uuid::Uuid::new_v4(),
            name: "www".into(),
            owner: String::new(),
            region: "us-east-1".into(),
            created_ms: 1,
        });
        assert_eq!(m.buckets["www"].website, None);
        let MetaResult::Bucket(b) = m.apply(&set(Some(site()))) else {
            panic!("SetBucketWebsite did not answer with the bucket")
        };
        assert_eq!(b.website, Some(site()));
        assert_eq!(m.buckets["www"].website, Some(site()));
        m.apply(&set(None));
        assert_eq!(m.buckets["www"].website, None);
    }

    #[test]
    fn state_without_website_field_still_loads() {
        let old = r#"{"id":"00000000-0000-0000-0000-000000000000","name":"b","created_ms":1,"owner":"","region":"us-east-1"}"#;
        let b: Bucket = serde_json::from_str(old).unwrap();
        assert_eq!(b.website, None);
        let mut with = b.clone();
        with.website = Some(site());
        let back: Bucket = serde_json::from_str(&serde_json::to_string(&with).unwrap()).unwrap();
        assert_eq!(back, with);
    }

    #[test]
    fn redirect_code_defaults_to_301() {
        assert_eq!(Redirect::default().code(), 301);
        let r = Redirect {
            http_redirect_code: Some(307),
            ..Default::default()
        };
        assert_eq!(r.code(), 307);
    }
}
