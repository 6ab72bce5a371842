//! Bucket sub-resources the tests set up before what they check: CORS rules, a website
//! with an index document, versioning.

use aws_sdk_s3::Client;
use aws_sdk_s3::types::{
    BucketVersioningStatus, CorsConfiguration, CorsRule, IndexDocument, VersioningConfiguration,
    WebsiteConfiguration,
};

/// A CORS rule allowing `methods` from `origins` with request `headers`.
pub fn cors_rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> CorsRule {
    let mut b = CorsRule::builder();
    for o in origins {
        b = b.allowed_origins(*o);
    }
    for m in methods {
        b = b.allowed_methods(*m);
    }
    for h in headers {
        b = b.allowed_headers(*h);
    }
    b.build().unwrap()
}

/// The CORS configuration of `rules`.
pub fn cors_config(rules: Vec<CorsRule>) -> CorsConfiguration {
    CorsConfiguration::builder()
        .set_cors_rules(Some(rules))
        .build()
        .unwrap()
}

/// PutBucketCors with `rules`.
pub async fn put_cors(s3: &Client, bucket: &str, rules: Vec<CorsRule>) {
    s3.put_bucket_cors()
        .bucket(bucket)
        .cors_configuration(cors_config(rules))
        .send()
        .await
        .unwrap_or_else(|e| panic!("PutBucketCors {bucket}: {e:?}"));
}

/// An index document `suffix` (served for `/` and `.../`).
pub fn index_document(suffix: &str) -> IndexDocument {
    IndexDocument::builder().suffix(suffix).build().unwrap()
}

/// PutBucketWebsite with only an index document `suffix`.
pub async fn put_website_index(s3: &Client, bucket: &str, suffix: &str) {
    let config = WebsiteConfiguration::builder()
        .index_document(index_document(suffix))
        .build();
    s3.put_bucket_website()
        .bucket(bucket)
        .website_configuration(config)
        .send()
        .await
        .unwrap_or_else(|e| panic!("PutBucketWebsite {bucket}: {e:?}"));
}

/// PutBucketVersioning `Enabled`.
pub async fn enable_versioning(s3: &Client, bucket: &str) {
    s3.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("PutBucketVersioning {bucket}: {e:?}"));
}
