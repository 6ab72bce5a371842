//! ListObjectsV2 and ListObjects (V1): prefix, delimiter / CommonPrefixes, paging with
//! continuation-token / start-after / marker over 2500 keys, encoding-type=url, fetch-owner,
//! IsTruncated, KeyCount.

use std::collections::BTreeSet;

use aws_sdk_s3::Client;
use aws_sdk_s3::types::EncodingType;
use cluster_tests::{
    Server, expect_s3_error, new_bucket, object_keys, prefix_names, put_bytes, quoted_md5,
    unique_bucket,
};
use futures::StreamExt;

fn server() -> &'static Server {
    Server::shared()
}

/// Creates a bucket holding `keys` (body = the key itself), 32 PUTs in flight.
async fn bucket_with(s3: &Client, prefix: &str, keys: &[String]) -> String {
    let bucket = new_bucket(s3, prefix).await;
    futures::stream::iter(keys)
        .for_each_concurrent(32, async |key| {
            put_bytes(s3, &bucket, key, key.as_bytes()).await;
        })
        .await;
    bucket
}

/// 2500 keys over a few top-level "directories" (bytewise order differs from insertion order).
fn many_keys() -> Vec<String> {
    let dirs = ["b", "a", "ü", "Z", "a-"];
    (0..2500)
        .map(|i| format!("{}/{:05}", dirs[i % dirs.len()], (i * 7919) % 10007))
        .collect()
}

fn sorted(keys: &[String]) -> Vec<String> {
    let set: BTreeSet<&String> = keys.iter().collect();
    assert_eq!(set.len(), keys.len(), "test keys must be distinct");
    set.into_iter().cloned().collect()
}

async fn many_keys_bucket() -> &'static str {
    static BUCKET: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    BUCKET
        .get_or_init(|| async { bucket_with(&server().client(), "many", &many_keys()).await })
        .await
}

#[tokio::test]
async fn v2_pages_through_2500_keys() {
    let s3 = server().client();
    let bucket = many_keys_bucket().await;
    let want = sorted(&many_keys());

    // Default max-keys is 1000.
    let first = s3.list_objects_v2().bucket(bucket).send().await.unwrap();
    assert_eq!(first.contents().len(), 1000, "default page size");
    assert_eq!(first.key_count(), Some(1000));
    assert_eq!(first.is_truncated(), Some(true));
    assert!(first.next_continuation_token().is_some());

    // Pages of 700: 700, 700, 700, 400.
    let mut got = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = Vec::new();
    loop {
        let page = s3
            .list_objects_v2()
            .bucket(bucket)
            .max_keys(700)
            .set_continuation_token(token.clone())
            .send()
            .await
            .unwrap();
        let n = page.contents().len();
        pages.push(n);
        assert_eq!(
            page.key_count(),
            Some(n as i32),
            "KeyCount of page {}",
            pages.len()
        );
        assert_eq!(page.max_keys(), Some(700));
        assert_eq!(page.continuation_token(), token.as_deref());
        got.extend(object_keys(page.contents()));
        if page.is_truncated() == Some(true) {
            token = Some(
                page.next_continuation_token()
                    .expect("NextContinuationToken on a truncated page")
                    .to_string(),
            );
        } else {
            assert!(page.next_continuation_token().is_none());
            break;
        }
        assert!(pages.len() < 10, "too many pages: {pages:?}");
    }
    assert_eq!(pages, vec![700, 700, 700, 400]);
    assert_eq!(got, want, "V2 paging must return every key once, sorted");

    // start-after: everything strictly after a key, paged by 450.
    let after = &want[1234];
    let mut got = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket(bucket)
            .start_after(after)
            .max_keys(450)
            .set_continuation_token(token.clone())
            .send()
            .await
            .unwrap();
        got.extend(object_keys(page.contents()));
        match page.next_continuation_token() {
            Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
            _ => break,
        }
    }
    assert_eq!(got, want[1235..].to_vec(), "start-after {after:?}");

    // start-after a key that does not exist, with a prefix.
    let page = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix("a/")
        .start_after("a/05000x")
        .send()
        .await
        .unwrap();
    let expect: Vec<&String> = want
        .iter()
        .filter(|k| k.starts_with("a/") && k.as_str() > "a/05000x")
        .collect();
    let got = object_keys(page.contents());
    assert_eq!(got.iter().collect::<Vec<_>>(), expect);
    assert_eq!(page.is_truncated(), Some(false));
}

#[tokio::test]
async fn v1_pages_through_2500_keys() {
    let s3 = server().client();
    let bucket = many_keys_bucket().await;
    let want = sorted(&many_keys());
    let mut got = Vec::new();
    let mut marker: Option<String> = None;
    let mut pages = Vec::new();
    loop {
        let page = s3
            .list_objects()
            .bucket(bucket)
            .max_keys(600)
            .set_marker(marker.clone())
            .send()
            .await
            .unwrap();
        pages.push(page.contents().len());
        assert_eq!(page.marker().unwrap_or(""), marker.as_deref().unwrap_or(""));
        got.extend(object_keys(page.contents()));
        if page.is_truncated() == Some(true) {
            // Without a delimiter NextMarker is optional; the last key is the next marker.
            let next = page
                .next_marker()
                .map(str::to_string)
                .unwrap_or_else(|| got.last().unwrap().clone());
            assert_eq!(&next, got.last().unwrap(), "NextMarker");
            marker = Some(next);
        } else {
            break;
        }
        assert!(pages.len() < 10, "too many pages: {pages:?}");
    }
    assert_eq!(pages, vec![600, 600, 600, 600, 100]);
    assert_eq!(got, want, "V1 paging must return every key once, sorted");
}

fn tree_keys() -> Vec<String> {
    [
        "docs/a.txt",
        "docs/b.txt",
        "docs/sub/c.txt",
        "photos/2024/jan/1.jpg",
        "photos/2024/feb/2.jpg",
        "photos/2025/3.jpg",
        "photos/cover.jpg",
        "readme.md",
        "zeta",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

struct Listing {
    keys: Vec<String>,
    prefixes: Vec<String>,
    key_count: Option<i32>,
    truncated: Option<bool>,
}

async fn list_v2(s3: &Client, bucket: &str, prefix: Option<&str>, delim: Option<&str>) -> Listing {
    let out = s3
        .list_objects_v2()
        .bucket(bucket)
        .set_prefix(prefix.map(str::to_string))
        .set_delimiter(delim.map(str::to_string))
        .send()
        .await
        .unwrap();
    Listing {
        keys: object_keys(out.contents()),
        prefixes: prefix_names(out.common_prefixes()),
        key_count: out.key_count(),
        truncated: out.is_truncated(),
    }
}

async fn list_v1(s3: &Client, bucket: &str, prefix: Option<&str>, delim: Option<&str>) -> Listing {
    let out = s3
        .list_objects()
        .bucket(bucket)
        .set_prefix(prefix.map(str::to_string))
        .set_delimiter(delim.map(str::to_string))
        .send()
        .await
        .unwrap();
    Listing {
        keys: object_keys(out.contents()),
        prefixes: prefix_names(out.common_prefixes()),
        key_count: None,
        truncated: out.is_truncated(),
    }
}

#[tokio::test]
async fn prefix_and_delimiter() {
    let s3 = server().client();
    let bucket = bucket_with(&s3, "tree", &tree_keys()).await;
    let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // (prefix, delimiter, keys, common prefixes)
    type Case<'a> = (Option<&'a str>, Option<&'a str>, Vec<String>, Vec<String>);
    let cases: Vec<Case> = vec![
        (None, None, sorted(&tree_keys()), vec![]),
        (
            None,
            Some("/"),
            v(&["readme.md", "zeta"]),
            v(&["docs/", "photos/"]),
        ),
        (
            Some("photos/"),
            Some("/"),
            v(&["photos/cover.jpg"]),
            v(&["photos/2024/", "photos/2025/"]),
        ),
        (
            Some("photos/2024/"),
            None,
            v(&["photos/2024/feb/2.jpg", "photos/2024/jan/1.jpg"]),
            vec![],
        ),
        (Some("doc"), Some("/"), vec![], v(&["docs/"])),
        (
            Some("docs/"),
            Some("."),
            vec![],
            v(&["docs/a.", "docs/b.", "docs/sub/c."]),
        ),
        (Some("docs/a.txt"), Some("/"), v(&["docs/a.txt"]), vec![]),
        (Some("nothing"), Some("/"), vec![], vec![]),
        (Some("nothing"), None, vec![], vec![]),
    ];
    for (prefix, delim, keys, prefixes) in cases {
        let what = format!("prefix={prefix:?} delimiter={delim:?}");
        let l2 = list_v2(&s3, &bucket, prefix, delim).await;
        assert_eq!(l2.keys, keys, "V2 keys, {what}");
        assert_eq!(l2.prefixes, prefixes, "V2 CommonPrefixes, {what}");
        assert_eq!(
            l2.key_count,
            Some((keys.len() + prefixes.len()) as i32),
            "V2 KeyCount, {what}"
        );
        assert_eq!(l2.truncated, Some(false), "V2 IsTruncated, {what}");
        let l1 = list_v1(&s3, &bucket, prefix, delim).await;
        assert_eq!(l1.keys, keys, "V1 keys, {what}");
        assert_eq!(l1.prefixes, prefixes, "V1 CommonPrefixes, {what}");
        assert_eq!(l1.truncated, Some(false), "V1 IsTruncated, {what}");
    }

    // Contents carry size, ETag and LastModified.
    let out = s3
        .list_objects_v2()
        .bucket(&bucket)
        .prefix("readme.md")
        .send()
        .await
        .unwrap();
    let obj = &out.contents()[0];
    assert_eq!(obj.size(), Some("readme.md".len() as i64));
    assert_eq!(obj.e_tag(), Some(quoted_md5(b"readme.md").as_str()));
    assert!(obj.last_modified().is_some());

    expect_s3_error(
        "ListObjectsV2 on a missing bucket",
        s3.list_objects_v2()
            .bucket(unique_bucket("missing"))
            .send()
            .await,
        404,
        Some("NoSuchBucket"),
    );
    expect_s3_error(
        "ListObjects on a missing bucket",
        s3.list_objects()
            .bucket(unique_bucket("missing"))
            .send()
            .await,
        404,
        Some("NoSuchBucket"),
    );
}

/// Root level of the delimiter-paging bucket: 30 "directories" of 5 keys each and 20 files,
/// interleaved in key order.
fn dir_keys() -> (Vec<String>, Vec<String>) {
    let mut keys = Vec::new();
    let mut entries = Vec::new();
    for i in 0..30 {
        for j in 0..5 {
            keys.push(format!("d{i:02}/f{j}"));
        }
        entries.push(format!("d{i:02}/"));
    }
    for i in 0..20 {
        let k = format!("d{:02}.file", i * 3 / 2);
        keys.push(k.clone());
        entries.push(k);
    }
    entries.sort();
    (keys, entries)
}

#[tokio::test]
async fn delimiter_paging() {
    let s3 = server().client();
    let (keys, entries) = dir_keys();
    let bucket = bucket_with(&s3, "dirs", &keys).await;

    // V2: continuation tokens, 7 entries (keys + prefixes) per page.
    let mut got = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(pages <= 20, "too many pages");
        let page = s3
            .list_objects_v2()
            .bucket(&bucket)
            .delimiter("/")
            .max_keys(7)
            .set_continuation_token(token.clone())
            .send()
            .await
            .unwrap();
        let n = page.contents().len() + page.common_prefixes().len();
        assert!(n <= 7, "page {pages} has {n} entries");
        assert_eq!(page.key_count(), Some(n as i32), "KeyCount of page {pages}");
        let mut page_entries = object_keys(page.contents());
        page_entries.extend(prefix_names(page.common_prefixes()));
        page_entries.sort();
        got.extend(page_entries);
        if page.is_truncated() == Some(true) {
            assert_eq!(n, 7, "a truncated page is full");
            token = Some(page.next_continuation_token().unwrap().to_string());
        } else {
            break;
        }
    }
    assert_eq!(got, entries, "V2 delimiter paging");

    // V1: NextMarker is required with a delimiter (and may be a common prefix).
    let mut got = Vec::new();
    let mut marker: Option<String> = None;
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(pages <= 20, "too many pages");
        let page = s3
            .list_objects()
            .bucket(&bucket)
            .delimiter("/")
            .max_keys(7)
            .set_marker(marker.clone())
            .send()
            .await
            .unwrap();
        let mut page_entries = object_keys(page.contents());
        page_entries.extend(prefix_names(page.common_prefixes()));
        page_entries.sort();
        assert!(page_entries.len() <= 7);
        let last = page_entries.last().cloned();
        got.extend(page_entries);
        if page.is_truncated() == Some(true) {
            let next = page
                .next_marker()
                .expect("NextMarker on a truncated V1 page with a delimiter");
            assert_eq!(Some(next), last.as_deref(), "NextMarker = last entry");
            marker = Some(next.to_string());
        } else {
            break;
        }
    }
    assert_eq!(got, entries, "V1 delimiter paging");

    // Prefix + delimiter inside one directory.
    let l = list_v2(&s3, &bucket, Some("d07/"), Some("/")).await;
    assert_eq!(
        l.keys,
        (0..5).map(|j| format!("d07/f{j}")).collect::<Vec<_>>()
    );
    assert!(l.prefixes.is_empty());
}

/// Percent-decoding as S3 clients do for encoding-type=url (`+` is a space).
fn url_decode(s: &str) -> String {
    let s = s.replace('+', " ");
    percent_encoding::percent_decode_str(&s)
        .decode_utf8()
        .unwrap_or_else(|e| panic!("{s:?} is not valid percent-encoded UTF-8: {e}"))
        .into_owned()
}

#[tokio::test]
async fn encoding_type_url() {
    let s3 = server().client();
    let keys: Vec<String> = [
        "a b/c+d",
        "a b/plain",
        "plain",
        "ü/日本",
        "50%/x&y=z",
        "ctrl\u{1}char",
        "tab\there",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let bucket = bucket_with(&s3, "encoded", &keys).await;

    let out = s3
        .list_objects_v2()
        .bucket(&bucket)
        .encoding_type(EncodingType::Url)
        .send()
        .await
        .unwrap();
    assert_eq!(out.encoding_type(), Some(&EncodingType::Url));
    let raw: Vec<&str> = out.contents().iter().map(|o| o.key().unwrap()).collect();
    for k in &raw {
        assert!(
            k.is_ascii() && !k.contains(' ') && !k.chars().any(|c| c.is_control()),
            "key {k:?} is not URL-encoded"
        );
    }
    let decoded: Vec<String> = raw.iter().map(|k| url_decode(k)).collect();
    assert_eq!(decoded, sorted(&keys), "decoded V2 keys");

    let out = s3
        .list_objects_v2()
        .bucket(&bucket)
        .encoding_type(EncodingType::Url)
        .delimiter("/")
        .send()
        .await
        .unwrap();
    let prefixes: Vec<String> = out
        .common_prefixes()
        .iter()
        .map(|p| url_decode(p.prefix().unwrap()))
        .collect();
    assert_eq!(prefixes, vec!["50%/", "a b/", "ü/"]);
    let keys_root: Vec<String> = out
        .contents()
        .iter()
        .map(|o| url_decode(o.key().unwrap()))
        .collect();
    assert_eq!(keys_root, vec!["ctrl\u{1}char", "plain", "tab\there"]);

    let out = s3
        .list_objects_v2()
        .bucket(&bucket)
        .encoding_type(EncodingType::Url)
        .prefix("a b/")
        .send()
        .await
        .unwrap();
    let got: Vec<String> = out
        .contents()
        .iter()
        .map(|o| url_decode(o.key().unwrap()))
        .collect();
    assert_eq!(got, vec!["a b/c+d", "a b/plain"]);
    if let Some(p) = out.prefix() {
        assert_eq!(url_decode(p), "a b/", "echoed Prefix");
    }

    let out = s3
        .list_objects()
        .bucket(&bucket)
        .encoding_type(EncodingType::Url)
        .send()
        .await
        .unwrap();
    let decoded: Vec<String> = out
        .contents()
        .iter()
        .map(|o| url_decode(o.key().unwrap()))
        .collect();
    assert_eq!(decoded, sorted(&keys), "decoded V1 keys");
}

#[tokio::test]
async fn fetch_owner() {
    let s3 = server().client();
    let keys = vec!["one".to_string(), "two".to_string()];
    let bucket = bucket_with(&s3, "owner", &keys).await;
    let out = s3.list_objects_v2().bucket(&bucket).send().await.unwrap();
    assert_eq!(out.contents().len(), 2);
    for o in out.contents() {
        assert!(o.owner().is_none(), "Owner without fetch-owner: {o:?}");
    }
    let out = s3
        .list_objects_v2()
        .bucket(&bucket)
        .fetch_owner(true)
        .send()
        .await
        .unwrap();
    assert_eq!(out.contents().len(), 2);
    for o in out.contents() {
        let owner = o
            .owner()
            .unwrap_or_else(|| panic!("no Owner with fetch-owner=true: {o:?}"));
        assert!(
            owner.id().is_some_and(|id| !id.is_empty()),
            "Owner without ID: {owner:?}"
        );
    }
}

#[tokio::test]
async fn empty_bucket_and_max_keys() {
    let s3 = server().client();
    let bucket = bucket_with(&s3, "empty", &[]).await;
    let out = s3.list_objects_v2().bucket(&bucket).send().await.unwrap();
    assert!(out.contents().is_empty());
    assert_eq!(out.key_count(), Some(0));
    assert_eq!(out.is_truncated(), Some(false));
    assert_eq!(out.name(), Some(bucket.as_str()));

    let out = s3.list_objects().bucket(&bucket).send().await.unwrap();
    assert!(out.contents().is_empty());
    assert_eq!(out.is_truncated(), Some(false));

    // max-keys=1 on three keys.
    let keys: Vec<String> = (0..3).map(|i| format!("k{i}")).collect();
    let bucket = bucket_with(&s3, "maxkeys", &keys).await;
    let out = s3
        .list_objects_v2()
        .bucket(&bucket)
        .max_keys(1)
        .send()
        .await
        .unwrap();
    assert_eq!(out.contents().len(), 1);
    assert_eq!(out.contents()[0].key(), Some("k0"));
    assert_eq!(out.is_truncated(), Some(true));
    let out = s3
        .list_objects_v2()
        .bucket(&bucket)
        .max_keys(3)
        .send()
        .await
        .unwrap();
    assert_eq!(out.contents().len(), 3);
    assert_eq!(
        out.is_truncated(),
        Some(false),
        "exactly max-keys keys left is not truncated"
    );
}
