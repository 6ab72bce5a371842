//! Identifiers and versions: node / bucket uuids, random block ids, object versions and the
//! hybrid logical clock that stamps them.

use std::cmp::Ordering;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use uuid::Uuid;

use crate::pb;

/// A block id: 16 random bytes, placed on the ring by its own hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockId(pub [u8; 16]);

impl BlockId {
    /// A fresh random block id.
    pub fn random() -> Self {
        Self(*Uuid::new_v4().as_bytes())
    }

    /// Parses the 16-byte wire form.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        Some(Self(bytes.try_into().ok()?))
    }

    /// Lower-case hex, used for file names.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Debug for BlockId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BlockId({})", self.to_hex())
    }
}

/// Parses a 16-byte uuid from its wire form.
pub fn uuid_from_slice(bytes: &[u8]) -> Option<Uuid> {
    Uuid::from_slice(bytes).ok()
}

/// Milliseconds since the unix epoch, from the wall clock.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The sortable form of a [`pb::Version`]: (hlc, node id, uuid), 40 bytes big-endian.
/// Used as the last component of object index keys so versions sort oldest → newest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct VersionKey {
    pub hlc: u64,
    pub node_id: [u8; 16],
    pub uuid: [u8; 16],
}

impl VersionKey {
    /// Byte length of [`VersionKey::to_bytes`].
    pub const LEN: usize = 40;

    pub fn from_pb(v: &pb::Version) -> Option<Self> {
        Some(Self {
            hlc: v.hlc,
            node_id: v.node_id.as_slice().try_into().ok()?,
            uuid: v.uuid.as_slice().try_into().ok()?,
        })
    }

    pub fn to_pb(&self) -> pb::Version {
        pb::Version {
            hlc: self.hlc,
            node_id: self.node_id.to_vec(),
            uuid: self.uuid.to_vec(),
        }
    }

    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[..8].copy_from_slice(&self.hlc.to_be_bytes());
        out[8..24].copy_from_slice(&self.node_id);
        out[24..].copy_from_slice(&self.uuid);
        out
    }

    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() != Self::LEN {
            return None;
        }
        Some(Self {
            hlc: u64::from_be_bytes(b[..8].try_into().ok()?),
            node_id: b[8..24].try_into().ok()?,
            uuid: b[24..].try_into().ok()?,
        })
    }

    /// Unix milliseconds of the physical part of the clock.
    pub fn millis(&self) -> i64 {
        (self.hlc >> Hlc::LOGICAL_BITS) as i64
    }

    /// A printable, opaque version id (S3 `x-amz-version-id`).
    pub fn to_version_id(&self) -> String {
        hex::encode(self.to_bytes())
    }

    pub fn from_version_id(s: &str) -> Option<Self> {
        Self::from_bytes(&hex::decode(s).ok()?)
    }
}

impl PartialOrd for VersionKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for VersionKey {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.hlc, self.node_id, self.uuid).cmp(&(other.hlc, other.node_id, other.uuid))
    }
}

/// How fresh a copy of a record is: its version, then the stamp of its last tag edit (a copy
/// without one is older than any edit of the same version). Replicas keep, and quorum reads
/// pick, the freshest copy.
pub fn record_freshness(record: &pb::ObjectRecord) -> (VersionKey, VersionKey) {
    let key = |v: Option<&pb::Version>| v.and_then(VersionKey::from_pb).unwrap_or_default();
    (
        key(record.version.as_ref()),
        key(record.tags_stamp.as_ref()),
    )
}

/// A hybrid logical clock: `unix_ms << 16 | counter`. Every stamp is greater than the wall
/// clock, than every earlier stamp, and than every stamp it has been told about, so a
/// coordinator never orders a new write before one it has already seen.
#[derive(Debug, Default)]
pub struct Hlc {
    last: Mutex<u64>,
}

impl Hlc {
    /// Bits of the logical counter.
    pub const LOGICAL_BITS: u32 = 16;

    pub fn new() -> Self {
        Self::default()
    }

    /// A new stamp greater than both the clock and `floor`.
    pub fn stamp_after(&self, floor: u64) -> u64 {
        let wall = (now_ms().max(0) as u64) << Self::LOGICAL_BITS;
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let next = wall.max(*last + 1).max(floor + 1);
        *last = next;
        next
    }

    /// A new stamp greater than the clock and every earlier stamp.
    pub fn stamp(&self) -> u64 {
        self.stamp_after(0)
    }

    /// Moves the clock forward past a stamp seen elsewhere.
    pub fn observe(&self, seen: u64) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if seen > *last {
            *last = seen;
        }
    }
}

/// The block owner naming one object version (used for block references).
pub fn object_owner(bucket_id: &[u8], key: &str, version: &pb::Version) -> pb::BlockOwner {
    pb::BlockOwner {
        owner: Some(pb::block_owner::Owner::Object(pb::ObjectVersionRef {
            bucket_id: bucket_id.to_vec(),
            key: key.to_string(),
            version: Some(version.clone()),
        })),
    }
}

/// The block owner of a record, if it has a version.
pub fn record_owner(record: &pb::ObjectRecord) -> Option<pb::BlockOwner> {
    Some(object_owner(
        &record.bucket_id,
        &record.key,
        record.version.as_ref()?,
    ))
}

/// The blocks a record's body lives in (empty for inline bodies and tombstones).
pub fn record_blocks(record: &pb::ObjectRecord) -> &[pb::BlockPointer] {
    match &record.body {
        Some(pb::object_record::Body::Blocks(list)) => &list.blocks,
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_bytes_sort_like_versions() {
        let a = VersionKey {
            hlc: 5,
            node_id: [9; 16],
            uuid: [1; 16],
        };
        let b = VersionKey {
            hlc: 6,
            node_id: [0; 16],
            uuid: [0; 16],
        };
        assert!(a < b);
        assert!(a.to_bytes() < b.to_bytes());
        assert_eq!(VersionKey::from_bytes(&a.to_bytes()), Some(a));
        assert_eq!(VersionKey::from_version_id(&a.to_version_id()), Some(a));
    }

    #[test]
    fn hlc_is_monotonic_and_passes_floor() {
        let hlc = Hlc::new();
        let a = hlc.stamp();
        let b = hlc.stamp();
        assert!(b > a);
        let far = b + (1 << 40);
        let c = hlc.stamp_after(far);
        assert!(c > far);
        assert!(hlc.stamp() > c);
    }
}
