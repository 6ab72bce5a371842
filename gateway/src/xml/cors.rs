//! `<CORSConfiguration>`: the PutBucketCors request body and the GetBucketCors response.

use cairn_proto::meta::{CorsConfig, CorsRule};
use serde::{Deserialize, Serialize};

use super::Xmlns;

/// PutBucketCors body / GetBucketCors response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename = "CORSConfiguration")]
pub struct CorsConfiguration {
    /// Namespace attribute.
    #[serde(rename = "@xmlns", default)]
    pub xmlns: Xmlns,
    /// The rules, in order.
    #[serde(rename = "CORSRule", default)]
    pub rules: Vec<CorsRuleXml>,
}

/// One `<CORSRule>`, elements in S3's order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorsRuleXml {
    /// Optional rule name.
    #[serde(rename = "ID", skip_serializing_if = "Option::is_none", default)]
    pub id: Option<String>,
    #[serde(rename = "AllowedHeader", default)]
    pub allowed_headers: Vec<String>,
    #[serde(rename = "AllowedMethod", default)]
    pub allowed_methods: Vec<String>,
    #[serde(rename = "AllowedOrigin", default)]
    pub allowed_origins: Vec<String>,
    #[serde(rename = "ExposeHeader", default)]
    pub expose_headers: Vec<String>,
    #[serde(
        rename = "MaxAgeSeconds",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub max_age_seconds: Option<u32>,
}

impl From<CorsConfiguration> for CorsConfig {
    fn from(doc: CorsConfiguration) -> Self {
        CorsConfig {
            rules: doc
                .rules
                .into_iter()
                .map(|r| CorsRule {
                    id: r.id,
                    allowed_origins: r.allowed_origins,
                    allowed_methods: r.allowed_methods,
                    allowed_headers: r.allowed_headers,
                    expose_headers: r.expose_headers,
                    max_age_seconds: r.max_age_seconds,
                })
                .collect(),
        }
    }
}

impl From<&CorsConfig> for CorsConfiguration {
    fn from(config: &CorsConfig) -> Self {
        CorsConfiguration {
            xmlns: Xmlns,
            rules: config
                .rules
                .iter()
                .map(|r| CorsRuleXml {
                    id: r.id.clone(),
                    allowed_headers: r.allowed_headers.clone(),
                    allowed_methods: r.allowed_methods.clone(),
                    allowed_origins: r.allowed_origins.clone(),
                    expose_headers: r.expose_headers.clone(),
                    max_age_seconds: r.max_age_seconds,
                })
                .collect(),
        }
    }
}
