//! SigV4 in query parameters (presigned URLs): `X-Amz-Algorithm`, `X-Amz-Credential`,
//! `X-Amz-Date`, `X-Amz-Expires`, `X-Amz-SignedHeaders` and `X-Amz-Signature`.

use std::borrow::Cow;

use chrono::{DateTime, TimeDelta, Utc};
use http::HeaderMap;

use super::{
    ALGORITHM, Claims, MAX_CLOCK_SKEW, Mechanism, UNSIGNED_PAYLOAD, parse_amz_date,
    parse_signed_headers,
};
use crate::error::S3Error;

/// Longest validity of a presigned URL: one week.
const MAX_EXPIRES_SECS: i64 = 604_800;

/// Whether the query carries SigV4 parameters. A SigV2 presigned URL is refused rather than
/// served as anonymous.
pub(super) fn is_presigned(query: &str) -> Result<bool, S3Error> {
    let mut presigned = false;
    for (name, _) in form_urlencoded::parse(query.as_bytes()) {
        match name.as_ref() {
            "X-Amz-Algorithm" | "X-Amz-Credential" | "X-Amz-Signature" => presigned = true,
            "AWSAccessKeyId" => {
                return Err(S3Error::InvalidRequest(
                    "The authorization mechanism you have provided is not supported. \
                     Please use AWS4-HMAC-SHA256."
                        .into(),
                ));
            }
            _ => {}
        }
    }
    Ok(presigned)
}

/// Parses the `X-Amz-*` parameters and checks the validity window against `now`.
pub(super) fn parse(
    query: &str,
    headers: &HeaderMap,
    now: DateTime<Utc>,
) -> Result<Claims, S3Error> {
    let params = Params::parse(query)?;
    if params.algorithm != ALGORITHM {
        return Err(S3Error::AuthorizationHeaderMalformed(format!(
            "X-Amz-Algorithm only supports \"{ALGORITHM}\""
        )));
    }

    let time = parse_amz_date(&params.date).ok_or_else(|| {
        S3Error::AuthorizationHeaderMalformed(
            "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"".into(),
        )
    })?;
    let expires = parse_expires(&params.expires)?;
    if time - now > MAX_CLOCK_SKEW {
        return Err(S3Error::RequestTimeTooSkewed);
    }
    match time.checked_add_signed(expires) {
        Some(end) if now <= end => {}
        _ => return Err(S3Error::ExpiredToken),
    }

    // A presigned URL does not sign the body unless the client sent its hash.
    let payload_hash = match headers.get("x-amz-content-sha256") {
        None => UNSIGNED_PAYLOAD.to_owned(),
        Some(value) => value
            .to_str()
            .map_err(|_| {
                S3Error::InvalidArgument(
                    "x-amz-content-sha256 must be a valid sha256 value.".into(),
                )
            })?
            .to_owned(),
    };

    Ok(Claims {
        mechanism: Mechanism::Query,
        signed_headers: parse_signed_headers(&params.signed_headers, Mechanism::Query)?,
        credential: params.credential.into_owned(),
        amz_date: params.date.into_owned(),
        signature: params.signature.into_owned(),
        payload_hash,
    })
}

/// The six required parameters, decoded (first occurrence of each).
struct Params<'a> {
    algorithm: Cow<'a, str>,
    credential: Cow<'a, str>,
    date: Cow<'a, str>,
    expires: Cow<'a, str>,
    signed_headers: Cow<'a, str>,
    signature: Cow<'a, str>,
}

impl<'a> Params<'a> {
    fn parse(query: &'a str) -> Result<Self, S3Error> {
        let (mut algorithm, mut credential, mut date) = (None, None, None);
        let (mut expires, mut signed_headers, mut signature) = (None, None, None);
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            let slot = match name.as_ref() {
                "X-Amz-Algorithm" => &mut algorithm,
                "X-Amz-Credential" => &mut credential,
                "X-Amz-Date" => &mut date,
                "X-Amz-Expires" => &mut expires,
                "X-Amz-SignedHeaders" => &mut signed_headers,
                "X-Amz-Signature" => &mut signature,
                _ => continue,
            };
            slot.get_or_insert(value);
        }
        match (
            algorithm,
            credential,
            date,
            expires,
            signed_headers,
            signature,
        ) {
            (
                Some(algorithm),
                Some(credential),
                Some(date),
                Some(expires),
                Some(signed_headers),
                Some(signature),
            ) => Ok(Params {
                algorithm,
                credential,
                date,
                expires,
                signed_headers,
                signature,
            }),
            _ => Err(S3Error::AuthorizationHeaderMalformed(
                "Query-string authentication version 4 requires the X-Amz-Algorithm, \
                 X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, \
                 and X-Amz-Expires parameters."
                    .into(),
            )),
        }
    }
}

/// `X-Amz-Expires`: whole seconds in `1..=604800`.
fn parse_expires(value: &str) -> Result<TimeDelta, S3Error> {
    let secs: i64 = value.parse().map_err(|_| {
        S3Error::AuthorizationHeaderMalformed("X-Amz-Expires should be a number".into())
    })?;
    if secs < 1 {
        return Err(S3Error::AuthorizationHeaderMalformed(
            "X-Amz-Expires must be at least 1 second".into(),
        ));
    }
    if secs > MAX_EXPIRES_SECS {
        return Err(S3Error::AuthorizationHeaderMalformed(format!(
            "X-Amz-Expires must be less than a week (in seconds) that is {MAX_EXPIRES_SECS}"
        )));
    }
    Ok(TimeDelta::seconds(secs))
}
