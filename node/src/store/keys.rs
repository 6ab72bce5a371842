//! Byte encodings of index keys. Object keys sort by (bucket uuid, key, version) with the
//! object key escaped so that a key sorts before every longer key it prefixes:
//! `0x00` → `00 FF`, terminator `00 01`.

use cairn_proto::VersionKey;
use uuid::Uuid;

const TERMINATOR: [u8; 2] = [0x00, 0x01];

/// Appends the escaped object key (without terminator).
fn push_escaped(out: &mut Vec<u8>, key: &str) {
    for &b in key.as_bytes() {
        if b == 0 {
            out.extend_from_slice(&[0x00, 0xFF]);
        } else {
            out.push(b);
        }
    }
}

/// `bucket ‖ escaped(key) ‖ terminator`: the prefix of all versions of one key.
pub fn key_prefix(bucket: &Uuid, key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + key.len() + 2 + VersionKey::LEN);
    out.extend_from_slice(bucket.as_bytes());
    push_escaped(&mut out, key);
    out.extend_from_slice(&TERMINATOR);
    out
}

/// The full index key of one record version.
pub fn record_key(bucket: &Uuid, key: &str, version: &VersionKey) -> Vec<u8> {
    let mut out = key_prefix(bucket, key);
    out.extend_from_slice(&version.to_bytes());
    out
}

/// Lower bound of all keys that start with `prefix` (as a string prefix).
pub fn string_prefix_start(bucket: &Uuid, prefix: &str) -> Vec<u8> {
    let mut out = bucket.as_bytes().to_vec();
    push_escaped(&mut out, prefix);
    out
}

/// Exclusive upper bound of all keys that start with `prefix` (as a string prefix): escaped
/// bytes never reach 0xFF except after 0x00, and UTF-8 never contains 0xFF.
pub fn string_prefix_end(bucket: &Uuid, prefix: &str) -> Vec<u8> {
    let mut out = string_prefix_start(bucket, prefix);
    out.push(0xFF);
    out
}

/// Lower bound strictly after every version of `key` and before any longer key: between
/// the terminator `00 01` and an escaped zero byte `00 FF`.
pub fn after_key(bucket: &Uuid, key: &str) -> Vec<u8> {
    let mut out = string_prefix_start(bucket, key);
    out.extend_from_slice(&[0x00, 0x02]);
    out
}

/// The part of a record index key before its version: `bucket ‖ escaped(key) ‖ terminator`,
/// shared by every version of one key.
pub fn record_key_head(raw: &[u8]) -> Option<&[u8]> {
    let n = raw.len().checked_sub(VersionKey::LEN)?;
    raw[..n]
        .ends_with(&TERMINATOR)
        .then(|| &raw[..n])
        .filter(|h| h.len() >= 16 + 2)
}

/// The version at the end of a record index key.
pub fn record_key_version(raw: &[u8]) -> Option<VersionKey> {
    VersionKey::from_bytes(&raw[raw.len().checked_sub(VersionKey::LEN)?..])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes a record index key into (object key, version).
    fn split_record_key(raw: &[u8]) -> Option<(String, VersionKey)> {
        let escaped = record_key_head(raw)?[16..].strip_suffix(&TERMINATOR)?;
        let mut key = Vec::with_capacity(escaped.len());
        let mut i = 0;
        while i < escaped.len() {
            key.push(escaped[i]);
            i += if escaped[i] == 0 { 2 } else { 1 };
        }
        Some((String::from_utf8(key).ok()?, record_key_version(raw)?))
    }

    #[test]
    fn keys_sort_like_strings_then_versions() {
        let b = Uuid::from_u128(1);
        let v1 = VersionKey {
            hlc: 1,
            ..Default::default()
        };
        let v2 = VersionKey {
            hlc: 2,
            ..Default::default()
        };
        let mut keys = [
            record_key(&b, "ab", &v1),
            record_key(&b, "a\0", &v1),
            record_key(&b, "a", &v2),
            record_key(&b, "a", &v1),
            record_key(&b, "a/b", &v1),
        ];
        keys.sort();
        let decoded: Vec<_> = keys.iter().map(|k| split_record_key(k).unwrap()).collect();
        let names: Vec<_> = decoded.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, vec!["a", "a", "a\0", "a/b", "ab"]);
        assert_eq!(decoded[0].1, v1);
        assert_eq!(decoded[1].1, v2);
        assert!(string_prefix_end(&b, "a") > record_key(&b, "a/b", &v1));
        assert!(string_prefix_end(&b, "a") < record_key(&Uuid::from_u128(2), "", &v1));
    }
}
