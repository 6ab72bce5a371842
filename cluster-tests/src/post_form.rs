//! Browser-upload (PostObject) forms: the URL and fields of a SigV4 POST policy made by
//! boto3's `generate_presigned_post` (python3 + boto3; CI's `.ci/run` installs boto3), and a
//! helper that posts such a form with a file, as a browser would.

use std::process::Command;
use std::time::Duration;

use crate::aws_cli::{S3Target, aws_env};
use crate::proc::run_with_timeout;
use crate::s3::RawResponse;

/// What `generate_presigned_post` returned.
#[derive(Debug, Clone)]
pub struct PresignedPost {
    /// Where to POST the form (`http://host/bucket` or `http://bucket.host/`).
    pub url: String,
    /// The form fields, in boto3's order (the file goes last).
    pub fields: Vec<(String, String)>,
}

impl PresignedPost {
    /// Replaces (or adds) a field.
    pub fn set(&mut self, name: &str, value: &str) {
        match self.fields.iter_mut().find(|(n, _)| n == name) {
            Some(field) => field.1 = value.to_string(),
            None => self.fields.push((name.to_string(), value.to_string())),
        }
    }

    /// The value of a field.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

const SCRIPT: &str = r#"
import json, sys, boto3
from botocore.config import Config
endpoint, style, bucket, key, fields, conditions, expires = sys.argv[1:8]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  config=Config(signature_version="s3v4",
                                s3={"addressing_style": style}))
post = s3.generate_presigned_post(bucket, key, Fields=json.loads(fields),
                                  Conditions=json.loads(conditions), ExpiresIn=int(expires))
print(json.dumps({"url": post["url"], "fields": list(post["fields"].items())}))
"#;

/// Where a form uploads to.
#[derive(Debug, Clone, Copy)]
pub struct PostTarget<'a> {
    /// The S3 endpoint URL boto3 is given.
    pub endpoint: &'a str,
    /// `path` or `virtual` (boto3's `addressing_style`).
    pub style: &'a str,
    pub bucket: &'a str,
    /// The `key` field (may hold `${filename}`).
    pub key: &'a str,
}

/// Runs boto3's `generate_presigned_post` with the server's root key; `fields` and
/// `conditions` are JSON as boto3 takes them; `expires_in` may be negative (an already
/// expired policy).
pub fn boto3_presigned_post(
    server: &(impl S3Target + ?Sized),
    target: PostTarget,
    fields: &serde_json::Value,
    conditions: &serde_json::Value,
    expires_in: i64,
) -> PresignedPost {
    let mut cmd = Command::new("python3");
    aws_env(&mut cmd, server);
    cmd.env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .args(["-c", SCRIPT, target.endpoint, target.style, target.bucket])
        .arg(target.key)
        .arg(fields.to_string())
        .arg(conditions.to_string())
        .arg(expires_in.to_string());
    let out = run_with_timeout(&mut cmd, Duration::from_secs(60)).expect("run python3");
    assert!(
        out.success(),
        "boto3 generate_presigned_post failed (is boto3 installed? CI's .ci/run installs it):\n{}",
        out.stderr
    );
    let doc: serde_json::Value = serde_json::from_str(out.stdout.trim()).expect("boto3 output");
    let fields = doc["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|pair| {
            (
                pair[0].as_str().expect("name").to_string(),
                pair[1].as_str().expect("value").to_string(),
            )
        })
        .collect();
    PresignedPost {
        url: doc["url"].as_str().expect("url").to_string(),
        fields,
    }
}

/// POSTs the form with `file` (named `file_name`) as its last field, plus `after` fields
/// behind it (S3 ignores those).
pub async fn post_form(
    client: &reqwest::Client,
    form: &PresignedPost,
    file_name: &str,
    file: Vec<u8>,
    after: &[(&str, &str)],
) -> RawResponse {
    let mut multipart = reqwest::multipart::Form::new();
    for (name, value) in &form.fields {
        multipart = multipart.text(name.clone(), value.clone());
    }
    let part = reqwest::multipart::Part::bytes(file)
        .file_name(file_name.to_string())
        .mime_str("application/octet-stream")
        .expect("mime");
    multipart = multipart.part("file", part);
    for (name, value) in after {
        multipart = multipart.text(name.to_string(), value.to_string());
    }
    let sent = client.post(&form.url).multipart(multipart).send().await;
    RawResponse::read(sent, &form.url).await
}
