use super::*;

const DECL: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
const NS: &str = "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"";

fn owner() -> Owner {
    Owner {
        id: "75aa57f09aa0c8caeab4f8c24e99d10f".into(),
        display_name: "alice".into(),
    }
}

const OWNER_XML: &str =
    "<Owner><ID>75aa57f09aa0c8caeab4f8c24e99d10f</ID><DisplayName>alice</DisplayName></Owner>";

fn object(key: &str, owner: Option<Owner>) -> ObjectInfo {
    ObjectInfo {
        key: key.into(),
        last_modified: s3_timestamp(1_255_369_830_000),
        etag: "\"fba9dede5f27731c9771645a39863328\"".into(),
        size: 434_234,
        owner,
        storage_class: "STANDARD".into(),
    }
}

fn object_xml(key: &str, owner: bool) -> String {
    format!(
        "<Contents><Key>{key}</Key><LastModified>2009-10-12T17:50:30.000Z</LastModified>\
         <ETag>\"fba9dede5f27731c9771645a39863328\"</ETag><Size>434234</Size>{}\
         <StorageClass>STANDARD</StorageClass></Contents>",
        if owner { OWNER_XML } else { "" }
    )
}

/// Asserts that `value` renders as the XML declaration followed by `document`.
#[track_caller]
fn assert_xml<T: serde::Serialize>(value: &T, document: &str) {
    assert_eq!(to_xml(value), format!("{DECL}{document}"));
}

fn malformed<T: std::fmt::Debug + serde::de::DeserializeOwned>(body: &[u8]) {
    let parsed = from_xml::<T>(body);
    assert!(
        matches!(parsed, Err(S3Error::MalformedXML)),
        "{:?} parsed as {parsed:?}",
        String::from_utf8_lossy(body)
    );
}

// ---- helpers ------------------------------------------------------------------------------

#[test]
fn timestamps() {
    assert_eq!(s3_timestamp(1_255_369_830_000), "2009-10-12T17:50:30.000Z");
    assert_eq!(s3_timestamp(1_255_369_830_007), "2009-10-12T17:50:30.007Z");
    assert_eq!(s3_timestamp(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(s3_timestamp(i64::MAX), "1970-01-01T00:00:00.000Z");
}

#[test]
fn error_document() {
    assert_eq!(
        error_xml(
            "NoSuchKey",
            "The specified key does not exist.",
            "/b/a&b",
            "4442587FB7D0A2F9",
            &[("BucketName", "b"), ("Key", "a<&>\"b")],
        ),
        format!(
            "{DECL}<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message>\
             <Resource>/b/a&amp;b</Resource><RequestId>4442587FB7D0A2F9</RequestId>\
             <BucketName>b</BucketName><Key>a&lt;&amp;&gt;\"b</Key></Error>"
        )
    );
    assert_eq!(
        error_xml("AccessDenied", "Access Denied", "", "r1", &[]),
        format!(
            "{DECL}<Error><Code>AccessDenied</Code><Message>Access Denied</Message>\
             <Resource></Resource><RequestId>r1</RequestId></Error>"
        )
    );
}

// ---- responses ----------------------------------------------------------------------------

#[test]
fn list_buckets() {
    let result = ListAllMyBucketsResult {
        xmlns: Xmlns,
        owner: owner(),
        buckets: vec![
            BucketInfo {
                name: "alpha".into(),
                creation_date: s3_timestamp(1_255_369_830_000),
                bucket_region: Some("us-east-1".into()),
            },
            BucketInfo {
                name: "beta".into(),
                creation_date: s3_timestamp(0),
                bucket_region: None,
            },
        ],
        continuation_token: Some("tok".into()),
        prefix: Some("a".into()),
    };
    assert_xml(
        &result,
        &format!(
            "<ListAllMyBucketsResult {NS}>{OWNER_XML}<Buckets>\
             <Bucket><Name>alpha</Name><CreationDate>2009-10-12T17:50:30.000Z</CreationDate>\
             <BucketRegion>us-east-1</BucketRegion></Bucket>\
             <Bucket><Name>beta</Name><CreationDate>1970-01-01T00:00:00.000Z</CreationDate></Bucket>\
             </Buckets><ContinuationToken>tok</ContinuationToken><Prefix>a</Prefix>\
             </ListAllMyBucketsResult>"
        ),
    );
    let empty = ListAllMyBucketsResult {
        owner: owner(),
        ..Default::default()
    };
    assert_xml(
        &empty,
        &format!("<ListAllMyBucketsResult {NS}>{OWNER_XML}<Buckets/></ListAllMyBucketsResult>"),
    );
}

#[test]
fn bucket_location() {
    assert_xml(
        &LocationConstraint::for_region("us-west-2"),
        &format!("<LocationConstraint {NS}>us-west-2</LocationConstraint>"),
    );
    assert_xml(
        &LocationConstraint::for_region("us-east-1"),
        &format!("<LocationConstraint {NS}/>"),
    );
}

#[test]
fn list_objects_v1() {
    let result = ListBucketResult {
        xmlns: Xmlns,
        name: "bucket".into(),
        prefix: "photos/".into(),
        marker: "photos/a".into(),
        next_marker: Some("photos/c".into()),
        max_keys: 2,
        delimiter: Some("/".into()),
        encoding_type: Some("url".into()),
        is_truncated: true,
        contents: vec![object("photos/b.jpg", Some(owner()))],
        common_prefixes: vec![CommonPrefix {
            prefix: "photos/2006/".into(),
        }],
    };
    assert_xml(
        &result,
        &format!(
            "<ListBucketResult {NS}><Name>bucket</Name><Prefix>photos/</Prefix>\
             <Marker>photos/a</Marker><NextMarker>photos/c</NextMarker><MaxKeys>2</MaxKeys>\
             <Delimiter>/</Delimiter><EncodingType>url</EncodingType>\
             <IsTruncated>true</IsTruncated>{}\
             <CommonPrefixes><Prefix>photos/2006/</Prefix></CommonPrefixes></ListBucketResult>",
            object_xml("photos/b.jpg", true)
        ),
    );
    let empty = ListBucketResult {
        name: "bucket".into(),
        max_keys: 1000,
        ..Default::default()
    };
    assert_xml(
        &empty,
        &format!(
            "<ListBucketResult {NS}><Name>bucket</Name><Prefix/><Marker/>\
             <MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated></ListBucketResult>"
        ),
    );
}

#[test]
fn list_objects_v2() {
    let result = ListBucketResultV2 {
        xmlns: Xmlns,
        name: "bucket".into(),
        prefix: "E".into(),
        start_after: Some("ExampleGuide.pdf".into()),
        continuation_token: Some("1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=".into()),
        next_continuation_token: Some("next+/=".into()),
        key_count: 3,
        max_keys: 3,
        delimiter: Some("/".into()),
        encoding_type: None,
        is_truncated: true,
        contents: vec![object("Ea", None), object("Eb", Some(owner()))],
        common_prefixes: vec![
            CommonPrefix {
                prefix: "E/".into(),
            },
            CommonPrefix {
                prefix: "Ez/".into(),
            },
        ],
    };
    assert_xml(
        &result,
        &format!(
            "<ListBucketResult {NS}><Name>bucket</Name><Prefix>E</Prefix>\
             <StartAfter>ExampleGuide.pdf</StartAfter>\
             <ContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</ContinuationToken>\
             <NextContinuationToken>next+/=</NextContinuationToken><KeyCount>3</KeyCount>\
             <MaxKeys>3</MaxKeys><Delimiter>/</Delimiter><IsTruncated>true</IsTruncated>{}{}\
             <CommonPrefixes><Prefix>E/</Prefix></CommonPrefixes>\
             <CommonPrefixes><Prefix>Ez/</Prefix></CommonPrefixes></ListBucketResult>",
            object_xml("Ea", false),
            object_xml("Eb", true)
        ),
    );
    let empty = ListBucketResultV2 {
        name: "bucket".into(),
        max_keys: 1000,
        ..Default::default()
    };
    assert_xml(
        &empty,
        &format!(
            "<ListBucketResult {NS}><Name>bucket</Name><Prefix/><KeyCount>0</KeyCount>\
             <MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated></ListBucketResult>"
        ),
    );
}

#[test]
fn keys_are_escaped() {
    let result = ListBucketResultV2 {
        name: "b".into(),
        prefix: "<&>\"".into(),
        key_count: 1,
        max_keys: 1000,
        contents: vec![object("a<&>\"'\r\nz", None)],
        ..Default::default()
    };
    let xml = to_xml(&result);
    assert!(xml.contains("<Prefix>&lt;&amp;&gt;\"</Prefix>"), "{xml}");
    // `\r` becomes a character reference so XML end-of-line normalization cannot eat it.
    assert!(
        xml.contains("<Key>a&lt;&amp;&gt;\"'&#13;\nz</Key>"),
        "{xml}"
    );
    // The escaped document is well-formed and keeps the key intact for a parser.
    #[derive(Debug, serde::Deserialize)]
    struct Contents {
        #[serde(rename = "Key")]
        key: String,
    }
    #[derive(Debug, serde::Deserialize)]
    #[serde(rename = "ListBucketResult")]
    struct Parsed {
        #[serde(rename = "Prefix")]
        prefix: String,
        #[serde(rename = "Contents")]
        contents: Vec<Contents>,
    }
    let parsed: Parsed = from_xml(xml.as_bytes()).unwrap();
    assert_eq!(parsed.prefix, "<&>\"");
    assert_eq!(parsed.contents[0].key, "a<&>\"'\r\nz");
}

#[test]
fn copy_results() {
    let copy = CopyObjectResult {
        xmlns: Xmlns,
        last_modified: s3_timestamp(1_255_369_830_000),
        etag: "\"9b2cf535f27731c974343645a3985328\"".into(),
    };
    assert_xml(
        &copy,
        &format!(
            "<CopyObjectResult {NS}><LastModified>2009-10-12T17:50:30.000Z</LastModified>\
             <ETag>\"9b2cf535f27731c974343645a3985328\"</ETag></CopyObjectResult>"
        ),
    );
    let part = CopyPartResult {
        xmlns: Xmlns,
        last_modified: s3_timestamp(1_255_369_830_000),
        etag: "\"e1\"".into(),
    };
    assert_xml(
        &part,
        &format!(
            "<CopyPartResult {NS}><LastModified>2009-10-12T17:50:30.000Z</LastModified>\
             <ETag>\"e1\"</ETag></CopyPartResult>"
        ),
    );
}

#[test]
fn delete_result() {
    let result = DeleteResult {
        xmlns: Xmlns,
        deleted: vec![
            DeletedObject {
                key: "sample1.txt".into(),
                ..Default::default()
            },
            DeletedObject {
                key: "sample2.txt".into(),
                version_id: Some("v1".into()),
                delete_marker: Some(true),
                delete_marker_version_id: Some("dm1".into()),
            },
        ],
        errors: vec![DeleteError {
            key: "sample3.txt".into(),
            code: "AccessDenied".into(),
            message: "Access Denied".into(),
            version_id: Some("v3".into()),
        }],
    };
    assert_xml(
        &result,
        &format!(
            "<DeleteResult {NS}><Deleted><Key>sample1.txt</Key></Deleted>\
             <Deleted><Key>sample2.txt</Key><VersionId>v1</VersionId>\
             <DeleteMarker>true</DeleteMarker><DeleteMarkerVersionId>dm1</DeleteMarkerVersionId>\
             </Deleted><Error><Key>sample3.txt</Key><Code>AccessDenied</Code>\
             <Message>Access Denied</Message><VersionId>v3</VersionId></Error></DeleteResult>"
        ),
    );
    let marker_false = DeleteResult {
        deleted: vec![DeletedObject {
            key: "k".into(),
            delete_marker: Some(false),
            ..Default::default()
        }],
        ..Default::default()
    };
    assert_xml(
        &marker_false,
        &format!(
            "<DeleteResult {NS}><Deleted><Key>k</Key><DeleteMarker>false</DeleteMarker>\
             </Deleted></DeleteResult>"
        ),
    );
    // Quiet mode with no errors.
    assert_xml(&DeleteResult::default(), &format!("<DeleteResult {NS}/>"));
}

#[test]
fn multipart_results() {
    let initiate = InitiateMultipartUploadResult {
        xmlns: Xmlns,
        bucket: "bucket".into(),
        key: "a&b".into(),
        upload_id: "VXBsb2FkIElE".into(),
    };
    assert_xml(
        &initiate,
        &format!(
            "<InitiateMultipartUploadResult {NS}><Bucket>bucket</Bucket><Key>a&amp;b</Key>\
             <UploadId>VXBsb2FkIElE</UploadId></InitiateMultipartUploadResult>"
        ),
    );
    let complete = CompleteMultipartUploadResult {
        xmlns: Xmlns,
        location: "http://bucket.s3.example.com/key".into(),
        bucket: "bucket".into(),
        key: "key".into(),
        etag: "\"3858f62230ac3c915f300c664312c11f-9\"".into(),
    };
    assert_xml(
        &complete,
        &format!(
            "<CompleteMultipartUploadResult {NS}>\
             <Location>http://bucket.s3.example.com/key</Location><Bucket>bucket</Bucket>\
             <Key>key</Key><ETag>\"3858f62230ac3c915f300c664312c11f-9\"</ETag>\
             </CompleteMultipartUploadResult>"
        ),
    );
}

#[test]
fn list_parts() {
    let result = ListPartsResult {
        xmlns: Xmlns,
        bucket: "bucket".into(),
        key: "key".into(),
        upload_id: "up".into(),
        initiator: owner(),
        owner: owner(),
        storage_class: "STANDARD".into(),
        part_number_marker: 1,
        next_part_number_marker: Some(3),
        max_parts: 2,
        is_truncated: true,
        parts: vec![
            PartInfo {
                part_number: 2,
                last_modified: s3_timestamp(1_255_369_830_000),
                etag: "\"e2\"".into(),
                size: 10_485_760,
            },
            PartInfo {
                part_number: 3,
                last_modified: s3_timestamp(1_255_369_830_000),
                etag: "\"e3\"".into(),
                size: 5,
            },
        ],
    };
    let initiator = OWNER_XML.replace("Owner>", "Initiator>");
    assert_xml(
        &result,
        &format!(
            "<ListPartsResult {NS}><Bucket>bucket</Bucket><Key>key</Key>\
             <UploadId>up</UploadId>{initiator}{OWNER_XML}<StorageClass>STANDARD</StorageClass>\
             <PartNumberMarker>1</PartNumberMarker><NextPartNumberMarker>3</NextPartNumberMarker>\
             <MaxParts>2</MaxParts><IsTruncated>true</IsTruncated>\
             <Part><PartNumber>2</PartNumber><LastModified>2009-10-12T17:50:30.000Z</LastModified>\
             <ETag>\"e2\"</ETag><Size>10485760</Size></Part>\
             <Part><PartNumber>3</PartNumber><LastModified>2009-10-12T17:50:30.000Z</LastModified>\
             <ETag>\"e3\"</ETag><Size>5</Size></Part></ListPartsResult>"
        ),
    );
}

#[test]
fn list_multipart_uploads() {
    let result = ListMultipartUploadsResult {
        xmlns: Xmlns,
        bucket: "bucket".into(),
        key_marker: String::new(),
        upload_id_marker: String::new(),
        next_key_marker: Some("my-movie.m2ts".into()),
        next_upload_id_marker: Some("YW55IGlk".into()),
        delimiter: Some("/".into()),
        prefix: Some("photos/".into()),
        encoding_type: None,
        max_uploads: 3,
        is_truncated: true,
        uploads: vec![UploadInfo {
            key: "photos/my-divisor".into(),
            upload_id: "XMgbGlr".into(),
            initiator: owner(),
            owner: owner(),
            storage_class: "STANDARD".into(),
            initiated: s3_timestamp(1_255_369_830_000),
        }],
        common_prefixes: vec![CommonPrefix {
            prefix: "photos/2006/".into(),
        }],
    };
    let initiator = OWNER_XML.replace("Owner>", "Initiator>");
    assert_xml(
        &result,
        &format!(
            "<ListMultipartUploadsResult {NS}><Bucket>bucket</Bucket><KeyMarker/>\
             <UploadIdMarker/><NextKeyMarker>my-movie.m2ts</NextKeyMarker>\
             <NextUploadIdMarker>YW55IGlk</NextUploadIdMarker><Delimiter>/</Delimiter>\
             <Prefix>photos/</Prefix><MaxUploads>3</MaxUploads><IsTruncated>true</IsTruncated>\
             <Upload><Key>photos/my-divisor</Key><UploadId>XMgbGlr</UploadId>{initiator}\
             {OWNER_XML}<StorageClass>STANDARD</StorageClass>\
             <Initiated>2009-10-12T17:50:30.000Z</Initiated></Upload>\
             <CommonPrefixes><Prefix>photos/2006/</Prefix></CommonPrefixes>\
             </ListMultipartUploadsResult>"
        ),
    );
    let empty = ListMultipartUploadsResult {
        bucket: "bucket".into(),
        max_uploads: 1000,
        ..Default::default()
    };
    assert_xml(
        &empty,
        &format!(
            "<ListMultipartUploadsResult {NS}><Bucket>bucket</Bucket><KeyMarker/>\
             <UploadIdMarker/><MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>\
             </ListMultipartUploadsResult>"
        ),
    );
}

#[test]
fn list_object_versions() {
    let version = |key: &str, version_id: &str, is_latest: bool| {
        VersionEntry::Version(ObjectVersion {
            key: key.into(),
            version_id: version_id.into(),
            is_latest,
            last_modified: s3_timestamp(1_255_369_830_000),
            etag: "\"e1\"".into(),
            size: 5,
            storage_class: "STANDARD".into(),
            owner: owner(),
        })
    };
    let marker = |key: &str, version_id: &str, is_latest: bool| {
        VersionEntry::DeleteMarker(DeleteMarkerEntry {
            key: key.into(),
            version_id: version_id.into(),
            is_latest,
            last_modified: s3_timestamp(0),
            owner: owner(),
        })
    };
    let version_xml = |key: &str, version_id: &str, is_latest: bool| {
        format!(
            "<Version><Key>{key}</Key><VersionId>{version_id}</VersionId>\
             <IsLatest>{is_latest}</IsLatest><LastModified>2009-10-12T17:50:30.000Z</LastModified>\
             <ETag>\"e1\"</ETag><Size>5</Size><StorageClass>STANDARD</StorageClass>{OWNER_XML}\
             </Version>"
        )
    };
    let marker_xml = |key: &str, version_id: &str, is_latest: bool| {
        format!(
            "<DeleteMarker><Key>{key}</Key><VersionId>{version_id}</VersionId>\
             <IsLatest>{is_latest}</IsLatest><LastModified>1970-01-01T00:00:00.000Z</LastModified>\
             {OWNER_XML}</DeleteMarker>"
        )
    };
    // Entries keep the order they are listed in: by key, each key's newest first, versions
    // and delete markers interleaved.
    let result = ListVersionsResult {
        xmlns: Xmlns,
        name: "bucket".into(),
        prefix: "p/".into(),
        key_marker: "p/a".into(),
        version_id_marker: "v0".into(),
        next_key_marker: Some("p/c".into()),
        next_version_id_marker: Some("null".into()),
        max_keys: 5,
        delimiter: Some("/".into()),
        encoding_type: Some("url".into()),
        is_truncated: true,
        entries: vec![
            marker("p/b", "m2", true),
            version("p/b", "v1", false),
            marker("p/b", "m0", false),
            version("p/c", "null", true),
        ],
        common_prefixes: vec![CommonPrefix {
            prefix: "p/d/".into(),
        }],
    };
    assert_xml(
        &result,
        &format!(
            "<ListVersionsResult {NS}><Name>bucket</Name><Prefix>p/</Prefix>\
             <KeyMarker>p/a</KeyMarker><VersionIdMarker>v0</VersionIdMarker>\
             <NextKeyMarker>p/c</NextKeyMarker><NextVersionIdMarker>null</NextVersionIdMarker>\
             <MaxKeys>5</MaxKeys><Delimiter>/</Delimiter><EncodingType>url</EncodingType>\
             <IsTruncated>true</IsTruncated>{}{}{}{}\
             <CommonPrefixes><Prefix>p/d/</Prefix></CommonPrefixes></ListVersionsResult>",
            marker_xml("p/b", "m2", true),
            version_xml("p/b", "v1", false),
            marker_xml("p/b", "m0", false),
            version_xml("p/c", "null", true),
        ),
    );
    assert_xml(
        &ListVersionsResult::default(),
        &format!(
            "<ListVersionsResult {NS}><Name/><Prefix/><KeyMarker/><VersionIdMarker/>\
             <MaxKeys>0</MaxKeys><IsTruncated>false</IsTruncated></ListVersionsResult>"
        ),
    );
}

#[test]
fn versioning_configuration() {
    assert_xml(
        &VersioningConfiguration::default(),
        &format!("<VersioningConfiguration {NS}/>"),
    );
    let enabled = VersioningConfiguration {
        xmlns: Xmlns,
        status: Some("Enabled".into()),
        mfa_delete: Some("Disabled".into()),
    };
    assert_xml(
        &enabled,
        &format!(
            "<VersioningConfiguration {NS}><Status>Enabled</Status>\
             <MfaDelete>Disabled</MfaDelete></VersioningConfiguration>"
        ),
    );
    // PutBucketVersioning body, as the SDKs send it.
    let body = format!(
        "<VersioningConfiguration {NS}><Status>Suspended</Status></VersioningConfiguration>"
    );
    let parsed: VersioningConfiguration = from_xml(body.as_bytes()).unwrap();
    assert_eq!(parsed.status.as_deref(), Some("Suspended"));
    assert_eq!(parsed.mfa_delete, None);
}

#[test]
fn access_control_policy() {
    let policy = AccessControlPolicy::owner_full_control(owner());
    let xml = to_xml(&policy);
    assert_eq!(
        xml,
        format!(
            "{DECL}<AccessControlPolicy {NS}>{OWNER_XML}<AccessControlList><Grant>\
             <Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
             xsi:type=\"CanonicalUser\"><ID>75aa57f09aa0c8caeab4f8c24e99d10f</ID>\
             <DisplayName>alice</DisplayName></Grantee><Permission>FULL_CONTROL</Permission>\
             </Grant></AccessControlList></AccessControlPolicy>"
        )
    );
    // PutBucketAcl bodies parse back, `xsi:type` included.
    let parsed: AccessControlPolicy = from_xml(xml.as_bytes()).unwrap();
    assert_eq!(parsed, policy);
    let group = "<AccessControlPolicy><Owner><ID>o</ID></Owner><AccessControlList><Grant>\
                 <Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:type=\"Group\">\
                 <URI>http://acs.amazonaws.com/groups/global/AllUsers</URI></Grantee>\
                 <Permission>READ</Permission></Grant></AccessControlList></AccessControlPolicy>";
    let parsed: AccessControlPolicy = from_xml(group.as_bytes()).unwrap();
    assert_eq!(parsed.owner.id, "o");
    let grant = &parsed.access_control_list[0];
    assert_eq!(grant.grantee.xsi_type, "Group");
    assert_eq!(
        grant.grantee.uri.as_deref(),
        Some("http://acs.amazonaws.com/groups/global/AllUsers")
    );
    assert_eq!(grant.permission, "READ");
}

// ---- requests -----------------------------------------------------------------------------

#[test]
fn delete_objects_body() {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Delete {NS}>\
         <Object><Key>sample1.txt</Key></Object>\
         <Object><Key>sample2.txt</Key><VersionId>v2</VersionId></Object>\
         <Quiet>true</Quiet></Delete>"
    );
    let parsed: Delete = from_xml(body.as_bytes()).unwrap();
    assert!(parsed.quiet);
    assert_eq!(
        parsed.objects,
        vec![
            ObjectIdentifier {
                key: "sample1.txt".into(),
                version_id: None,
            },
            ObjectIdentifier {
                key: "sample2.txt".into(),
                version_id: Some("v2".into()),
            },
        ]
    );

    // No namespace, Quiet first, pretty-printed.
    let body =
        "<Delete>\n  <Quiet>false</Quiet>\n  <Object>\n    <Key>a</Key>\n  </Object>\n</Delete>\n";
    let parsed: Delete = from_xml(body.as_bytes()).unwrap();
    assert!(!parsed.quiet);
    assert_eq!(parsed.objects.len(), 1);
    assert_eq!(parsed.objects[0].key, "a");

    // Byte-order mark, declaration and comments around the root.
    let body = "\u{feff}<?xml version=\"1.0\"?>\n<!-- c --><Delete><Object><Key>a</Key></Object></Delete>\n<!-- d -->\n";
    let parsed: Delete = from_xml(body.as_bytes()).unwrap();
    assert_eq!(parsed.objects[0].key, "a");

    // Quiet missing defaults to false.
    let parsed: Delete = from_xml(b"<Delete><Object><Key>a</Key></Object></Delete>").unwrap();
    assert!(!parsed.quiet);

    // Empty: zero objects (the handler answers MalformedXML, as S3 does).
    for body in [
        "<Delete></Delete>",
        "<Delete/>",
        "<Delete><Quiet>true</Quiet></Delete>",
    ] {
        let parsed: Delete = from_xml(body.as_bytes()).unwrap();
        assert!(parsed.objects.is_empty(), "{body}");
    }
}

#[test]
fn delete_objects_many() {
    let mut body = String::from("<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    for i in 0..1000 {
        body.push_str(&format!("<Object><Key>key-{i:04}</Key></Object>"));
    }
    body.push_str("</Delete>");
    let parsed: Delete = from_xml(body.as_bytes()).unwrap();
    assert_eq!(parsed.objects.len(), 1000);
    assert_eq!(parsed.objects[0].key, "key-0000");
    assert_eq!(parsed.objects[999].key, "key-0999");
}

#[test]
fn delete_objects_key_text() {
    let body = "<Delete><Object><Key>a &amp; b&lt;c&gt;&quot;d&apos;&#x41;&#66;</Key></Object>\
                <Object><Key><![CDATA[x<y>&z]]></Key></Object>\
                <Object><Key>  spaced  </Key></Object>\
                <Object><Key>caf\u{e9}/\u{1f600}</Key></Object></Delete>";
    let parsed: Delete = from_xml(body.as_bytes()).unwrap();
    let keys: Vec<_> = parsed.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "a & b<c>\"d'AB",
            "x<y>&z",
            "  spaced  ",
            "caf\u{e9}/\u{1f600}"
        ]
    );
}

#[test]
fn delete_objects_malformed() {
    for body in [
        "",
        "   ",
        "not xml",
        "<Delete>",
        "<Delete><Object><Key>a</Key></Delete>",
        "<Delete><Object><Key>a</Key></Object></Delete><Delete></Delete>",
        "<Delete></Delete>trailing",
        "<Delete><Object><VersionId>v</VersionId></Object></Delete>",
        "<Delete><Quiet>maybe</Quiet></Delete>",
        "<Delete><Object><Key>a &bogus; b</Key></Object></Delete>",
        "<NotDelete><Object><Key>a</Key></Object></NotDelete>",
        "<CompleteMultipartUpload></CompleteMultipartUpload>",
        "<!DOCTYPE d [<!ENTITY e \"x\">]><Delete><Object><Key>&e;</Key></Object></Delete>",
    ] {
        malformed::<Delete>(body.as_bytes());
    }
    malformed::<Delete>(b"<Delete><Object><Key>\xff</Key></Object></Delete>");
}

#[test]
fn delete_objects_interleaved_lists() {
    // AWS accepts list items that are not contiguous (quick-xml `overlapped-lists`).
    let body = "<Delete><Object><Key>a</Key></Object><Quiet>true</Quiet><Object><Key>b</Key></Object></Delete>";
    let parsed: Delete = from_xml(body.as_bytes()).unwrap();
    assert!(parsed.quiet);
    assert_eq!(
        parsed
            .objects
            .iter()
            .map(|o| o.key.as_str())
            .collect::<Vec<_>>(),
        ["a", "b"]
    );
}

#[test]
fn complete_multipart_upload_body() {
    let body = format!(
        "<CompleteMultipartUpload {NS}>\
         <Part><PartNumber>1</PartNumber><ETag>\"a54357aff0632cce46d942af68356b38\"</ETag></Part>\
         <Part><ETag>&quot;0c78aef83f66abc1fa1e8477f296d394&quot;</ETag><PartNumber>2</PartNumber>\
         <ChecksumCRC32>AAAAAA==</ChecksumCRC32><ChecksumCRC32C>BBBBBB==</ChecksumCRC32C>\
         <ChecksumCRC64NVME>CCCCCCCCCCC=</ChecksumCRC64NVME><ChecksumSHA1>DDDD</ChecksumSHA1>\
         <ChecksumSHA256>EEEE</ChecksumSHA256></Part>\
         <Part><PartNumber>3</PartNumber><ETag>acbd18db4cc2f85cedef654fccc4a4d8</ETag></Part>\
         </CompleteMultipartUpload>"
    );
    let parsed: CompleteMultipartUpload = from_xml(body.as_bytes()).unwrap();
    assert_eq!(parsed.parts.len(), 3);
    assert_eq!(
        parsed.parts[0],
        CompletedPart {
            part_number: 1,
            etag: "\"a54357aff0632cce46d942af68356b38\"".into(),
            ..Default::default()
        }
    );
    assert_eq!(
        parsed.parts[1],
        CompletedPart {
            part_number: 2,
            etag: "\"0c78aef83f66abc1fa1e8477f296d394\"".into(),
            checksum_crc32: Some("AAAAAA==".into()),
            checksum_crc32c: Some("BBBBBB==".into()),
            checksum_crc64nvme: Some("CCCCCCCCCCC=".into()),
            checksum_sha1: Some("DDDD".into()),
            checksum_sha256: Some("EEEE".into()),
        }
    );
    assert_eq!(parsed.parts[2].part_number, 3);
    assert_eq!(parsed.parts[2].etag, "acbd18db4cc2f85cedef654fccc4a4d8");

    let empty: CompleteMultipartUpload =
        from_xml(b"<CompleteMultipartUpload></CompleteMultipartUpload>").unwrap();
    assert!(empty.parts.is_empty());

    for body in [
        "<CompleteMultipartUpload><Part><ETag>e</ETag></Part></CompleteMultipartUpload>",
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part></CompleteMultipartUpload>",
        "<CompleteMultipartUpload><Part><PartNumber>x</PartNumber><ETag>e</ETag></Part></CompleteMultipartUpload>",
        "<CompleteMultipartUpload><Part><PartNumber>-1</PartNumber><ETag>e</ETag></Part></CompleteMultipartUpload>",
        "<Delete><Part><PartNumber>1</PartNumber><ETag>e</ETag></Part></Delete>",
    ] {
        malformed::<CompleteMultipartUpload>(body.as_bytes());
    }
}

#[test]
fn create_bucket_configuration_body() {
    let body = format!(
        "<CreateBucketConfiguration {NS}><LocationConstraint>eu-west-1</LocationConstraint>\
         </CreateBucketConfiguration>"
    );
    let parsed: CreateBucketConfiguration = from_xml(body.as_bytes()).unwrap();
    assert_eq!(parsed.location_constraint.as_deref(), Some("eu-west-1"));

    let parsed: CreateBucketConfiguration =
        from_xml(b"<CreateBucketConfiguration><LocationConstraint/></CreateBucketConfiguration>")
            .unwrap();
    assert_eq!(parsed.location_constraint.as_deref(), Some(""));

    let parsed: CreateBucketConfiguration = from_xml(b"<CreateBucketConfiguration/>").unwrap();
    assert_eq!(parsed.location_constraint, None);

    malformed::<CreateBucketConfiguration>(b"<LocationConstraint>eu-west-1</LocationConstraint>");
    malformed::<CreateBucketConfiguration>(b"");
}
