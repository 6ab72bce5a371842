//! `<WebsiteConfiguration>`: the PutBucketWebsite request body and the GetBucketWebsite
//! response, and their mapping to the stored [`WebsiteConfig`].
//!
//! Mapping a parsed document checks what S3's schema checks (a required element missing or
//! empty, a status code that is not a number, an empty `<RoutingRules>`) and answers
//! `MalformedXML`, or `InvalidRequest` for an unknown protocol, as S3 does. The semantic
//! checks (`InvalidArgument` / `InvalidRequest`) are [`WebsiteConfig::validate`]'s.

use cairn_proto::meta::{Condition, Protocol, Redirect, RedirectAll, RoutingRule, WebsiteConfig};
use serde::{Deserialize, Serialize};

use super::Xmlns;
use crate::error::S3Error;

/// PutBucketWebsite body / GetBucketWebsite response, elements in S3's order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename = "WebsiteConfiguration", rename_all = "PascalCase")]
pub struct WebsiteConfiguration {
    /// Namespace attribute.
    #[serde(rename = "@xmlns", default)]
    pub xmlns: Xmlns,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub redirect_all_requests_to: Option<RedirectAllRequestsTo>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub index_document: Option<IndexDocument>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_document: Option<ErrorDocument>,
    /// `None` when the element is absent; present but empty is malformed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub routing_rules: Option<RoutingRules>,
}

/// `<RedirectAllRequestsTo>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RedirectAllRequestsTo {
    pub host_name: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub protocol: Option<String>,
}

/// `<IndexDocument><Suffix>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IndexDocument {
    pub suffix: String,
}

/// `<ErrorDocument><Key>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ErrorDocument {
    pub key: String,
}

/// `<RoutingRules>`: one `<RoutingRule>` per rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingRules {
    #[serde(rename = "RoutingRule", default)]
    pub rules: Vec<RoutingRuleXml>,
}

/// One `<RoutingRule>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RoutingRuleXml {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub condition: Option<ConditionXml>,
    pub redirect: RedirectXml,
}

/// `<Condition>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConditionXml {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub http_error_code_returned_equals: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub key_prefix_equals: Option<String>,
}

/// `<Redirect>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RedirectXml {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub host_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub http_redirect_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub protocol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub replace_key_prefix_with: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub replace_key_with: Option<String>,
}

/// S3's answer to a protocol other than `http` / `https`.
fn parse_protocol(p: Option<&str>) -> Result<Option<Protocol>, S3Error> {
    p.map(|p| {
        Protocol::parse(p).ok_or_else(|| {
            S3Error::InvalidRequest(
                "Invalid protocol, protocol can be http or https. If not defined the protocol \
                 will be selected automatically."
                    .into(),
            )
        })
    })
    .transpose()
}

/// A status code element: not a number is malformed (the range is checked by validation).
fn parse_code(code: Option<&str>) -> Result<Option<u16>, S3Error> {
    code.map(|c| c.trim().parse::<u16>().map_err(|_| S3Error::MalformedXML))
        .transpose()
}

impl WebsiteConfiguration {
    /// The configuration this document describes (not yet validated).
    pub fn into_config(self) -> Result<WebsiteConfig, S3Error> {
        let redirect_all = self
            .redirect_all_requests_to
            .map(|r| {
                Ok::<_, S3Error>(RedirectAll {
                    protocol: parse_protocol(r.protocol.as_deref())?,
                    host_name: r.host_name,
                })
            })
            .transpose()?;
        let routing_rules = match self.routing_rules {
            None => Vec::new(),
            Some(RoutingRules { rules }) if rules.is_empty() => return Err(S3Error::MalformedXML),
            Some(RoutingRules { rules }) => rules
                .into_iter()
                .map(RoutingRuleXml::into_rule)
                .collect::<Result<_, _>>()?,
        };
        Ok(WebsiteConfig {
            index_document: self.index_document.map(|d| d.suffix),
            error_document: self.error_document.map(|d| d.key),
            redirect_all,
            routing_rules,
            spa_fallback: None,
        })
    }
}

impl RoutingRuleXml {
    fn into_rule(self) -> Result<RoutingRule, S3Error> {
        let condition = self
            .condition
            .map(|c| {
                Ok::<_, S3Error>(Condition {
                    http_error_code_returned_equals: parse_code(
                        c.http_error_code_returned_equals.as_deref(),
                    )?,
                    key_prefix_equals: c.key_prefix_equals,
                })
            })
            .transpose()?;
        let r = self.redirect;
        // S3's schema wants every redirect element that is present to have a value.
        let given = [
            &r.host_name,
            &r.http_redirect_code,
            &r.protocol,
            &r.replace_key_with,
        ];
        if given.iter().any(|v| v.as_deref() == Some("")) {
            return Err(S3Error::MalformedXML);
        }
        Ok(RoutingRule {
            condition,
            redirect: Redirect {
                protocol: parse_protocol(r.protocol.as_deref())?,
                http_redirect_code: parse_code(r.http_redirect_code.as_deref())?,
                host_name: r.host_name,
                replace_key_prefix_with: r.replace_key_prefix_with,
                replace_key_with: r.replace_key_with,
            },
        })
    }
}

impl From<&WebsiteConfig> for WebsiteConfiguration {
    fn from(c: &WebsiteConfig) -> Self {
        let rules: Vec<RoutingRuleXml> = c
            .routing_rules
            .iter()
            .map(|rule| RoutingRuleXml {
                condition: rule.condition.as_ref().map(|c| ConditionXml {
                    http_error_code_returned_equals: c
                        .http_error_code_returned_equals
                        .map(|code| code.to_string()),
                    key_prefix_equals: c.key_prefix_equals.clone(),
                }),
                redirect: RedirectXml {
                    host_name: rule.redirect.host_name.clone(),
                    http_redirect_code: rule.redirect.http_redirect_code.map(|c| c.to_string()),
                    protocol: rule.redirect.protocol.map(|p| p.as_str().to_string()),
                    replace_key_prefix_with: rule.redirect.replace_key_prefix_with.clone(),
                    replace_key_with: rule.redirect.replace_key_with.clone(),
                },
            })
            .collect();
        WebsiteConfiguration {
            xmlns: Xmlns,
            redirect_all_requests_to: c.redirect_all.as_ref().map(|r| RedirectAllRequestsTo {
                host_name: r.host_name.clone(),
                protocol: r.protocol.map(|p| p.as_str().to_string()),
            }),
            index_document: c.index_document.as_ref().map(|suffix| IndexDocument {
                suffix: suffix.clone(),
            }),
            error_document: c
                .error_document
                .as_ref()
                .map(|key| ErrorDocument { key: key.clone() }),
            routing_rules: (!rules.is_empty()).then_some(RoutingRules { rules }),
        }
    }
}
