//! Cross-origin resource sharing, shared by the S3 and the website endpoint: validation of a
//! bucket's CORS configuration (AWS rules), rule matching, the answer to a preflight
//! `OPTIONS`, and the `Access-Control-*` headers of ordinary (and error) responses.
//!
//! As S3: the first rule whose `AllowedOrigin` matches the `Origin`, whose `AllowedMethod`
//! holds the method and (preflight only) whose `AllowedHeader`s cover every requested header
//! wins. A `*` origin rule answers `Access-Control-Allow-Origin: *`; any other rule echoes
//! the origin and allows credentials. Responses of a bucket with a CORS configuration carry
//! `Vary` so caches keep answers to different origins apart.

use cairn_proto::meta::{CorsConfig, CorsRule};
use http::{HeaderMap, HeaderValue, header};

use crate::error::{S3Error, S3Result};

/// Most rules one configuration may hold (as AWS).
pub const MAX_RULES: usize = 100;

/// The methods a rule may allow.
const METHODS: &[&str] = &["GET", "PUT", "HEAD", "POST", "DELETE"];

/// `Vary` of every response of a bucket with a CORS configuration (as S3).
const VARY: &str = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method";

/// Checks a configuration the way PutBucketCors does.
pub fn validate(config: &CorsConfig) -> S3Result<()> {
    if config.rules.is_empty() || config.rules.len() > MAX_RULES {
        return Err(S3Error::MalformedXML);
    }
    for rule in &config.rules {
        if rule.allowed_methods.is_empty() || rule.allowed_origins.is_empty() {
            return Err(S3Error::MalformedXML);
        }
        if let Some(method) = rule
            .allowed_methods
            .iter()
            .find(|m| !METHODS.contains(&m.as_str()))
        {
            return Err(S3Error::InvalidRequest(format!(
                "Found unsupported HTTP method in CORS config. Unsupported method is {method}"
            )));
        }
        for (what, values) in [
            ("AllowedOrigin", &rule.allowed_origins),
            ("AllowedHeader", &rule.allowed_headers),
        ] {
            if let Some(v) = values.iter().find(|v| v.matches('*').count() > 1) {
                return Err(S3Error::InvalidRequest(format!(
                    "{what} \"{v}\" can not have more than one wildcard."
                )));
            }
        }
        if rule.id.as_ref().is_some_and(|id| id.len() > 255) {
            return Err(S3Error::InvalidRequest(
                "The ID of a CORSRule is limited to 255 characters".into(),
            ));
        }
    }
    Ok(())
}

/// Whether `value` matches `pattern`, which holds at most one `*` (any run of characters).
fn wildcard_match(pattern: &str, value: &str, ignore_case: bool) -> bool {
    let eq = |a: &str, b: &str| {
        if ignore_case {
            a.eq_ignore_ascii_case(b)
        } else {
            a == b
        }
    };
    match pattern.split_once('*') {
        None => eq(pattern, value),
        Some((prefix, suffix)) => {
            value.len() >= prefix.len() + suffix.len()
                && value.is_char_boundary(prefix.len())
                && value.is_char_boundary(value.len() - suffix.len())
                && eq(prefix, &value[..prefix.len()])
                && eq(suffix, &value[value.len() - suffix.len()..])
        }
    }
}

/// The first rule allowing `origin` to use `method` with `request_headers` (lowercase).
pub fn find_rule<'a>(
    config: &'a CorsConfig,
    origin: &str,
    method: &str,
    request_headers: &[String],
) -> Option<&'a CorsRule> {
    config.rules.iter().find(|rule| {
        rule.allowed_origins
            .iter()
            .any(|o| wildcard_match(o, origin, false))
            && rule.allowed_methods.iter().any(|m| m == method)
            && request_headers.iter().all(|h| {
                rule.allowed_headers
                    .iter()
                    .any(|allowed| wildcard_match(allowed, h, true))
            })
    })
}

/// A header value from configuration text; `None` if it cannot be sent.
fn value(s: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(s).ok()
}

/// Sets the `Access-Control-*` headers granted by `rule` to `origin` (`allow_headers` only
/// for a preflight).
fn grant(rule: &CorsRule, origin: &HeaderValue, allow_headers: &[String], out: &mut HeaderMap) {
    let any_origin = rule.allowed_origins.iter().any(|o| o == "*");
    if any_origin {
        out.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    } else {
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        out.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    let lists = [
        (
            header::ACCESS_CONTROL_ALLOW_METHODS,
            rule.allowed_methods.as_slice(),
        ),
        (header::ACCESS_CONTROL_ALLOW_HEADERS, allow_headers),
        (
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            rule.expose_headers.as_slice(),
        ),
    ];
    for (name, list) in lists {
        if let Some(v) = (!list.is_empty())
            .then(|| value(&list.join(", ")))
            .flatten()
        {
            out.insert(name, v);
        }
    }
    if let Some(age) = rule.max_age_seconds {
        out.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(age));
    }
}

/// Adds the CORS headers of an ordinary response (success or error) to a request with
/// `method` and `origin` (its `Origin` header), for a bucket whose configuration is `config`.
pub fn add_response_headers(
    config: Option<&CorsConfig>,
    method: &http::Method,
    origin: Option<&HeaderValue>,
    out: &mut HeaderMap,
) {
    let Some(config) = config else {
        return;
    };
    out.insert(header::VARY, HeaderValue::from_static(VARY));
    let Some(origin) = origin else {
        return;
    };
    let Ok(origin_text) = origin.to_str() else {
        return;
    };
    if let Some(rule) = find_rule(config, origin_text, method.as_str(), &[]) {
        grant(rule, origin, &[], out);
    }
}

/// The headers answering a preflight `OPTIONS` (status 200), or why it is refused: 400
/// without `Origin` / `Access-Control-Request-Method`, 403 `AccessForbidden` when the bucket
/// has no CORS configuration or no rule allows the request.
pub fn preflight(config: Option<&CorsConfig>, request_headers: &HeaderMap) -> S3Result<HeaderMap> {
    let text = |name: header::HeaderName| {
        request_headers
            .get(name)
            .map(|v| {
                v.to_str()
                    .map_err(|_| S3Error::BadRequest(format!("Invalid {v:?}")))
            })
            .transpose()
    };
    let origin = text(header::ORIGIN)?.ok_or_else(|| {
        S3Error::BadRequest("Insufficient information. Origin request header needed.".into())
    })?;
    let method = text(header::ACCESS_CONTROL_REQUEST_METHOD)?
        .ok_or_else(|| S3Error::BadRequest("Invalid Access-Control-Request-Method: null".into()))?;
    let requested: Vec<String> = request_headers
        .get_all(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect();
    let config = config.ok_or_else(|| {
        S3Error::AccessForbidden("CORSResponse: CORS is not enabled for this bucket.".into())
    })?;
    let rule = find_rule(config, origin, method, &requested).ok_or_else(|| {
        S3Error::AccessForbidden(
            "CORSResponse: This CORS request is not allowed. This is usually because the \
             evalution of Origin, request method / Access-Control-Request-Method or \
             Access-Control-Requet-Headers are not whitelisted by the resource's CORS spec."
                .into(),
        )
    })?;
    let mut out = HeaderMap::new();
    out.insert(header::VARY, HeaderValue::from_static(VARY));
    let origin = request_headers
        .get(header::ORIGIN)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("*"));
    grant(rule, &origin, &requested, &mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> CorsRule {
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        CorsRule {
            allowed_origins: own(origins),
            allowed_methods: own(methods),
            allowed_headers: own(headers),
            ..Default::default()
        }
    }

    fn config(rules: Vec<CorsRule>) -> CorsConfig {
        CorsConfig { rules }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn wildcards_match_one_run_of_characters() {
        assert!(wildcard_match("*", "https://anything", false));
        assert!(wildcard_match(
            "https://*.example.com",
            "https://a.b.example.com",
            false
        ));
        assert!(!wildcard_match(
            "https://*.example.com",
            "https://example.com",
            false
        ));
        assert!(!wildcard_match(
            "https://a.example",
            "https://b.example",
            false
        ));
        assert!(!wildcard_match(
            "https://A.example",
            "https://a.example",
            false
        ));
        assert!(wildcard_match("x-amz-*", "X-Amz-Date", true));
        assert!(!wildcard_match("ab*ba", "aba", false), "overlapping ends");
        assert!(!wildcard_match("é*", "e", false));
    }

    #[test]
    fn validation_follows_aws() {
        let ok = config(vec![rule(&["*"], &["GET", "PUT"], &["*"])]);
        assert!(validate(&ok).is_ok());
        assert!(matches!(
            validate(&config(vec![])),
            Err(S3Error::MalformedXML)
        ));
        assert!(matches!(
            validate(&config(vec![rule(&["*"], &[], &[])])),
            Err(S3Error::MalformedXML)
        ));
        assert!(matches!(
            validate(&config(vec![rule(&[], &["GET"], &[])])),
            Err(S3Error::MalformedXML)
        ));
        assert!(matches!(
            validate(&config(vec![rule(&["*"], &["PATCH"], &[])])),
            Err(S3Error::InvalidRequest(m)) if m.contains("PATCH")
        ));
        assert!(matches!(
            validate(&config(vec![rule(&["*"], &["get"], &[])])),
            Err(S3Error::InvalidRequest(_))
        ));
        assert!(matches!(
            validate(&config(vec![rule(&["https://*.*.example"], &["GET"], &[])])),
            Err(S3Error::InvalidRequest(m)) if m.contains("AllowedOrigin")
        ));
        assert!(matches!(
            validate(&config(vec![rule(&["*"], &["GET"], &["x-*-*"])])),
            Err(S3Error::InvalidRequest(m)) if m.contains("AllowedHeader")
        ));
        let many = config(vec![rule(&["*"], &["GET"], &[]); MAX_RULES + 1]);
        assert!(validate(&many).is_err());
        let max = config(vec![rule(&["*"], &["GET"], &[]); MAX_RULES]);
        assert!(validate(&max).is_ok());
    }

    #[test]
    fn first_matching_rule_wins() {
        let c = config(vec![
            rule(&["https://a.example"], &["PUT"], &["content-type"]),
            rule(&["https://*.example"], &["GET"], &[]),
            rule(&["*"], &["GET", "PUT"], &["*"]),
        ]);
        let ct = vec!["content-type".to_string()];
        let found =
            |o, m, h: &[String]| find_rule(&c, o, m, h).map(|r| r.allowed_origins[0].as_str());
        assert_eq!(
            found("https://a.example", "PUT", &ct),
            Some("https://a.example")
        );
        assert_eq!(
            found("https://b.example", "GET", &[]),
            Some("https://*.example")
        );
        assert_eq!(found("https://b.example", "PUT", &ct), Some("*"));
        let unknown_header = vec!["x-custom".to_string()];
        assert_eq!(
            found("https://a.example", "PUT", &unknown_header),
            Some("*")
        );
        assert_eq!(found("https://a.example", "DELETE", &[]), None);
    }

    #[test]
    fn preflight_answers_and_refusals() {
        let mut specific = rule(&["https://site.example"], &["PUT", "POST"], &["Content-*"]);
        specific.expose_headers = vec!["ETag".into(), "x-amz-request-id".into()];
        specific.max_age_seconds = Some(600);
        let c = config(vec![specific, rule(&["*"], &["GET"], &[])]);

        let h = preflight(
            Some(&c),
            &headers(&[
                ("origin", "https://site.example"),
                ("access-control-request-method", "PUT"),
                (
                    "access-control-request-headers",
                    "Content-Type, content-md5",
                ),
            ]),
        )
        .unwrap();
        let get = |n: &str| h.get(n).map(|v| v.to_str().unwrap().to_string());
        assert_eq!(
            get("access-control-allow-origin").as_deref(),
            Some("https://site.example")
        );
        assert_eq!(
            get("access-control-allow-methods").as_deref(),
            Some("PUT, POST")
        );
        assert_eq!(
            get("access-control-allow-headers").as_deref(),
            Some("content-type, content-md5")
        );
        assert_eq!(
            get("access-control-expose-headers").as_deref(),
            Some("ETag, x-amz-request-id")
        );
        assert_eq!(get("access-control-max-age").as_deref(), Some("600"));
        assert_eq!(
            get("access-control-allow-credentials").as_deref(),
            Some("true")
        );
        assert!(get("vary").unwrap().starts_with("Origin"));

        let any = preflight(
            Some(&c),
            &headers(&[
                ("origin", "https://other.example"),
                ("access-control-request-method", "GET"),
            ]),
        )
        .unwrap();
        assert_eq!(any.get("access-control-allow-origin").unwrap(), "*");
        assert!(any.get("access-control-allow-credentials").is_none());

        let refused = |pairs: &[(&str, &str)], cfg: Option<&CorsConfig>| {
            preflight(cfg, &headers(pairs)).unwrap_err()
        };
        let put_from_other = [
            ("origin", "https://other.example"),
            ("access-control-request-method", "PUT"),
        ];
        assert!(matches!(
            refused(&put_from_other, Some(&c)),
            S3Error::AccessForbidden(m) if m.contains("not allowed")
        ));
        assert!(matches!(
            refused(&put_from_other, None),
            S3Error::AccessForbidden(m) if m.contains("not enabled")
        ));
        assert!(matches!(
            refused(&[("access-control-request-method", "GET")], Some(&c)),
            S3Error::BadRequest(_)
        ));
        assert!(matches!(
            refused(&[("origin", "https://site.example")], Some(&c)),
            S3Error::BadRequest(_)
        ));
        assert_eq!(
            refused(&[("origin", "https://site.example")], Some(&c)).status(),
            http::StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn response_headers_for_matching_origins_only() {
        let c = config(vec![rule(&["https://site.example"], &["GET"], &[])]);
        let origin = HeaderValue::from_static("https://site.example");
        let req = Some(&origin);
        let mut out = HeaderMap::new();
        add_response_headers(Some(&c), &http::Method::GET, req, &mut out);
        assert_eq!(out["access-control-allow-origin"], "https://site.example");
        assert_eq!(out["access-control-allow-methods"], "GET");
        assert!(out.get("access-control-allow-headers").is_none());

        let mut out = HeaderMap::new();
        add_response_headers(Some(&c), &http::Method::PUT, req, &mut out);
        assert!(out.get("access-control-allow-origin").is_none());
        assert!(out.get("vary").is_some(), "Vary even when no rule matches");

        let mut out = HeaderMap::new();
        add_response_headers(None, &http::Method::GET, req, &mut out);
        assert!(out.is_empty(), "no configuration, no CORS headers");
    }
}
