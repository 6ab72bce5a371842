//! Bucket website configuration: PutBucketWebsite, GetBucketWebsite, DeleteBucketWebsite
//! (`?website`). The website endpoint itself is [`crate::web`].

use cairn_proto::meta::{InvalidKind, InvalidWebsite, MetaCommand, WebsiteConfig};

use super::bucket_config::BucketConfig;
use crate::error::{S3Error, S3Result};
use crate::xml::{self, WebsiteConfiguration};

/// Largest PutBucketWebsite body accepted (50 rules fit many times over).
const MAX_BODY: usize = 128 * 1024;

/// The S3 error for a configuration S3 would refuse.
pub fn invalid_website(e: InvalidWebsite) -> S3Error {
    match e.kind {
        InvalidKind::Argument => S3Error::InvalidArgument(e.message),
        InvalidKind::Request => S3Error::InvalidRequest(e.message),
    }
}

/// Parses and validates a PutBucketWebsite body.
pub fn parse_website(body: &[u8]) -> S3Result<WebsiteConfig> {
    let doc: WebsiteConfiguration = xml::from_xml(body)?;
    let config = doc.into_config()?;
    config.validate().map_err(invalid_website)?;
    Ok(config)
}

/// PutBucketWebsite, GetBucketWebsite, DeleteBucketWebsite.
pub static WEBSITE: BucketConfig<WebsiteConfig> = BucketConfig {
    max_body: MAX_BODY,
    parse: parse_website,
    render: |config| xml::to_xml(&WebsiteConfiguration::from(config)),
    stored: |bucket| bucket.website.as_ref(),
    command: |bucket, website| MetaCommand::SetBucketWebsite { bucket, website },
    absent: || S3Error::NoSuchWebsiteConfiguration,
};

#[cfg(test)]
mod tests {
    use cairn_proto::meta::{Condition, Protocol, Redirect, RedirectAll, RoutingRule};

    use super::*;

    const NS: &str = "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"";

    fn doc(inner: &str) -> String {
        format!("<WebsiteConfiguration {NS}>{inner}</WebsiteConfiguration>")
    }

    #[track_caller]
    fn error_of(inner: &str) -> (&'static str, String) {
        let e = parse_website(doc(inner).as_bytes()).unwrap_err();
        (e.code(), e.message())
    }

    #[test]
    fn parses_a_full_configuration() {
        let body = doc("<IndexDocument><Suffix>index.html</Suffix></IndexDocument>\
             <ErrorDocument><Key>errors/404.html</Key></ErrorDocument>\
             <RoutingRules>\
               <RoutingRule>\
                 <Condition><KeyPrefixEquals>docs/</KeyPrefixEquals></Condition>\
                 <Redirect><ReplaceKeyPrefixWith>documents/</ReplaceKeyPrefixWith></Redirect>\
               </RoutingRule>\
               <RoutingRule>\
                 <Condition><HttpErrorCodeReturnedEquals>404</HttpErrorCodeReturnedEquals></Condition>\
                 <Redirect><Protocol>https</Protocol><HostName>example.com</HostName>\
                   <ReplaceKeyWith>missing.html</ReplaceKeyWith>\
                   <HttpRedirectCode>302</HttpRedirectCode></Redirect>\
               </RoutingRule>\
             </RoutingRules>");
        let config = parse_website(body.as_bytes()).unwrap();
        assert_eq!(
            config,
            WebsiteConfig {
                index_document: Some("index.html".into()),
                error_document: Some("errors/404.html".into()),
                redirect_all: None,
                routing_rules: vec![
                    RoutingRule {
                        condition: Some(Condition {
                            key_prefix_equals: Some("docs/".into()),
                            http_error_code_returned_equals: None,
                        }),
                        redirect: Redirect {
                            replace_key_prefix_with: Some("documents/".into()),
                            ..Default::default()
                        },
                    },
                    RoutingRule {
                        condition: Some(Condition {
                            key_prefix_equals: None,
                            http_error_code_returned_equals: Some(404),
                        }),
                        redirect: Redirect {
                            protocol: Some(Protocol::Https),
                            host_name: Some("example.com".into()),
                            replace_key_prefix_with: None,
                            replace_key_with: Some("missing.html".into()),
                            http_redirect_code: Some(302),
                        },
                    },
                ],
                spa_fallback: None,
            }
        );
        // Rendered back, it parses to the same configuration.
        let rendered = xml::to_xml(&WebsiteConfiguration::from(&config));
        assert!(rendered.contains(&format!("<WebsiteConfiguration {NS}>")));
        assert_eq!(parse_website(rendered.as_bytes()).unwrap(), config);
    }

    #[test]
    fn renders_in_s3_order() {
        let config = WebsiteConfig {
            index_document: Some("index.html".into()),
            error_document: Some("404.html".into()),
            ..Default::default()
        };
        assert_eq!(
            xml::to_xml(&WebsiteConfiguration::from(&config)),
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<WebsiteConfiguration {NS}>\
                 <IndexDocument><Suffix>index.html</Suffix></IndexDocument>\
                 <ErrorDocument><Key>404.html</Key></ErrorDocument></WebsiteConfiguration>"
            )
        );
        let all = WebsiteConfig {
            redirect_all: Some(RedirectAll {
                host_name: "example.com".into(),
                protocol: Some(Protocol::Https),
            }),
            ..Default::default()
        };
        let rendered = xml::to_xml(&WebsiteConfiguration::from(&all));
        assert!(
            rendered.contains(
                "<RedirectAllRequestsTo><HostName>example.com</HostName>\
                 <Protocol>https</Protocol></RedirectAllRequestsTo>"
            ),
            "{rendered}"
        );
        assert_eq!(parse_website(rendered.as_bytes()).unwrap(), all);
    }

    #[test]
    fn malformed_documents() {
        for body in [
            "",
            "not xml",
            "<WebsiteConfiguration><IndexDocument>",
            "<CORSConfiguration/>",
        ] {
            assert!(
                matches!(parse_website(body.as_bytes()), Err(S3Error::MalformedXML)),
                "{body:?}"
            );
        }
        for inner in [
            // A required element missing.
            "<IndexDocument></IndexDocument>",
            "<RedirectAllRequestsTo><Protocol>http</Protocol></RedirectAllRequestsTo>",
            "<IndexDocument><Suffix>i</Suffix></IndexDocument>\
             <RoutingRules><RoutingRule><Condition><KeyPrefixEquals>a</KeyPrefixEquals>\
             </Condition></RoutingRule></RoutingRules>",
            // An empty list of rules.
            "<IndexDocument><Suffix>i</Suffix></IndexDocument><RoutingRules></RoutingRules>",
            // A status that is not a number.
            "<IndexDocument><Suffix>i</Suffix></IndexDocument><RoutingRules><RoutingRule>\
             <Redirect><HttpRedirectCode>moved</HttpRedirectCode></Redirect>\
             </RoutingRule></RoutingRules>",
        ] {
            assert_eq!(error_of(inner).0, "MalformedXML", "{inner}");
        }
    }

    #[test]
    fn invalid_configurations_get_s3_codes() {
        let cases = [
            (
                "",
                "InvalidArgument",
                "IndexDocument Suffix must be provided",
            ),
            (
                "<ErrorDocument><Key>e.html</Key></ErrorDocument>",
                "InvalidArgument",
                "IndexDocument Suffix must be provided",
            ),
            (
                "<IndexDocument><Suffix></Suffix></IndexDocument>",
                "InvalidArgument",
                "not well formed",
            ),
            (
                "<IndexDocument><Suffix>a/b.html</Suffix></IndexDocument>",
                "InvalidArgument",
                "not well formed",
            ),
            (
                "<RedirectAllRequestsTo><HostName>x.com</HostName></RedirectAllRequestsTo>\
                 <IndexDocument><Suffix>i</Suffix></IndexDocument>",
                "InvalidArgument",
                "in conjunction",
            ),
            (
                "<RedirectAllRequestsTo><HostName>x.com</HostName>\
                 <Protocol>ftp</Protocol></RedirectAllRequestsTo>",
                "InvalidRequest",
                "Invalid protocol",
            ),
            (
                "<IndexDocument><Suffix>i</Suffix></IndexDocument><RoutingRules><RoutingRule>\
                 <Redirect><ReplaceKeyWith>a</ReplaceKeyWith>\
                 <ReplaceKeyPrefixWith>b</ReplaceKeyPrefixWith></Redirect>\
                 </RoutingRule></RoutingRules>",
                "InvalidRequest",
                "but not both",
            ),
            (
                "<IndexDocument><Suffix>i</Suffix></IndexDocument><RoutingRules><RoutingRule>\
                 <Redirect><HttpRedirectCode>300</HttpRedirectCode></Redirect>\
                 </RoutingRule></RoutingRules>",
                "InvalidRequest",
                "3XX except 300",
            ),
            (
                "<IndexDocument><Suffix>i</Suffix></IndexDocument><RoutingRules><RoutingRule>\
                 <Redirect><HttpRedirectCode>200</HttpRedirectCode></Redirect>\
                 </RoutingRule></RoutingRules>",
                "InvalidRequest",
                "(200) is not valid",
            ),
            (
                "<IndexDocument><Suffix>i</Suffix></IndexDocument><RoutingRules><RoutingRule>\
                 <Condition></Condition><Redirect><HostName>x.com</HostName></Redirect>\
                 </RoutingRule></RoutingRules>",
                "InvalidRequest",
                "Condition cannot be empty",
            ),
        ];
        for (inner, code, words) in cases {
            let (got, message) = error_of(inner);
            assert_eq!(got, code, "{inner}: {message}");
            assert!(message.contains(words), "{inner}: {message}");
        }
    }

    #[test]
    fn accepts_documents_without_namespace_and_in_any_order() {
        let body = "<WebsiteConfiguration><ErrorDocument><Key>e.html</Key></ErrorDocument>\
                    <IndexDocument><Suffix>index.htm</Suffix></IndexDocument>\
                    </WebsiteConfiguration>";
        let config = parse_website(body.as_bytes()).unwrap();
        assert_eq!(config.index_document.as_deref(), Some("index.htm"));
        assert_eq!(config.error_document.as_deref(), Some("e.html"));
    }
}
