//! Website routing decisions that need no I/O: the key a path names, the index document of
//! a "directory", which routing rule applies and where a redirect points.

use cairn_proto::meta::{RedirectAll, RoutingRule};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// Characters kept as they are in a redirect path: unreserved ones and `/`.
const PATH_KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// Scheme and host of the request, which a redirect keeps unless it names others.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub protocol: &'a str,
    pub host: &'a str,
}

/// The object key a request path names: percent-decoded, without the leading `/`; `None`
/// when it is not UTF-8.
pub fn path_key(path: &str) -> Option<String> {
    let decoded = percent_decode_str(path).decode_utf8().ok()?;
    Some(decoded.strip_prefix('/').unwrap_or(&decoded).to_string())
}

/// The key to serve for `key`: the index document for the root and for keys ending in `/`.
pub fn with_index(key: &str, suffix: &str) -> String {
    if key.is_empty() || key.ends_with('/') {
        format!("{key}{suffix}")
    } else {
        key.to_string()
    }
}

/// Whether the last path segment of `key` has a file extension (`app.js`, not `about` nor
/// `v1.2/`): only extension-less paths get the SPA fallback.
pub fn has_extension(key: &str) -> bool {
    let last = key.rsplit('/').next().unwrap_or("");
    last.rfind('.')
        .is_some_and(|dot| dot > 0 && dot + 1 < last.len())
}

/// `key` as a URL path (`/` + percent-encoded key).
pub fn url_path(key: &str) -> String {
    format!("/{}", utf8_percent_encode(key, PATH_KEEP))
}

/// The first rule (in order) that applies to `key`: before the object is read
/// (`error = None`) a rule without an error-code condition, after a failure with status
/// `error` a rule whose error code is that status. A key prefix in the condition must match
/// as well; a rule without a condition applies to every request.
pub fn find_rule<'a>(
    rules: &'a [RoutingRule],
    key: &str,
    error: Option<u16>,
) -> Option<&'a RoutingRule> {
    rules.iter().find(|rule| match &rule.condition {
        None => error.is_none(),
        Some(c) => {
            c.http_error_code_returned_equals == error
                && c.key_prefix_equals
                    .as_deref()
                    .is_none_or(|prefix| key.starts_with(prefix))
        }
    })
}

/// Where `rule` sends a request for `key`: `ReplaceKeyWith`, or `ReplaceKeyPrefixWith` in
/// place of the condition's prefix, on the rule's protocol and host (the request's when
/// absent).
pub fn rule_location(rule: &RoutingRule, key: &str, origin: Origin<'_>) -> String {
    let r = &rule.redirect;
    let new_key = match (&r.replace_key_with, &r.replace_key_prefix_with) {
        (Some(whole), _) => whole.clone(),
        (None, Some(replacement)) => {
            let prefix = rule
                .condition
                .as_ref()
                .and_then(|c| c.key_prefix_equals.as_deref())
                .unwrap_or("");
            format!("{replacement}{}", key.strip_prefix(prefix).unwrap_or(key))
        }
        (None, None) => key.to_string(),
    };
    format!(
        "{}://{}{}",
        r.protocol.map_or(origin.protocol, |p| p.as_str()),
        r.host_name.as_deref().unwrap_or(origin.host),
        url_path(&new_key)
    )
}

/// Where `RedirectAllRequestsTo` sends a request for `path` (as sent, still encoded).
pub fn redirect_all_location(all: &RedirectAll, path: &str, origin: Origin<'_>) -> String {
    format!(
        "{}://{}{}",
        all.protocol.map_or(origin.protocol, |p| p.as_str()),
        all.host_name,
        if path.is_empty() { "/" } else { path }
    )
}

#[cfg(test)]
mod tests {
    use cairn_proto::meta::{Condition, Protocol, Redirect};

    use super::*;

    const ORIGIN: Origin<'static> = Origin {
        protocol: "http",
        host: "site.web.test:9001",
    };

    fn rule(prefix: Option<&str>, error: Option<u16>, redirect: Redirect) -> RoutingRule {
        RoutingRule {
            condition: (prefix.is_some() || error.is_some()).then(|| Condition {
                key_prefix_equals: prefix.map(str::to_string),
                http_error_code_returned_equals: error,
            }),
            redirect,
        }
    }

    #[test]
    fn keys_and_index_documents() {
        assert_eq!(path_key("/").as_deref(), Some(""));
        assert_eq!(path_key("/a%20b/c.html").as_deref(), Some("a b/c.html"));
        assert_eq!(path_key("/%ff"), None);
        assert_eq!(with_index("", "index.html"), "index.html");
        assert_eq!(with_index("docs/", "index.html"), "docs/index.html");
        assert_eq!(with_index("docs", "index.html"), "docs");
        assert_eq!(url_path("a b/ü?.html"), "/a%20b/%C3%BC%3F.html");
    }

    #[test]
    fn extensions() {
        for with in ["app.js", "a/b/style.min.css", "v1.2/x.png"] {
            assert!(has_extension(with), "{with}");
        }
        for without in ["", "about", "users/42", "v1.2/", ".hidden", "trailing."] {
            assert!(!has_extension(without), "{without}");
        }
    }

    #[test]
    fn rules_apply_in_order_and_by_phase() {
        let rules = vec![
            rule(Some("old/"), Some(404), Redirect::default()),
            rule(
                Some("docs/"),
                None,
                Redirect {
                    replace_key_prefix_with: Some("documents/".into()),
                    ..Default::default()
                },
            ),
            rule(
                None,
                Some(404),
                Redirect {
                    replace_key_with: Some("missing.html".into()),
                    ..Default::default()
                },
            ),
        ];
        // Before reading: only the prefix rule, and only for its prefix.
        assert_eq!(find_rule(&rules, "docs/a.html", None), Some(&rules[1]));
        assert_eq!(find_rule(&rules, "old/a.html", None), None);
        assert_eq!(find_rule(&rules, "x.html", None), None);
        // After a 404: the error rules, the first that matches.
        assert_eq!(find_rule(&rules, "old/a.html", Some(404)), Some(&rules[0]));
        assert_eq!(find_rule(&rules, "x.html", Some(404)), Some(&rules[2]));
        assert_eq!(find_rule(&rules, "x.html", Some(500)), None);
        // A rule without a condition applies to every request, before reading.
        let always = vec![rule(None, None, Redirect::default())];
        assert_eq!(find_rule(&always, "x", None), Some(&always[0]));
        assert_eq!(find_rule(&always, "x", Some(404)), None);
    }

    #[test]
    fn redirect_locations() {
        let prefix = rule(
            Some("docs/"),
            None,
            Redirect {
                replace_key_prefix_with: Some("documents/".into()),
                ..Default::default()
            },
        );
        assert_eq!(
            rule_location(&prefix, "docs/a b.html", ORIGIN),
            "http://site.web.test:9001/documents/a%20b.html"
        );
        let whole = rule(
            None,
            Some(404),
            Redirect {
                protocol: Some(Protocol::Https),
                host_name: Some("example.com".into()),
                replace_key_with: Some("error.html".into()),
                ..Default::default()
            },
        );
        assert_eq!(
            rule_location(&whole, "x/y", ORIGIN),
            "https://example.com/error.html"
        );
        let same_key = rule(
            Some("img/"),
            None,
            Redirect {
                host_name: Some("cdn.example.com".into()),
                ..Default::default()
            },
        );
        assert_eq!(
            rule_location(&same_key, "img/a.png", ORIGIN),
            "http://cdn.example.com/img/a.png"
        );
        let strip = rule(
            Some("app/"),
            None,
            Redirect {
                replace_key_prefix_with: Some(String::new()),
                ..Default::default()
            },
        );
        assert_eq!(
            rule_location(&strip, "app/page", ORIGIN),
            "http://site.web.test:9001/page"
        );
        let all = RedirectAll {
            host_name: "www.example.com".into(),
            protocol: Some(Protocol::Https),
        };
        assert_eq!(
            redirect_all_location(&all, "/a/b%20c", ORIGIN),
            "https://www.example.com/a/b%20c"
        );
        let all = RedirectAll {
            host_name: "www.example.com".into(),
            protocol: None,
        };
        assert_eq!(
            redirect_all_location(&all, "", ORIGIN),
            "http://www.example.com/"
        );
    }
}
