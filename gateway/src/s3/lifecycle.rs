//! Bucket lifecycle configuration: PutBucketLifecycleConfiguration,
//! GetBucketLifecycleConfiguration, DeleteBucketLifecycle (`?lifecycle`). The nodes apply
//! the rules (`cairn_node::lifecycle`).

use cairn_proto::meta::{InvalidLifecycle, InvalidLifecycleKind, LifecycleConfig, MetaCommand};

use super::bucket_config::BucketConfig;
use crate::error::{S3Error, S3Result};
use crate::xml::{self, LifecycleConfiguration};

/// Largest PutBucketLifecycleConfiguration body accepted (1000 rules with long ids fit).
const MAX_BODY: usize = 2 * 1024 * 1024;

/// The S3 error for a configuration S3 would refuse.
fn invalid_lifecycle(e: InvalidLifecycle) -> S3Error {
    match e.kind {
        InvalidLifecycleKind::Argument => S3Error::InvalidArgument(e.message),
        InvalidLifecycleKind::Request => S3Error::InvalidRequest(e.message),
        InvalidLifecycleKind::Malformed => S3Error::MalformedXML,
    }
}

/// Parses and validates a PutBucketLifecycleConfiguration body.
pub fn parse_lifecycle(body: &[u8]) -> S3Result<LifecycleConfig> {
    let doc: LifecycleConfiguration = xml::from_xml(body)?;
    let config = doc.into_config()?;
    config.validate().map_err(invalid_lifecycle)?;
    Ok(config)
}

/// PutBucketLifecycleConfiguration, GetBucketLifecycleConfiguration, DeleteBucketLifecycle.
pub static LIFECYCLE: BucketConfig<LifecycleConfig> = BucketConfig {
    max_body: MAX_BODY,
    parse: parse_lifecycle,
    render: |config| xml::to_xml(&LifecycleConfiguration::from(config)),
    stored: |bucket| bucket.lifecycle.as_ref(),
    command: |bucket, lifecycle| MetaCommand::SetBucketLifecycle { bucket, lifecycle },
    absent: || S3Error::NoSuchLifecycleConfiguration,
};

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use cairn_proto::meta::{
        Expiration, FilterForm, LifecycleFilter, LifecycleRule, NoncurrentExpiration,
    };

    use super::*;

    const NS: &str = "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"";

    fn doc(inner: &str) -> String {
        format!("<LifecycleConfiguration {NS}>{inner}</LifecycleConfiguration>")
    }

    #[track_caller]
    fn error_of(inner: &str) -> (&'static str, String) {
        let e = parse_lifecycle(doc(inner).as_bytes()).unwrap_err();
        (e.code(), e.message())
    }

    #[track_caller]
    fn round_trip(config: &LifecycleConfig) -> String {
        let rendered = xml::to_xml(&LifecycleConfiguration::from(config));
        assert_eq!(&parse_lifecycle(rendered.as_bytes()).unwrap(), config);
        rendered
    }

    #[test]
    fn parses_every_rule_kind_and_renders_it_back() {
        let body = doc("<Rule><ID>tmp</ID><Filter><Prefix>tmp/</Prefix></Filter>\
               <Status>Enabled</Status><Expiration><Days>2</Days></Expiration></Rule>\
             <Rule><ID>tagged</ID><Filter><And><Prefix>logs/</Prefix>\
               <Tag><Key>class</Key><Value>scratch</Value></Tag>\
               <Tag><Key>team</Key><Value>a</Value></Tag>\
               <ObjectSizeGreaterThan>10</ObjectSizeGreaterThan></And></Filter>\
               <Status>Disabled</Status>\
               <Expiration><Date>2030-01-01T00:00:00Z</Date></Expiration></Rule>\
             <Rule><ID>old</ID><Prefix>v/</Prefix><Status>Enabled</Status>\
               <NoncurrentVersionExpiration><NoncurrentDays>3</NoncurrentDays>\
               <NewerNoncurrentVersions>2</NewerNoncurrentVersions></NoncurrentVersionExpiration>\
               <Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration>\
             </Rule>\
             <Rule><ID>mpu</ID><Filter></Filter><Status>Enabled</Status>\
               <AbortIncompleteMultipartUpload><DaysAfterInitiation>1</DaysAfterInitiation>\
               </AbortIncompleteMultipartUpload></Rule>");
        let config = parse_lifecycle(body.as_bytes()).unwrap();
        let date = chrono::NaiveDate::from_ymd_opt(2030, 1, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis();
        assert_eq!(
            config.rules,
            vec![
                LifecycleRule {
                    id: "tmp".into(),
                    enabled: true,
                    filter: LifecycleFilter {
                        prefix: "tmp/".into(),
                        ..Default::default()
                    },
                    expiration: Some(Expiration {
                        days: Some(2),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                LifecycleRule {
                    id: "tagged".into(),
                    enabled: false,
                    filter: LifecycleFilter {
                        prefix: "logs/".into(),
                        tags: BTreeMap::from([
                            ("class".into(), "scratch".into()),
                            ("team".into(), "a".into())
                        ]),
                        size_greater_than: Some(10),
                        size_less_than: None,
                        form: FilterForm::And,
                    },
                    expiration: Some(Expiration {
                        date_ms: Some(date),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                LifecycleRule {
                    id: "old".into(),
                    enabled: true,
                    filter: LifecycleFilter {
                        prefix: "v/".into(),
                        form: FilterForm::LegacyPrefix,
                        ..Default::default()
                    },
                    expiration: Some(Expiration {
                        expired_object_delete_marker: Some(true),
                        ..Default::default()
                    }),
                    noncurrent_expiration: Some(NoncurrentExpiration {
                        noncurrent_days: 3,
                        newer_noncurrent_versions: Some(2),
                    }),
                    ..Default::default()
                },
                LifecycleRule {
                    id: "mpu".into(),
                    enabled: true,
                    abort_incomplete_upload_days: Some(1),
                    ..Default::default()
                },
            ]
        );
        let rendered = round_trip(&config);
        assert!(
            rendered.contains(
                "<Rule><ID>tmp</ID><Filter><Prefix>tmp/</Prefix></Filter>\
                 <Status>Enabled</Status><Expiration><Days>2</Days></Expiration></Rule>"
            ),
            "{rendered}"
        );
        assert!(rendered.contains("<Date>2030-01-01T00:00:00.000Z</Date>"));
        assert!(
            rendered.contains("<Prefix>v/</Prefix><Status>"),
            "{rendered}"
        );
    }

    #[test]
    fn single_condition_filters_round_trip() {
        for filter in [
            "<Tag><Key>k</Key><Value>v</Value></Tag>",
            "<ObjectSizeLessThan>100</ObjectSizeLessThan>",
        ] {
            let body = doc(&format!(
                "<Rule><ID>r</ID><Filter>{filter}</Filter><Status>Enabled</Status>\
                 <Expiration><Days>1</Days></Expiration></Rule>"
            ));
            let config = parse_lifecycle(body.as_bytes()).unwrap();
            assert!(round_trip(&config).contains(filter));
        }
    }

    #[test]
    fn a_rule_without_id_gets_one() {
        let body = doc("<Rule><Filter/><Status>Enabled</Status>\
             <Expiration><Days>1</Days></Expiration></Rule>");
        let config = parse_lifecycle(body.as_bytes()).unwrap();
        assert!(!config.rules[0].id.is_empty());
    }

    #[test]
    fn refused_configurations_get_s3_codes() {
        let exp = "<Expiration><Days>1</Days></Expiration>";
        let cases = [
            ("", "MalformedXML", ""),
            (
                &*format!("<Rule><ID>a</ID><Status>On</Status>{exp}</Rule>"),
                "MalformedXML",
                "",
            ),
            (
                &format!("<Rule><ID>a</ID><Status>Enabled</Status>{exp}</Rule>"),
                "OK",
                "",
            ),
            (
                &format!(
                    "<Rule><ID>a</ID><Prefix>x</Prefix><Filter><Prefix>y</Prefix></Filter>\
                     <Status>Enabled</Status>{exp}</Rule>"
                ),
                "MalformedXML",
                "",
            ),
            (
                &format!(
                    "<Rule><ID>a</ID><Filter><Prefix>y</Prefix>\
                     <Tag><Key>k</Key><Value>v</Value></Tag></Filter>\
                     <Status>Enabled</Status>{exp}</Rule>"
                ),
                "MalformedXML",
                "",
            ),
            (
                "<Rule><ID>a</ID><Filter/><Status>Enabled</Status>\
                 <Expiration><Days>soon</Days></Expiration></Rule>",
                "MalformedXML",
                "",
            ),
            (
                "<Rule><ID>a</ID><Filter/><Status>Enabled</Status>\
                 <Expiration><Days>0</Days></Expiration></Rule>",
                "InvalidArgument",
                "positive integer",
            ),
            (
                "<Rule><ID>a</ID><Filter/><Status>Enabled</Status>\
                 <Expiration><Days>-3</Days></Expiration></Rule>",
                "InvalidArgument",
                "positive integer",
            ),
            (
                "<Rule><ID>a</ID><Filter/><Status>Enabled</Status>\
                 <Expiration><Date>2030-01-01T10:00:00Z</Date></Expiration></Rule>",
                "InvalidArgument",
                "midnight",
            ),
            (
                "<Rule><ID>a</ID><Filter/><Status>Enabled</Status>\
                 <Expiration><Days>1</Days><Date>2030-01-01T00:00:00Z</Date></Expiration></Rule>",
                "MalformedXML",
                "",
            ),
            (
                "<Rule><ID>a</ID><Filter/><Status>Enabled</Status></Rule>",
                "InvalidRequest",
                "At least one action",
            ),
            (
                &format!(
                    "<Rule><ID>{}</ID><Filter/><Status>Enabled</Status>{exp}</Rule>",
                    "x".repeat(256)
                ),
                "InvalidArgument",
                "255",
            ),
            (
                &format!(
                    "<Rule><ID>a</ID><Filter/><Status>Enabled</Status>{exp}</Rule>\
                     <Rule><ID>a</ID><Filter/><Status>Enabled</Status>{exp}</Rule>"
                ),
                "InvalidArgument",
                "unique",
            ),
            (
                "<Rule><ID>a</ID><Filter><Tag><Key>k</Key><Value>v</Value></Tag></Filter>\
                 <Status>Enabled</Status><AbortIncompleteMultipartUpload>\
                 <DaysAfterInitiation>1</DaysAfterInitiation></AbortIncompleteMultipartUpload>\
                 </Rule>",
                "InvalidRequest",
                "AbortIncompleteMultipartUpload",
            ),
            (
                "<Rule><ID>a</ID><Filter/><Status>Enabled</Status>\
                 <NoncurrentVersionExpiration><NoncurrentDays>0</NoncurrentDays>\
                 </NoncurrentVersionExpiration></Rule>",
                "InvalidArgument",
                "NoncurrentDays",
            ),
            (
                "<Rule><ID>a</ID><Filter><And><Tag><Key>k</Key><Value>1</Value></Tag>\
                 <Tag><Key>k</Key><Value>2</Value></Tag></And></Filter>\
                 <Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule>",
                "InvalidArgument",
                "Duplicate Tag Keys",
            ),
            (
                "<Rule><ID>a</ID><Filter/><Status>Enabled</Status>\
                 <Transition><Days>1</Days><StorageClass>GLACIER</StorageClass></Transition>\
                 </Rule>",
                "NotImplemented",
                "",
            ),
        ];
        for (inner, code, words) in cases {
            match parse_lifecycle(doc(inner).as_bytes()) {
                Ok(_) => assert_eq!(code, "OK", "{inner}"),
                Err(_) => {
                    let (got, message) = error_of(inner);
                    assert_eq!(got, code, "{inner}: {message}");
                    assert!(message.contains(words), "{inner}: {message}");
                }
            }
        }
        assert!(matches!(
            parse_lifecycle(b"<WebsiteConfiguration/>"),
            Err(S3Error::MalformedXML)
        ));
    }
}
