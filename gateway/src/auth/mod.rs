//! AWS Signature Version 4 authentication.
//!
//! Two ways to carry a signature are understood:
//! - the `Authorization` header ([`sigv4`]),
//! - query parameters, a.k.a. presigned URLs ([`presign`]).
//!
//! Both are parsed into the same [`Claims`] and verified by one code path here: the canonical
//! request, the string to sign and the signing key are built only in this module. The body is
//! never read here; [`Authenticated::payload`] says how the caller must check it (for
//! `aws-chunked` bodies the [`StreamingContext`] carries the signing key and seed signature).
//!
//! Everything is pure: the clock is passed in and secrets come from a callback.

pub mod chunked;
pub mod post_policy;
mod presign;
mod sigv4;
#[cfg(test)]
mod tests;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode, percent_encode};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::S3Error;

/// The only signing algorithm accepted.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The service name in the credential scope.
pub const SERVICE: &str = "s3";
/// The last element of the credential scope.
pub const TERMINATOR: &str = "aws4_request";
/// `x-amz-content-sha256` value (and presigned payload hash) of an unsigned body.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// `x-amz-content-sha256` of an `aws-chunked` body with signed chunks.
pub const STREAMING_PAYLOAD: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
/// Same as [`STREAMING_PAYLOAD`], followed by signed trailers.
pub const STREAMING_PAYLOAD_TRAILER: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";
/// `x-amz-content-sha256` of an `aws-chunked` body with unsigned chunks and trailers.
pub const STREAMING_UNSIGNED_PAYLOAD_TRAILER: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
/// How far the request time may be from ours.
pub const MAX_CLOCK_SKEW: TimeDelta = TimeDelta::minutes(15);
/// `X-Amz-Date` / `x-amz-date` format (ISO 8601 basic).
const AMZ_DATE_FORMAT: &str = "%Y%m%dT%H%M%SZ";

/// What the gateway knows of the incoming request (borrowed, no body).
pub struct RequestParts<'a> {
    pub method: &'a http::Method,
    pub uri: &'a http::Uri,
    pub headers: &'a http::HeaderMap,
}

/// How the body must be checked after authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadCheck {
    /// `UNSIGNED-PAYLOAD`: nothing to check.
    Unsigned,
    /// The body's SHA-256 must equal this (see [`verify_payload_sha256`]).
    Sha256([u8; 32]),
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]`: verify each chunk signature.
    StreamingSigned(StreamingContext),
    /// `STREAMING-UNSIGNED-PAYLOAD-TRAILER`: `aws-chunked` without chunk signatures.
    StreamingUnsigned,
}

/// Everything needed to verify the chunk (and trailer) signatures of an `aws-chunked` body.
#[derive(Clone, PartialEq, Eq)]
pub struct StreamingContext {
    /// Derived signing key of the request's credential scope.
    pub signing_key: [u8; 32],
    /// The request signature (lowercase hex): the "previous signature" of the first chunk.
    pub seed_signature: String,
    /// The request timestamp as signed (`20130524T000000Z`).
    pub amz_date: String,
    /// The credential scope (`20130524/us-east-1/s3/aws4_request`).
    pub scope: String,
    /// Whether the body ends with signed trailers (`...-PAYLOAD-TRAILER`).
    pub trailer: bool,
}

impl std::fmt::Debug for StreamingContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamingContext")
            .field("signing_key", &"<redacted>")
            .field("seed_signature", &self.seed_signature)
            .field("amz_date", &self.amz_date)
            .field("scope", &self.scope)
            .field("trailer", &self.trailer)
            .finish()
    }
}

/// A request whose signature has been verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub access_key_id: String,
    pub payload: PayloadCheck,
}

/// Authenticates a request signed with SigV4 (header or presigned URL).
///
/// Returns `Ok(None)` for anonymous requests (no `Authorization` header and no `X-Amz-*`
/// signature query parameters). `secret_for(key_id)` returns the secret, or `None` for an
/// unknown key (→ `InvalidAccessKeyId`). `now` is injected for tests.
pub fn authenticate(
    req: &RequestParts,
    region: &str,
    now: DateTime<Utc>,
    secret_for: impl Fn(&str) -> Option<String>,
) -> Result<Option<Authenticated>, S3Error> {
    let header = req.headers.get(http::header::AUTHORIZATION);
    let query = req.uri.query().unwrap_or("");
    let claims = match (header, presign::is_presigned(query)?) {
        (None, false) => return Ok(None),
        (Some(_), true) => {
            return Err(S3Error::InvalidArgument(
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, \
                 Signature query string parameter or the Authorization header should be specified"
                    .into(),
            ));
        }
        (Some(value), false) => sigv4::parse(value, req.headers, now)?,
        (None, true) => presign::parse(query, req.headers, now)?,
    };
    verify(req, region, claims, secret_for).map(Some)
}

/// Checks a body's SHA-256 against the signed `x-amz-content-sha256`.
pub fn verify_payload_sha256(expected: &[u8; 32], actual: &[u8; 32]) -> Result<(), S3Error> {
    if bool::from(expected.ct_eq(actual)) {
        Ok(())
    } else {
        Err(S3Error::XAmzContentSHA256Mismatch)
    }
}

/// HMAC-SHA256 of `data` under `key`.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// SHA-256 of `data`, lowercase hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The SigV4 signing key: `kSigning` derived from the secret and the credential scope
/// (`date` is `YYYYMMDD`).
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    hmac_sha256(&k_service, TERMINATOR.as_bytes())
}

/// Where the signature came from; selects the wording of error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mechanism {
    Header,
    Query,
}

impl Mechanism {
    /// An `AuthorizationHeaderMalformed` error about the credential, worded like AWS.
    fn malformed(self, detail: &str) -> S3Error {
        S3Error::AuthorizationHeaderMalformed(match self {
            Mechanism::Header => format!("The authorization header is malformed; {detail}"),
            Mechanism::Query => format!("Error parsing the X-Amz-Credential parameter; {detail}"),
        })
    }
}

/// `AKID/YYYYMMDD/region/service/aws4_request`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Credential {
    access_key_id: String,
    date: String,
    region: String,
    service: String,
}

impl Credential {
    /// Parses the credential and checks its scope against ours and the request date.
    fn parse(
        value: &str,
        mechanism: Mechanism,
        region: &str,
        amz_date: &str,
    ) -> Result<Self, S3Error> {
        // Split from the right so that the access key id is whatever precedes the scope.
        let mut parts = value.rsplitn(5, '/');
        let (Some(terminator), Some(service), Some(cred_region), Some(date), Some(key_id)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(mechanism.malformed(
                "the Credential is mal-formed; expecting \
                 \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\".",
            ));
        };
        if key_id.is_empty() {
            return Err(mechanism.malformed(
                "the Credential is mal-formed; expecting \
                 \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\".",
            ));
        }
        if amz_date.get(..8) != Some(date) {
            return Err(
                mechanism.malformed("Invalid credential date. Date is not the same as X-Amz-Date.")
            );
        }
        if cred_region != region {
            return Err(mechanism.malformed(&format!(
                "the region '{cred_region}' is wrong; expecting '{region}'"
            )));
        }
        if service != SERVICE {
            return Err(mechanism.malformed(&format!(
                "incorrect service \"{service}\". This endpoint belongs to \"{SERVICE}\"."
            )));
        }
        if terminator != TERMINATOR {
            return Err(mechanism.malformed(&format!(
                "incorrect terminal \"{terminator}\". This endpoint uses \"{TERMINATOR}\"."
            )));
        }
        Ok(Credential {
            access_key_id: key_id.to_owned(),
            date: date.to_owned(),
            region: cred_region.to_owned(),
            service: service.to_owned(),
        })
    }

    /// `YYYYMMDD/region/service/aws4_request`.
    fn scope(&self) -> String {
        format!(
            "{}/{}/{}/{TERMINATOR}",
            self.date, self.region, self.service
        )
    }
}

/// What a request claims about its signature, whichever way it was carried. The credential is
/// kept raw: it is checked against the configured region in [`verify`].
#[derive(Debug)]
struct Claims {
    mechanism: Mechanism,
    credential: String,
    /// The request time exactly as it enters the string to sign.
    amz_date: String,
    /// Lowercase header names, in the order given.
    signed_headers: Vec<String>,
    signature: String,
    /// The last line of the canonical request.
    payload_hash: String,
}

/// The hashed-payload line, decoded.
enum PayloadKind {
    Unsigned,
    Sha256([u8; 32]),
    StreamingSigned { trailer: bool },
    StreamingUnsigned,
}

impl PayloadKind {
    fn parse(value: &str) -> Result<Self, S3Error> {
        Ok(match value {
            UNSIGNED_PAYLOAD => PayloadKind::Unsigned,
            STREAMING_PAYLOAD => PayloadKind::StreamingSigned { trailer: false },
            STREAMING_PAYLOAD_TRAILER => PayloadKind::StreamingSigned { trailer: true },
            STREAMING_UNSIGNED_PAYLOAD_TRAILER => PayloadKind::StreamingUnsigned,
            _ => {
                let mut digest = [0u8; 32];
                hex::decode_to_slice(value, &mut digest).map_err(|_| {
                    S3Error::InvalidArgument(format!(
                        "x-amz-content-sha256 must be {UNSIGNED_PAYLOAD}, \
                         {STREAMING_UNSIGNED_PAYLOAD_TRAILER}, {STREAMING_PAYLOAD}, \
                         {STREAMING_PAYLOAD_TRAILER} or a valid sha256 value."
                    ))
                })?;
                PayloadKind::Sha256(digest)
            }
        })
    }
}

/// Verifies the claimed signature against the request: the one place a signature is computed.
fn verify(
    req: &RequestParts,
    region: &str,
    claims: Claims,
    secret_for: impl Fn(&str) -> Option<String>,
) -> Result<Authenticated, S3Error> {
    let credential = Credential::parse(
        &claims.credential,
        claims.mechanism,
        region,
        &claims.amz_date,
    )?;
    let payload = PayloadKind::parse(&claims.payload_hash)?;
    let secret = secret_for(&credential.access_key_id).ok_or(S3Error::InvalidAccessKeyId)?;

    let key = signing_key(
        &secret,
        &credential.date,
        &credential.region,
        &credential.service,
    );
    let scope = credential.scope();
    let canonical = canonical_request(
        req,
        &claims.signed_headers,
        &claims.payload_hash,
        claims.mechanism == Mechanism::Query,
    );
    let expected = hmac_sha256(
        &key,
        string_to_sign(&claims.amz_date, &scope, &canonical).as_bytes(),
    );

    let mut given = [0u8; 32];
    let well_formed = hex::decode_to_slice(&claims.signature, &mut given).is_ok();
    if !(well_formed && bool::from(expected.ct_eq(&given))) {
        return Err(S3Error::SignatureDoesNotMatch);
    }

    let payload = match payload {
        PayloadKind::Unsigned => PayloadCheck::Unsigned,
        PayloadKind::Sha256(digest) => PayloadCheck::Sha256(digest),
        PayloadKind::StreamingUnsigned => PayloadCheck::StreamingUnsigned,
        PayloadKind::StreamingSigned { trailer } => {
            PayloadCheck::StreamingSigned(StreamingContext {
                signing_key: key,
                seed_signature: hex::encode(expected),
                amz_date: claims.amz_date,
                scope,
                trailer,
            })
        }
    };
    Ok(Authenticated {
        access_key_id: credential.access_key_id,
        payload,
    })
}

/// `AWS4-HMAC-SHA256\n<amz_date>\n<scope>\n<hex(sha256(canonical request))>`.
fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &[u8]) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request)
    )
}

/// The canonical request (bytes: header values need not be UTF-8):
/// method, URI, query, headers, signed header list and payload hash, one per line.
fn canonical_request(
    req: &RequestParts,
    signed_headers: &[String],
    payload_hash: &str,
    presigned: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(req.method.as_str().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_uri(req.uri.path()).as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_query(req.uri.query().unwrap_or(""), presigned).as_bytes());
    out.push(b'\n');
    for name in signed_headers {
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        canonical_header_value(req, name, &mut out);
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(signed_headers.join(";").as_bytes());
    out.push(b'\n');
    out.extend_from_slice(payload_hash.as_bytes());
    out
}

/// Characters AWS leaves unencoded: `A-Za-z0-9-._~`.
const AWS_ENCODE_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The canonical URI: the path as sent, each segment decoded then re-encoded with the AWS
/// rules, so `$`, `%24` and `%2f` all come out as clients sign them. S3 does not normalize
/// `.`/`..` or empty segments and does not double-encode.
fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        return "/".into();
    }
    let mut out = String::with_capacity(path.len() + 16);
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        let decoded: Vec<u8> = percent_decode(segment.as_bytes()).collect();
        out.extend(percent_encode(&decoded, AWS_ENCODE_SET));
    }
    out
}

/// The canonical query string: each name and value decoded (`+` is a space, as S3 reads
/// query strings), re-encoded with the AWS rules, sorted by name then value; a parameter
/// without `=` gets an empty value. Presigned requests leave out `X-Amz-Signature`.
fn canonical_query(query: &str, presigned: bool) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_query_component(name), decode_query_component(value))
        })
        .filter(|(name, _)| !(presigned && name.as_slice() == b"X-Amz-Signature"))
        .map(|(name, value)| {
            (
                percent_encode(&name, AWS_ENCODE_SET).to_string(),
                percent_encode(&value, AWS_ENCODE_SET).to_string(),
            )
        })
        .collect();
    pairs.sort_unstable();
    let mut out = String::with_capacity(query.len() + 16);
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}

/// Decodes one query-string name or value (`application/x-www-form-urlencoded` rules) to bytes.
fn decode_query_component(s: &str) -> Vec<u8> {
    let plus_as_space: Vec<u8> = s
        .bytes()
        .map(|b| if b == b'+' { b' ' } else { b })
        .collect();
    percent_decode(&plus_as_space).collect()
}

/// Appends the canonical value of header `name`: every occurrence trimmed, inner runs of
/// whitespace collapsed to one space, occurrences joined with `,`. Without a `Host` header
/// (HTTP/2) the URI authority stands in for it.
fn canonical_header_value(req: &RequestParts, name: &str, out: &mut Vec<u8>) {
    let mut values: Vec<&[u8]> = req
        .headers
        .get_all(name)
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    if values.is_empty() && name == "host" {
        values.extend(req.uri.authority().map(|a| a.as_str().as_bytes()));
    }
    for (i, value) in values.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let words = value
            .split(|b| b.is_ascii_whitespace())
            .filter(|w| !w.is_empty());
        for (j, word) in words.enumerate() {
            if j > 0 {
                out.push(b' ');
            }
            out.extend_from_slice(word);
        }
    }
}

/// Parses a `SignedHeaders` list: `;`-separated, lowercased, each a valid header name.
fn parse_signed_headers(list: &str, mechanism: Mechanism) -> Result<Vec<String>, S3Error> {
    let names: Vec<String> = list.split(';').map(str::to_ascii_lowercase).collect();
    let valid = |name: &String| http::HeaderName::from_bytes(name.as_bytes()).is_ok();
    if names.iter().all(valid) {
        Ok(names)
    } else {
        Err(match mechanism {
            Mechanism::Header => S3Error::AuthorizationHeaderMalformed(format!(
                "The authorization header is malformed; invalid SignedHeaders \"{list}\"."
            )),
            Mechanism::Query => S3Error::AuthorizationHeaderMalformed(format!(
                "Error parsing the X-Amz-SignedHeaders parameter \"{list}\"."
            )),
        })
    }
}

/// Parses an ISO 8601 basic timestamp (`20130524T000000Z`).
fn parse_amz_date(value: &str) -> Option<DateTime<Utc>> {
    if value.len() != 16 || !value.is_ascii() {
        return None;
    }
    NaiveDateTime::parse_from_str(value, AMZ_DATE_FORMAT)
        .ok()
        .map(|t| t.and_utc())
}

/// Formats a timestamp the way it enters the string to sign.
fn format_amz_date(t: DateTime<Utc>) -> String {
    t.format(AMZ_DATE_FORMAT).to_string()
}
