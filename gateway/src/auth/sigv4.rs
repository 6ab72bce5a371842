//! SigV4 in the `Authorization` header:
//! `AWS4-HMAC-SHA256 Credential=AKID/20130524/us-east-1/s3/aws4_request,
//! SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=<hex>`.

use chrono::{DateTime, Utc};
use http::{HeaderMap, HeaderValue};

use super::{
    ALGORITHM, Claims, MAX_CLOCK_SKEW, Mechanism, format_amz_date, parse_amz_date,
    parse_signed_headers,
};
use crate::error::S3Error;

/// Parses the `Authorization` header and checks the request time against `now`.
pub(super) fn parse(
    authorization: &HeaderValue,
    headers: &HeaderMap,
    now: DateTime<Utc>,
) -> Result<Claims, S3Error> {
    let fields = AuthorizationFields::parse(authorization)?;

    let (amz_date, time) = request_time(headers)?;
    if (now - time).abs() > MAX_CLOCK_SKEW {
        return Err(S3Error::RequestTimeTooSkewed);
    }

    let payload_hash = headers
        .get("x-amz-content-sha256")
        .ok_or_else(|| {
            S3Error::InvalidRequest(
                "Missing required header for this request: x-amz-content-sha256".into(),
            )
        })?
        .to_str()
        .map_err(|_| {
            S3Error::InvalidArgument("x-amz-content-sha256 must be a valid sha256 value.".into())
        })?
        .to_owned();

    Ok(Claims {
        mechanism: Mechanism::Header,
        credential: fields.credential.to_owned(),
        amz_date,
        signed_headers: parse_signed_headers(fields.signed_headers, Mechanism::Header)?,
        signature: fields.signature.to_owned(),
        payload_hash,
    })
}

/// The three fields after the algorithm name.
struct AuthorizationFields<'a> {
    credential: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

impl<'a> AuthorizationFields<'a> {
    /// Accepts the fields in any order, separated by commas and/or whitespace.
    fn parse(value: &'a HeaderValue) -> Result<Self, S3Error> {
        let malformed = || {
            S3Error::AuthorizationHeaderMalformed(
                "The authorization header is malformed; the authorization header requires \
                 three components: Credential, SignedHeaders, and Signature."
                    .into(),
            )
        };
        let value = value.to_str().map_err(|_| malformed())?.trim();
        let (algorithm, rest) = value
            .split_once(|c: char| c.is_ascii_whitespace())
            .unwrap_or((value, ""));
        if algorithm.is_empty() {
            return Err(malformed());
        }
        if algorithm != ALGORITHM {
            return Err(unsupported_algorithm(algorithm));
        }

        let (mut credential, mut signed_headers, mut signature) = (None, None, None);
        let components = rest
            .split(|c: char| c == ',' || c.is_ascii_whitespace())
            .filter(|c| !c.is_empty());
        for component in components {
            let (name, value) = component.split_once('=').ok_or_else(malformed)?;
            let slot = match name {
                "Credential" => &mut credential,
                "SignedHeaders" => &mut signed_headers,
                "Signature" => &mut signature,
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err(malformed());
            }
        }
        let missing = |name: &str| {
            S3Error::AuthorizationHeaderMalformed(format!(
                "Authorization header requires '{name}' parameter."
            ))
        };
        Ok(AuthorizationFields {
            credential: credential.ok_or_else(|| missing("Credential"))?,
            signed_headers: signed_headers.ok_or_else(|| missing("SignedHeaders"))?,
            signature: signature.ok_or_else(|| missing("Signature"))?,
        })
    }
}

/// The error for an `Authorization` scheme other than SigV4.
fn unsupported_algorithm(algorithm: &str) -> S3Error {
    if algorithm == "AWS" || algorithm.starts_with("AWS4-") {
        // SigV2, SigV4a: AWS schemes we do not implement.
        S3Error::InvalidRequest(
            "The authorization mechanism you have provided is not supported. \
             Please use AWS4-HMAC-SHA256."
                .into(),
        )
    } else {
        S3Error::InvalidArgument("Unsupported Authorization Type".into())
    }
}

/// The request time from `x-amz-date`, else from `Date` (ISO 8601 basic or RFC 1123), and
/// the form it takes in the string to sign.
fn request_time(headers: &HeaderMap) -> Result<(String, DateTime<Utc>), S3Error> {
    if let Some(value) = headers.get("x-amz-date") {
        let value = value.to_str().map_err(|_| S3Error::AccessDenied)?;
        let time = parse_amz_date(value).ok_or(S3Error::AccessDenied)?;
        return Ok((value.to_owned(), time));
    }
    let value = headers
        .get(http::header::DATE)
        .and_then(|v| v.to_str().ok())
        .ok_or(S3Error::AccessDenied)?;
    let time = parse_amz_date(value)
        .or_else(|| {
            DateTime::parse_from_rfc2822(value)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        })
        .ok_or(S3Error::AccessDenied)?;
    Ok((format_amz_date(time), time))
}
