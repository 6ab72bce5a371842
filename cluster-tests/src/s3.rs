//! S3 clients: aws-sdk-s3 with test settings, error inspection, and hand-made requests
//! (anonymous or SigV4-signed) for what the SDK will not send.

use std::fmt::Debug;
use std::time::{Duration, SystemTime};

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use bytes::Bytes;
use sha2::Digest;

use crate::server::KeyPair;

pub const REGION: &str = "us-east-1";

/// aws-sdk-s3 client for `endpoint` (`http://host:port`): path style, region `us-east-1`,
/// no retries (a failure shows as it happened).
///
/// Checksums are computed/validated only where the API requires them (`when_required`), like
/// the aws CLI configuration the smoke test uses: flexible checksums and `aws-chunked` uploads
/// are covered by their own tests.
///
/// A request whose response headers have not arrived 120 s after it started fails (so a hung
/// server fails the test instead of hanging it); see [`s3_client_with_timeout`].
pub fn s3_client(endpoint: &str, access_key: &str, secret_key: &str) -> aws_sdk_s3::Client {
    s3_client_with_timeout(endpoint, access_key, secret_key, Duration::from_secs(120))
}

/// [`s3_client`] with another limit for "request start to response headers" (which includes
/// the upload of the body).
pub fn s3_client_with_timeout(
    endpoint: &str,
    access_key: &str,
    secret_key: &str,
    read_timeout: Duration,
) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        s3_config(endpoint, access_key, secret_key, read_timeout)
            .force_path_style(true)
            .build(),
    )
}

/// The settings of [`s3_client_with_timeout`], addressing style left to the caller.
pub fn s3_config(
    endpoint: &str,
    access_key: &str,
    secret_key: &str,
    read_timeout: Duration,
) -> aws_sdk_s3::config::Builder {
    aws_sdk_s3::Config::builder()
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .read_timeout(read_timeout)
                .build(),
        )
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(
            access_key,
            secret_key,
            None,
            None,
            "cluster-tests",
        ))
        .retry_config(RetryConfig::disabled())
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
}

/// What an S3 call that failed looked like on the wire.
#[derive(Debug, Clone)]
pub struct S3Failure {
    /// HTTP status, if a response arrived.
    pub status: Option<u16>,
    /// `<Code>` of the error document (absent for HEAD).
    pub code: Option<String>,
    pub message: Option<String>,
    /// Full error text for assertion messages.
    pub detail: String,
}

/// Status/code of an SDK error.
pub fn s3_failure<E>(err: &SdkError<E, HttpResponse>) -> S3Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    S3Failure {
        status: err.raw_response().map(|r| r.status().as_u16()),
        code: err.code().map(str::to_string),
        message: err.message().map(str::to_string),
        detail: format!("{}", DisplayErrorContext(err)),
    }
}

/// Asserts that `res` failed with HTTP `status` and (unless `None`) S3 error `code`.
#[track_caller]
pub fn expect_s3_error<T, E>(
    what: &str,
    res: Result<T, SdkError<E, HttpResponse>>,
    status: u16,
    code: Option<&str>,
) -> S3Failure
where
    T: Debug,
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match res {
        Ok(v) => panic!(
            "{what}: expected HTTP {status} {}, but the call succeeded: {v:?}",
            code.unwrap_or("")
        ),
        Err(e) => {
            let f = s3_failure(&e);
            assert_eq!(
                f.status,
                Some(status),
                "{what}: expected HTTP {status} {code:?}, got {f:?}"
            );
            if let Some(code) = code {
                assert_eq!(
                    f.code.as_deref(),
                    Some(code),
                    "{what}: expected code {code}, got {f:?}"
                );
            }
            f
        }
    }
}

/// CreateMultipartUpload of `key`: the upload id; panics on failure.
pub async fn create_upload(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> String {
    s3.create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateMultipartUpload {key:?}: {e:?}"))
        .upload_id()
        .expect("upload id")
        .to_string()
}

/// The body of CompleteMultipartUpload listing `(part number, ETag)`s.
pub fn completed_upload(parts: &[(i32, &str)]) -> aws_sdk_s3::types::CompletedMultipartUpload {
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    CompletedMultipartUpload::builder()
        .set_parts(Some(
            parts
                .iter()
                .map(|(n, etag)| {
                    CompletedPart::builder()
                        .part_number(*n)
                        .e_tag(*etag)
                        .build()
                })
                .collect(),
        ))
        .build()
}

/// A bucket name that no other test uses: `prefix-<8 hex>`.
pub fn unique_bucket(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}

/// Percent-encodes an object key for a URL path or `x-amz-copy-source` (keeps `/` and the
/// unreserved characters).
pub fn url_encode_key(key: &str) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const KEEP: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~')
        .remove(b'/');
    utf8_percent_encode(key, KEEP).to_string()
}

/// A plain HTTP client (no proxy from the environment, loopback only).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("build reqwest client")
}

/// A response to a hand-made request.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Bytes,
}

impl RawResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    /// Text of the first `<tag>...</tag>` in the body.
    pub fn xml_field(&self, tag: &str) -> Option<String> {
        let text = self.text();
        let open = format!("<{tag}>");
        let close = format!("</{tag}>");
        let start = text.find(&open)? + open.len();
        let end = start + text[start..].find(&close)?;
        Some(text[start..end].to_string())
    }

    /// The S3 error `<Code>`.
    pub fn code(&self) -> Option<String> {
        self.xml_field("Code")
    }

    /// Asserts the status and (unless `None`) the S3 error code.
    #[track_caller]
    pub fn expect(&self, what: &str, status: u16, code: Option<&str>) {
        assert_eq!(
            self.status,
            status,
            "{what}: expected HTTP {status} {code:?}, got {}: {}",
            self.status,
            self.text()
        );
        if let Some(code) = code {
            assert_eq!(
                self.code().as_deref(),
                Some(code),
                "{what}: expected <Code>{code}</Code>, got HTTP {}: {}",
                self.status,
                self.text()
            );
        }
    }
}

/// Sends an unsigned request. `url` is already encoded.
pub async fn raw_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> RawResponse {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("valid method");
    let mut req = http_client().request(method, url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("request to {url} failed: {e}"));
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("reading the response of {url} failed: {e}"));
    RawResponse {
        status,
        headers,
        body,
    }
}

/// Sends a request signed with SigV4 (header auth, `x-amz-content-sha256` = hash of `body`).
/// `url` is already encoded.
pub async fn signed_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
    key: &KeyPair,
) -> RawResponse {
    let signed = sign_headers(method, url, headers, &body, key, SystemTime::now());
    let mut all: Vec<(&str, &str)> = headers.to_vec();
    all.extend(signed.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    raw_request(method, url, &all, body).await
}

/// The headers (`authorization`, `x-amz-date`, `x-amz-content-sha256`) that sign a request.
pub fn sign_headers(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    key: &KeyPair,
    time: SystemTime,
) -> Vec<(String, String)> {
    let hash = hex::encode(sha2::Sha256::digest(body));
    sign_headers_for_payload(method, url, headers, &hash, key, time).0
}

/// Like [`sign_headers`], with `x-amz-content-sha256` = `payload` (a hex hash or a marker
/// such as `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`); also returns the request signature, the
/// seed of aws-chunked chunk signatures.
pub fn sign_headers_for_payload(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    payload: &str,
    key: &KeyPair,
    time: SystemTime,
) -> (Vec<(String, String)>, String) {
    let identity = Credentials::new(&key.id, &key.secret, None, None, "cluster-tests").into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("s3")
        .time(time)
        .settings(settings)
        .build()
        .expect("signing params")
        .into();
    let request = SignableRequest::new(
        method,
        url,
        headers.iter().copied(),
        SignableBody::Precomputed(payload.to_string()),
    )
    .expect("signable request");
    let (instructions, signature) = sign(request, &params).expect("sign request").into_parts();
    let headers = instructions
        .headers()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (headers, signature)
}
