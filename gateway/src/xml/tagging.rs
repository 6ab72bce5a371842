//! `<Tagging>`: the Put{Object,Bucket}Tagging request body, the Get{Object,Bucket}Tagging
//! response, and the `tagging` field of a POST upload.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Xmlns;

/// A tag set document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename = "Tagging")]
pub struct Tagging {
    /// Namespace attribute.
    #[serde(rename = "@xmlns", default)]
    pub xmlns: Xmlns,
    /// The tags (required in a request, possibly empty).
    #[serde(rename = "TagSet")]
    pub tag_set: TagSet,
}

/// `<TagSet>`: the `<Tag>` list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagSet {
    #[serde(rename = "Tag", default)]
    pub tags: Vec<Tag>,
}

/// One `<Tag>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    pub key: String,
    #[serde(default)]
    pub value: String,
}

impl Tagging {
    /// The response document for a stored tag set (sorted by key).
    pub fn of(tags: &BTreeMap<String, String>) -> Self {
        Self {
            xmlns: Xmlns,
            tag_set: TagSet {
                tags: tags
                    .iter()
                    .map(|(key, value)| Tag {
                        key: key.clone(),
                        value: value.clone(),
                    })
                    .collect(),
            },
        }
    }

    /// The (key, value) pairs in document order, duplicates kept (the caller validates).
    pub fn pairs(self) -> Vec<(String, String)> {
        self.tag_set
            .tags
            .into_iter()
            .map(|t| (t.key, t.value))
            .collect()
    }
}
