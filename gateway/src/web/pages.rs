//! The HTML error pages of the website endpoint (S3's layout: a title, the code, message
//! and key as a list, and the failure to read a custom error document if there was one).

use quick_xml::escape::escape;

use crate::error::S3Error;

/// One failure shown on a page: the error and the key it concerns, if any.
#[derive(Debug, Clone, Copy)]
pub struct Failure<'a> {
    pub error: &'a S3Error,
    pub key: Option<&'a str>,
}

fn list_items(out: &mut String, failure: Failure<'_>) {
    let mut item = |label: &str, value: &str| {
        out.push_str("<li>");
        out.push_str(label);
        out.push_str(": ");
        out.push_str(&escape(value));
        out.push_str("</li>\n");
    };
    item("Code", failure.error.code());
    item("Message", &failure.error.message());
    if let Some(key) = failure.key {
        item("Key", key);
    }
}

/// The page for `failure`; `error_document` is why the custom error document could not be
/// served instead, when one is configured.
pub fn error_page(
    failure: Failure<'_>,
    error_document: Option<Failure<'_>>,
    request_id: &str,
) -> String {
    let status = failure.error.status();
    let title = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    let mut out =
        format!("<html>\n<head><title>{title}</title></head>\n<body>\n<h1>{title}</h1>\n<ul>\n");
    list_items(&mut out, failure);
    out.push_str("<li>RequestId: ");
    out.push_str(&escape(request_id));
    out.push_str("</li>\n</ul>\n");
    if let Some(doc) = error_document {
        out.push_str(
            "<h3>An Error Occurred While Attempting to Retrieve a Custom Error Document</h3>\n<ul>\n",
        );
        list_items(&mut out, doc);
        out.push_str("</ul>\n");
    }
    out.push_str("<hr/>\n</body>\n</html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_name_the_error_and_escape_keys() {
        let page = error_page(
            Failure {
                error: &S3Error::NoSuchKey,
                key: Some("<script>.html"),
            },
            None,
            "REQ1",
        );
        assert!(page.contains("<title>404 Not Found</title>"), "{page}");
        assert!(page.contains("<li>Code: NoSuchKey</li>"), "{page}");
        assert!(page.contains("<li>Key: &lt;script&gt;.html</li>"), "{page}");
        assert!(page.contains("<li>RequestId: REQ1</li>"), "{page}");
        assert!(!page.contains("Custom Error Document"), "{page}");
        let page = error_page(
            Failure {
                error: &S3Error::NoSuchKey,
                key: Some("a.html"),
            },
            Some(Failure {
                error: &S3Error::NoSuchKey,
                key: Some("404.html"),
            }),
            "REQ2",
        );
        assert!(page.contains("Custom Error Document"), "{page}");
        assert!(page.contains("<li>Key: 404.html</li>"), "{page}");
        let page = error_page(
            Failure {
                error: &S3Error::MethodNotAllowed,
                key: None,
            },
            None,
            "REQ3",
        );
        assert!(page.contains("<h1>405 Method Not Allowed</h1>"), "{page}");
        assert!(!page.contains("Key:"), "{page}");
    }
}
