//! SigV4 POST policies (browser uploads with an HTML form).
//!
//! The form carries a base64 JSON policy (`expiration` and `conditions`) and
//! `x-amz-signature` = hex(HMAC-SHA256(signing key, the base64 policy)), with the signing key
//! derived from `x-amz-credential` like any SigV4 signature. [`PostSignature`] checks the
//! signature; [`PostPolicy`] checks the form fields against the conditions. Form field names
//! are compared case-insensitively, as S3 does, so callers pass them lowercased.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use serde_json::Value;
use subtle::ConstantTimeEq;

use super::{ALGORITHM, Credential, Mechanism, hmac_sha256, signing_key};
use crate::error::S3Error;

/// Form fields never covered by conditions (besides `x-ignore-*`).
const UNCONDITIONED_FIELDS: &[&str] = &["x-amz-signature", "file", "policy"];

/// The error for a required field that is missing (S3's wording).
pub fn missing_field(name: &str) -> S3Error {
    S3Error::InvalidArgument(format!(
        "Bucket POST must contain a field named '{name}'.  If it is specified, please check \
         the order of the fields."
    ))
}

/// The signature fields of a POST form, parsed and scope-checked.
#[derive(Debug)]
pub struct PostSignature {
    credential: Credential,
    policy: String,
    signature: String,
}

impl PostSignature {
    /// Reads `x-amz-algorithm`, `x-amz-credential`, `x-amz-date`, `x-amz-signature` and
    /// `policy` from the (lowercase-named) fields and checks the credential scope.
    pub fn from_fields(fields: &BTreeMap<String, String>, region: &str) -> Result<Self, S3Error> {
        let get = |name: &str| fields.get(name).ok_or_else(|| missing_field(name));
        if fields.contains_key("awsaccesskeyid") {
            // A SigV2 form (`AWSAccessKeyId`, `signature`).
            return Err(S3Error::InvalidRequest(
                "The authorization mechanism you have provided is not supported. \
                 Please use AWS4-HMAC-SHA256."
                    .into(),
            ));
        }
        let policy = get("policy")?;
        let algorithm = get("x-amz-algorithm")?;
        if algorithm != ALGORITHM {
            return Err(S3Error::InvalidArgument(format!(
                "Unsupported x-amz-algorithm \"{algorithm}\"; only {ALGORITHM} is supported"
            )));
        }
        let credential = Credential::parse(
            get("x-amz-credential")?,
            Mechanism::Query,
            region,
            get("x-amz-date")?,
        )?;
        Ok(PostSignature {
            credential,
            policy: policy.clone(),
            signature: get("x-amz-signature")?.clone(),
        })
    }

    /// The access key that signed the policy.
    pub fn access_key_id(&self) -> &str {
        &self.credential.access_key_id
    }

    /// Checks the signature with the key's secret; returns the (still base64) policy.
    pub fn verify(&self, secret: &str) -> Result<&str, S3Error> {
        let c = &self.credential;
        let key = signing_key(secret, &c.date, &c.region, &c.service);
        let expected = hmac_sha256(&key, self.policy.as_bytes());
        let mut given = [0u8; 32];
        let well_formed = hex::decode_to_slice(&self.signature, &mut given).is_ok();
        if well_formed && bool::from(expected.ct_eq(&given)) {
            Ok(&self.policy)
        } else {
            Err(S3Error::SignatureDoesNotMatch)
        }
    }
}

/// One condition of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Condition {
    /// The field (lowercase, without `$`) equals the value.
    Eq(String, String),
    /// The field starts with the value (an empty value allows anything).
    StartsWith(String, String),
    /// The file size is within `min..=max`.
    ContentLengthRange(u64, u64),
}

impl Condition {
    /// The condition as the policy spelled it, for error messages.
    fn describe(&self) -> String {
        match self {
            Condition::Eq(f, v) => format!("[\"eq\", \"${f}\", \"{v}\"]"),
            Condition::StartsWith(f, v) => format!("[\"starts-with\", \"${f}\", \"{v}\"]"),
            Condition::ContentLengthRange(a, b) => format!("[\"content-length-range\", {a}, {b}]"),
        }
    }
}

/// A decoded POST policy document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostPolicy {
    expiration: DateTime<Utc>,
    conditions: Vec<Condition>,
}

/// `InvalidPolicyDocument` with a reason.
fn invalid(why: impl Into<String>) -> S3Error {
    S3Error::InvalidPolicyDocument(why.into())
}

/// An integer bound of `content-length-range` (a JSON number or a numeric string).
fn bound(v: &Value) -> Result<u64, S3Error> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or_else(|| invalid("Invalid content-length-range bound"))
}

/// A `$field` operand, lowercased without the `$`.
fn field_name(v: &Value) -> Result<String, S3Error> {
    v.as_str()
        .and_then(|s| s.strip_prefix('$'))
        .map(str::to_ascii_lowercase)
        .ok_or_else(|| invalid("Condition field names must start with '$'"))
}

impl PostPolicy {
    /// Decodes the base64 JSON document.
    pub fn parse(base64_policy: &str) -> Result<Self, S3Error> {
        let raw = BASE64
            .decode(base64_policy.trim())
            .map_err(|_| invalid("Could not decode policy"))?;
        let doc: Value =
            serde_json::from_slice(&raw).map_err(|_| invalid("Could not parse policy"))?;
        let expiration = doc
            .get("expiration")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("Policy missing expiration"))?;
        let expiration = DateTime::parse_from_rfc3339(expiration)
            .map_err(|_| invalid("Invalid Policy: Invalid 'expiration' value"))?
            .with_timezone(&Utc);
        let list = doc
            .get("conditions")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid("Policy missing conditions"))?;
        let mut conditions = Vec::new();
        for c in list {
            match c {
                Value::Object(map) => {
                    for (name, value) in map {
                        let value = value
                            .as_str()
                            .ok_or_else(|| invalid("Condition values must be strings"))?;
                        conditions.push(Condition::Eq(
                            name.trim_start_matches('$').to_ascii_lowercase(),
                            value.to_string(),
                        ));
                    }
                }
                Value::Array(items) => {
                    let op = items.first().and_then(Value::as_str).unwrap_or_default();
                    let condition = match (op.to_ascii_lowercase().as_str(), items.len()) {
                        ("eq", 3) | ("starts-with", 3) => {
                            let field = field_name(&items[1])?;
                            let value = items[2]
                                .as_str()
                                .ok_or_else(|| invalid("Condition values must be strings"))?
                                .to_string();
                            if op.eq_ignore_ascii_case("eq") {
                                Condition::Eq(field, value)
                            } else {
                                Condition::StartsWith(field, value)
                            }
                        }
                        ("content-length-range", 3) => {
                            Condition::ContentLengthRange(bound(&items[1])?, bound(&items[2])?)
                        }
                        _ => return Err(invalid(format!("Invalid condition: {c}"))),
                    };
                    conditions.push(condition);
                }
                _ => return Err(invalid(format!("Invalid condition: {c}"))),
            }
        }
        Ok(PostPolicy {
            expiration,
            conditions,
        })
    }

    /// Checks the expiration and every condition against the form `fields` (lowercase names;
    /// `bucket` set to the addressed bucket, `key` after `${filename}` substitution) and
    /// refuses fields no condition covers. Returns the allowed file sizes.
    pub fn check(
        &self,
        fields: &BTreeMap<String, String>,
        now: DateTime<Utc>,
    ) -> Result<std::ops::RangeInclusive<u64>, S3Error> {
        if now > self.expiration {
            return Err(S3Error::AccessDeniedBecause(
                "Invalid according to Policy: Policy expired.".into(),
            ));
        }
        let mut sizes = 0..=u64::MAX;
        for c in &self.conditions {
            let holds = match c {
                Condition::Eq(f, v) => fields.get(f) == Some(v),
                Condition::StartsWith(f, prefix) => fields
                    .get(f)
                    .is_some_and(|v| v.starts_with(prefix.as_str())),
                Condition::ContentLengthRange(min, max) => {
                    sizes = *sizes.start().max(min)..=*sizes.end().min(max);
                    true
                }
            };
            if !holds {
                return Err(S3Error::AccessDeniedBecause(format!(
                    "Invalid according to Policy: Policy Condition failed: {}",
                    c.describe()
                )));
            }
        }
        let covered = |name: &str| {
            self.conditions.iter().any(|c| match c {
                Condition::Eq(f, _) | Condition::StartsWith(f, _) => f == name,
                Condition::ContentLengthRange(..) => false,
            })
        };
        let extra: Vec<&str> = fields
            .keys()
            .map(String::as_str)
            .filter(|name| {
                !UNCONDITIONED_FIELDS.contains(name)
                    && !name.starts_with("x-ignore-")
                    && *name != "bucket"
                    && !covered(name)
            })
            .collect();
        if !extra.is_empty() {
            return Err(S3Error::AccessDeniedBecause(format!(
                "Invalid according to Policy: Extra input fields: {}",
                extra.join(", ")
            )));
        }
        Ok(sizes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn policy(json: &str) -> PostPolicy {
        PostPolicy::parse(&BASE64.encode(json)).unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    const DOC: &str = r#"{"expiration": "2030-01-01T00:00:00.000Z", "conditions": [
        {"bucket": "photos"}, ["starts-with", "$key", "user/"],
        ["content-length-range", 10, "100"], ["eq", "$Content-Type", "image/png"],
        {"x-amz-date": "20291231T000000Z"}]}"#;

    fn good() -> BTreeMap<String, String> {
        fields(&[
            ("bucket", "photos"),
            ("key", "user/a.png"),
            ("content-type", "image/png"),
            ("x-amz-date", "20291231T000000Z"),
            ("policy", "..."),
            ("x-amz-signature", "..."),
            ("x-ignore-me", "1"),
        ])
    }

    #[test]
    fn conditions_hold_and_give_the_size_range() {
        let p = policy(DOC);
        assert_eq!(
            p.check(&good(), at("2029-12-31T00:00:00Z")).unwrap(),
            10..=100
        );
    }

    #[test]
    fn expired_policy_is_refused() {
        let err = policy(DOC)
            .check(&good(), at("2030-01-01T00:00:01Z"))
            .unwrap_err();
        assert!(matches!(&err, S3Error::AccessDeniedBecause(m) if m.ends_with("Policy expired.")));
        assert_eq!(err.code(), "AccessDenied");
    }

    #[test]
    fn failed_conditions_and_extra_fields_are_refused() {
        let now = at("2029-12-31T00:00:00Z");
        let p = policy(DOC);
        for (name, value, needle) in [
            ("key", "other/a.png", "starts-with"),
            ("content-type", "text/html", "image/png"),
            ("bucket", "other", "photos"),
            (
                "x-amz-meta-extra",
                "1",
                "Extra input fields: x-amz-meta-extra",
            ),
        ] {
            let mut f = good();
            f.insert(name.into(), value.into());
            let err = p.check(&f, now).unwrap_err();
            assert!(
                matches!(&err, S3Error::AccessDeniedBecause(m) if m.contains(needle)),
                "{name}: {err:?}"
            );
        }
        let mut f = good();
        f.remove("content-type");
        assert!(
            p.check(&f, now).is_err(),
            "a condition on a missing field fails"
        );
    }

    #[test]
    fn malformed_policies_are_invalid_policy_documents() {
        for bad in [
            "not base64!",
            &BASE64.encode("{"),
            &BASE64.encode(r#"{"conditions": []}"#),
            &BASE64.encode(r#"{"expiration": "tomorrow", "conditions": []}"#),
            &BASE64.encode(r#"{"expiration": "2030-01-01T00:00:00Z", "conditions": [["in", "$key", "a"]]}"#),
            &BASE64.encode(r#"{"expiration": "2030-01-01T00:00:00Z", "conditions": [["eq", "key", "a"]]}"#),
            &BASE64.encode(r#"{"expiration": "2030-01-01T00:00:00Z", "conditions": [["content-length-range", -1, 5]]}"#),
        ] {
            assert!(
                matches!(PostPolicy::parse(bad), Err(S3Error::InvalidPolicyDocument(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn signature_is_the_hmac_of_the_base64_policy() {
        // Example of the AWS documentation ("Example: Browser-based upload using HTTP POST
        // (using AWS signature version 4)").
        let policy_b64 = "eyAiZXhwaXJhdGlvbiI6ICIyMDE1LTEyLTMwVDEyOjAwOjAwLjAwMFoiLA0KICAiY29uZGl0aW9ucyI6IFsNCiAgICB7ImJ1Y2tldCI6ICJzaWd2NGV4YW1wbGVidWNrZXQifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRrZXkiLCAidXNlci91c2VyMS8iXSwNCiAgICB7ImFjbCI6ICJwdWJsaWMtcmVhZCJ9LA0KICAgIHsic3VjY2Vzc19hY3Rpb25fcmVkaXJlY3QiOiAiaHR0cDovL3NpZ3Y0ZXhhbXBsZWJ1Y2tldC5zMy5hbWF6b25hd3MuY29tL3N1Y2Nlc3NmdWxfdXBsb2FkLmh0bWwifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRDb250ZW50LVR5cGUiLCAiaW1hZ2UvIl0sDQogICAgeyJ4LWFtei1tZXRhLXV1aWQiOiAiMTQzNjUxMjM2NTEyNzQifSwNCiAgICB7IngtYW16LXNlcnZlci1zaWRlLWVuY3J5cHRpb24iOiAiQUVTMjU2In0sDQogICAgWyJzdGFydHMtd2l0aCIsICIkeC1hbXotbWV0YS10YWciLCAiIl0sDQoNCiAgICB7IngtYW16LWNyZWRlbnRpYWwiOiAiQUtJQUlPU0ZPRE5ON0VYQU1QTEUvMjAxNTEyMjkvdXMtZWFzdC0xL3MzL2F3czRfcmVxdWVzdCJ9LA0KICAgIHsieC1hbXotYWxnb3JpdGhtIjogIkFXUzQtSE1BQy1TSEEyNTYifSwNCiAgICB7IngtYW16LWRhdGUiOiAiMjAxNTEyMjlUMDAwMDAwWiIgfQ0KICBdDQp9";
        let f = fields(&[
            ("policy", policy_b64),
            ("x-amz-algorithm", "AWS4-HMAC-SHA256"),
            (
                "x-amz-credential",
                "AKIAIOSFODNN7EXAMPLE/20151229/us-east-1/s3/aws4_request",
            ),
            ("x-amz-date", "20151229T000000Z"),
            (
                "x-amz-signature",
                "8afdbf4008c03f22c2cd3cdb72e4afbb1f6a588f3255ac628749a66d7f09699e",
            ),
        ]);
        let sig = PostSignature::from_fields(&f, "us-east-1").unwrap();
        assert_eq!(sig.access_key_id(), "AKIAIOSFODNN7EXAMPLE");
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        assert_eq!(sig.verify(secret).unwrap(), policy_b64);
        assert!(matches!(
            sig.verify("another secret"),
            Err(S3Error::SignatureDoesNotMatch)
        ));
        let parsed = PostPolicy::parse(policy_b64).unwrap();
        assert!(parsed.conditions.contains(&Condition::StartsWith(
            "content-type".into(),
            "image/".into()
        )));

        let mut v2 = f.clone();
        v2.insert("awsaccesskeyid".into(), "AKIAIOSFODNN7EXAMPLE".into());
        assert!(matches!(
            PostSignature::from_fields(&v2, "us-east-1"),
            Err(S3Error::InvalidRequest(_))
        ));
        let mut missing = f.clone();
        missing.remove("x-amz-signature");
        assert!(matches!(
            PostSignature::from_fields(&missing, "us-east-1"),
            Err(S3Error::InvalidArgument(m)) if m.contains("x-amz-signature")
        ));
        assert!(matches!(
            PostSignature::from_fields(&f, "eu-west-1"),
            Err(S3Error::AuthorizationHeaderMalformed(_))
        ));
    }
}
