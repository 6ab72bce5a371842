//! Builders of bucket lifecycle configurations (the aws-sdk-s3 types), so that a test's rules
//! read as what they do.

use aws_sdk_s3::primitives::DateTime;
use aws_sdk_s3::types::builders::LifecycleRuleBuilder;
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, ExpirationStatus,
    LifecycleExpiration, LifecycleRule, LifecycleRuleFilter, NoncurrentVersionExpiration, Tag,
};

/// An enabled rule `id` over `filter`; the caller adds its actions and builds it.
pub fn rule(id: &str, filter: LifecycleRuleFilter) -> LifecycleRuleBuilder {
    LifecycleRule::builder()
        .id(id)
        .filter(filter)
        .status(ExpirationStatus::Enabled)
}

/// An enabled rule expiring what `filter` selects `days` days after its creation.
pub fn expire_days(id: &str, filter: LifecycleRuleFilter, days: i32) -> LifecycleRule {
    rule(id, filter)
        .expiration(after_days(days))
        .build()
        .unwrap()
}

/// An enabled rule aborting the multipart uploads `filter` selects `days` days after they
/// were started.
pub fn abort_days(id: &str, filter: LifecycleRuleFilter, days: i32) -> LifecycleRule {
    rule(id, filter)
        .abort_incomplete_multipart_upload(abort_after(days))
        .build()
        .unwrap()
}

/// Objects whose key starts with `prefix`.
pub fn prefix_filter(prefix: &str) -> LifecycleRuleFilter {
    LifecycleRuleFilter::builder().prefix(prefix).build()
}

/// Objects tagged `key=value`.
pub fn tag_filter(key: &str, value: &str) -> LifecycleRuleFilter {
    LifecycleRuleFilter::builder().tag(tag(key, value)).build()
}

/// The tag `key=value`.
pub fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build().unwrap()
}

/// Expiration `days` days after creation.
pub fn after_days(days: i32) -> LifecycleExpiration {
    LifecycleExpiration::builder().days(days).build()
}

/// Expiration on `date` (S3 wants midnight UTC).
pub fn on_date(date: DateTime) -> LifecycleExpiration {
    LifecycleExpiration::builder().date(date).build()
}

/// Removal of delete markers that have no version left behind them.
pub fn lone_delete_markers() -> LifecycleExpiration {
    LifecycleExpiration::builder()
        .expired_object_delete_marker(true)
        .build()
}

/// Abort of multipart uploads `days` days after they were started.
pub fn abort_after(days: i32) -> AbortIncompleteMultipartUpload {
    AbortIncompleteMultipartUpload::builder()
        .days_after_initiation(days)
        .build()
}

/// Removal of noncurrent versions `days` days after they became noncurrent, keeping the
/// `newer` newest of them.
pub fn noncurrent_after(days: i32, newer: i32) -> NoncurrentVersionExpiration {
    NoncurrentVersionExpiration::builder()
        .noncurrent_days(days)
        .newer_noncurrent_versions(newer)
        .build()
}

/// The configuration of `rules`.
pub fn config(rules: Vec<LifecycleRule>) -> BucketLifecycleConfiguration {
    BucketLifecycleConfiguration::builder()
        .set_rules(Some(rules))
        .build()
        .unwrap()
}
