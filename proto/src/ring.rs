//! Placement: layout → replica sets, by consistent hashing with virtual nodes.
//!
//! Our own small ring rather than the `consistent_hash` crate (unmaintained since 2017): we
//! need a hash that is stable across Rust releases and platforms (FNV-1a with a 64-bit
//! finalizer, not `DefaultHasher`), and zone-aware replica selection. Every node gets
//! `weight × VNODES_PER_WEIGHT` points on the ring; the replica set of a hash is the first R
//! distinct nodes clockwise, preferring nodes in zones not yet used.

use uuid::Uuid;

use crate::meta::{Layout, LayoutNode};

/// Ring points per unit of node weight.
pub const VNODES_PER_WEIGHT: u32 = 128;

/// A stable 64-bit hash (FNV-1a, then the splitmix64 finalizer for avalanche).
pub fn hash64(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in *part {
            h ^= *b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // Separate parts so ("ab","c") and ("a","bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Ring position of an object record.
pub fn object_hash(bucket_id: &Uuid, key: &str) -> u64 {
    hash64(&[bucket_id.as_bytes(), key.as_bytes()])
}

/// Ring position of a block.
pub fn block_hash(block_id: &[u8]) -> u64 {
    hash64(&[b"block", block_id])
}

/// A placement ring built from one layout version.
#[derive(Clone, Debug)]
pub struct Ring {
    version: u64,
    replication: usize,
    nodes: Vec<LayoutNode>,
    /// (position, index into `nodes`), sorted by position.
    points: Vec<(u64, usize)>,
}

impl Ring {
    pub fn new(layout: &Layout) -> Self {
        let mut points = Vec::new();
        for (i, node) in layout.nodes.iter().enumerate() {
            for v in 0..node.weight.max(1) * VNODES_PER_WEIGHT {
                points.push((hash64(&[node.id.as_bytes(), &v.to_be_bytes()]), i));
            }
        }
        points.sort_unstable();
        Self {
            version: layout.version,
            replication: (layout.replication as usize).clamp(1, layout.nodes.len().max(1)),
            nodes: layout.nodes.clone(),
            points,
        }
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn replication(&self) -> usize {
        self.replication
    }

    pub fn nodes(&self) -> &[LayoutNode] {
        &self.nodes
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The replica set for a ring position: R distinct nodes, first in ring order, preferring
    /// zones not used yet. The first is the coordinator when it is alive.
    pub fn replicas(&self, hash: u64) -> Vec<&LayoutNode> {
        if self.points.is_empty() {
            return Vec::new();
        }
        let start = self.points.partition_point(|(p, _)| *p < hash);
        let walk =
            || (0..self.points.len()).map(|i| self.points[(start + i) % self.points.len()].1);
        let mut chosen: Vec<usize> = Vec::with_capacity(self.replication);
        // First pass: distinct nodes in distinct zones.
        for idx in walk() {
            if chosen.len() == self.replication {
                break;
            }
            let zone = &self.nodes[idx].zone;
            if !chosen.contains(&idx) && !chosen.iter().any(|c| &self.nodes[*c].zone == zone) {
                chosen.push(idx);
            }
        }
        // Second pass: fewer zones than replicas; fill with distinct nodes in ring order.
        for idx in walk() {
            if chosen.len() == self.replication {
                break;
            }
            if !chosen.contains(&idx) {
                chosen.push(idx);
            }
        }
        chosen.into_iter().map(|i| &self.nodes[i]).collect()
    }

    /// The node with this id, if it is in the layout.
    pub fn node(&self, id: &Uuid) -> Option<&LayoutNode> {
        self.nodes.iter().find(|n| n.id == *id)
    }

    /// Whether every partition (ring segment) has a replica among `answered`: then a fan-out
    /// to the nodes saw every key, e.g. for a listing.
    pub fn covered_by(&self, answered: impl Fn(&Uuid) -> bool) -> bool {
        self.partitions()
            .iter()
            .all(|p| self.replicas(p.end).iter().any(|n| answered(&n.id)))
    }

    /// The ring partitions in ring order: one segment ending at each distinct ring point, all
    /// hashes of a segment sharing the replica set `replicas(end)`. The first one wraps past
    /// the top of the hash space. Empty for an empty ring.
    pub fn partitions(&self) -> Vec<Partition> {
        let mut ends: Vec<u64> = self.points.iter().map(|(p, _)| *p).collect();
        ends.dedup();
        partitions_ending_at(ends)
    }
}

/// The partitions ending at each of `ends` (sorted, distinct), the first wrapping around.
fn partitions_ending_at(ends: Vec<u64>) -> Vec<Partition> {
    let Some(&last) = ends.last() else {
        return Vec::new();
    };
    let mut start = last;
    ends.into_iter()
        .map(|end| {
            let p = Partition { start, end };
            start = end;
            p
        })
        .collect()
}

/// Where data lives while layouts change: the rings of every active layout version, oldest
/// first, the current one last (just one ring outside transitions). A write needs a quorum in
/// the replica set of *each* ring, so the oldest ring — whose replicas keep their data until
/// the transition retires it — always holds every acknowledged write, and reads need a
/// quorum there only. New owners pull what they lack (anti-entropy) before it retires.
#[derive(Clone, Debug)]
pub struct Placement {
    /// Never empty.
    rings: Vec<Ring>,
}

impl Placement {
    /// The placement of `layouts`, oldest first (an empty list gives an empty placement).
    pub fn new<'a>(layouts: impl IntoIterator<Item = &'a Layout>) -> Self {
        let mut rings: Vec<Ring> = layouts.into_iter().map(Ring::new).collect();
        if rings.is_empty() {
            rings.push(Ring::new(&Layout::default()));
        }
        Self { rings }
    }

    /// The current (newest) ring.
    pub fn current(&self) -> &Ring {
        self.rings.last().expect("a placement has a ring")
    }

    /// The oldest active ring: reads need a quorum of its replica sets.
    pub fn oldest(&self) -> &Ring {
        &self.rings[0]
    }

    /// Every active ring, oldest first.
    pub fn rings(&self) -> &[Ring] {
        &self.rings
    }

    /// The current layout version (what data RPCs carry).
    pub fn version(&self) -> u64 {
        self.current().version()
    }

    /// Whether data is moving between layouts.
    pub fn in_transition(&self) -> bool {
        self.rings.len() > 1
    }

    pub fn is_empty(&self) -> bool {
        self.current().is_empty()
    }

    /// Every node of every active ring once (newest ring's entry first, for its address).
    pub fn nodes(&self) -> Vec<&LayoutNode> {
        let mut out: Vec<&LayoutNode> = Vec::new();
        for ring in self.rings.iter().rev() {
            for node in ring.nodes() {
                if !out.iter().any(|n| n.id == node.id) {
                    out.push(node);
                }
            }
        }
        out
    }

    /// The node with this id in any active ring.
    pub fn node(&self, id: &Uuid) -> Option<&LayoutNode> {
        self.rings.iter().rev().find_map(|r| r.node(id))
    }

    /// The replica set of `hash` in each active ring, oldest first.
    pub fn replica_sets(&self, hash: u64) -> Vec<Vec<&LayoutNode>> {
        self.rings.iter().map(|r| r.replicas(hash)).collect()
    }

    /// Every node that holds or should hold `hash`: the replica sets of all active rings,
    /// each node once, the oldest ring's replicas first (its first replica coordinates).
    pub fn write_targets(&self, hash: u64) -> Vec<&LayoutNode> {
        let mut out: Vec<&LayoutNode> = Vec::new();
        for set in self.replica_sets(hash) {
            for node in set {
                if !out.iter().any(|n| n.id == node.id) {
                    out.push(node);
                }
            }
        }
        out
    }

    /// Whether the nodes for which `acked` holds make a write quorum (⌊R/2⌋+1) in the
    /// replica set of `hash` of every active ring.
    pub fn write_quorum(&self, hash: u64, acked: impl Fn(&Uuid) -> bool) -> bool {
        self.replica_sets(hash).iter().all(|set| {
            let acks = set.iter().filter(|n| acked(&n.id)).count();
            acks > set.len() / 2
        })
    }

    /// The replicas reads of `hash` need a quorum of (the oldest ring's).
    pub fn read_set(&self, hash: u64) -> Vec<&LayoutNode> {
        self.oldest().replicas(hash)
    }

    /// Whether `node` replicates `hash` in some active ring.
    pub fn holds(&self, node: &Uuid, hash: u64) -> bool {
        self.rings
            .iter()
            .any(|r| r.replicas(hash).iter().any(|n| n.id == *node))
    }

    /// The partitions of all active rings together: segments ending at every ring point of
    /// any of them, so each has one replica set per ring.
    pub fn partitions(&self) -> Vec<Partition> {
        let mut ends: Vec<u64> = self
            .rings
            .iter()
            .flat_map(|r| r.points.iter().map(|(p, _)| *p))
            .collect();
        ends.sort_unstable();
        ends.dedup();
        partitions_ending_at(ends)
    }
}

/// A range of ring positions `(start, end]`; it wraps past `u64::MAX` when `start >= end`
/// (a ring with a single point has one partition holding every hash).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Partition {
    pub start: u64,
    pub end: u64,
}

impl Partition {
    pub fn contains(&self, hash: u64) -> bool {
        if self.start < self.end {
            self.start < hash && hash <= self.end
        } else {
            hash > self.start || hash <= self.end
        }
    }
}

/// Index of the partition holding `hash` in `parts`: disjoint partitions sorted by `end` (as
/// [`Ring::partitions`] returns them, or any subset of those). `None` if none holds it.
pub fn find_partition(parts: &[Partition], hash: u64) -> Option<usize> {
    if parts.is_empty() {
        return None;
    }
    // The first partition ending at or after the hash, else the one wrapping past the top.
    let i = parts.partition_point(|p| p.end < hash) % parts.len();
    parts[i].contains(hash).then_some(i)
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;

    fn layout(specs: &[(&str, u32)], replication: u32) -> Layout {
        let nodes = specs
            .iter()
            .enumerate()
            .map(|(i, (zone, weight))| LayoutNode {
                id: Uuid::from_u128(0x1234_5678_9abc_def0_0000_0000_0000_0000 + i as u128 * 7919),
                addr: format!("127.0.0.1:{}", 9000 + i),
                zone: zone.to_string(),
                weight: *weight,
            })
            .collect();
        Layout {
            version: 1,
            replication,
            nodes,
        }
    }

    fn primary_shares(ring: &Ring, keys: u32) -> HashMap<Uuid, f64> {
        let bucket = Uuid::from_u128(42);
        let mut counts: HashMap<Uuid, u32> = HashMap::new();
        for k in 0..keys {
            let set = ring.replicas(object_hash(&bucket, &format!("key-{k}")));
            *counts.entry(set[0].id).or_default() += 1;
        }
        counts
            .into_iter()
            .map(|(id, c)| (id, c as f64 / keys as f64))
            .collect()
    }

    /// Replica copies that change hands when going from `before` to `after`, over `keys`
    /// keys: for each key, the nodes of the new replica set that were not in the old one.
    fn moved_copies(before: &Ring, after: &Ring, keys: u32) -> usize {
        let bucket = Uuid::from_u128(42);
        (0..keys)
            .map(|k| {
                let hash = object_hash(&bucket, &format!("key-{k}"));
                let old: Vec<Uuid> = before.replicas(hash).iter().map(|n| n.id).collect();
                after
                    .replicas(hash)
                    .iter()
                    .filter(|n| !old.contains(&n.id))
                    .count()
            })
            .sum()
    }

    #[test]
    fn adding_a_fifth_node_moves_about_a_fifth_of_the_copies() {
        for zones in [["z"; 5], ["a", "b", "c", "d", "e"]] {
            let five = layout(&zones.map(|z| (z, 1)), 3);
            let mut four = five.clone();
            four.nodes.pop();
            let keys = 100_000;
            let moved = moved_copies(&Ring::new(&four), &Ring::new(&five), keys);
            // The new node should end up with a fifth of all copies, and nothing else move.
            let optimum = (keys as usize * 3) / 5;
            let ratio = moved as f64 / optimum as f64;
            println!("zones {zones:?}: {moved} copies moved, optimum {optimum}, ratio {ratio:.3}");
            assert!(ratio <= 1.3, "moved {ratio:.3}× the optimum");
        }
    }

    #[test]
    fn placement_writes_to_every_active_set_and_reads_the_oldest() {
        let five = layout(&[("z", 1); 5], 3);
        let mut four = five.clone();
        four.nodes.pop();
        four.version = 1;
        let mut next = five.clone();
        next.version = 2;
        let placement = Placement::new([&four, &next]);
        assert!(placement.in_transition());
        assert_eq!(placement.version(), 2);
        let new_node = next.nodes[4].id;
        let hash = (0..u64::MAX)
            .step_by(1 << 40)
            .find(|h| {
                placement
                    .current()
                    .replicas(*h)
                    .iter()
                    .any(|n| n.id == new_node)
            })
            .expect("a position the new node replicates");
        let sets = placement.replica_sets(hash);
        assert_eq!(sets.len(), 2);
        assert_eq!(
            placement
                .read_set(hash)
                .iter()
                .map(|n| n.id)
                .collect::<Vec<_>>(),
            sets[0].iter().map(|n| n.id).collect::<Vec<_>>()
        );
        let targets: Vec<Uuid> = placement.write_targets(hash).iter().map(|n| n.id).collect();
        assert!(targets.contains(&new_node) && targets.len() == 4);
        // A quorum of the old set that is not one of the new set is not enough.
        let old: Vec<Uuid> = sets[0].iter().map(|n| n.id).collect();
        let new: Vec<Uuid> = sets[1].iter().map(|n| n.id).collect();
        let leaving = *old
            .iter()
            .find(|id| !new.contains(id))
            .expect("a node leaves");
        let staying = *old
            .iter()
            .find(|id| new.contains(id))
            .expect("a node stays");
        let acked = [leaving, staying];
        assert!(!placement.write_quorum(hash, |id| acked.contains(id)));
        let acked = [leaving, staying, new_node];
        assert!(placement.write_quorum(hash, |id| acked.contains(id)));
        assert!(placement.holds(&new_node, hash));
        // Partitions of the combined rings each map to one replica set per ring.
        for part in placement.partitions().iter().take(200) {
            let at_end = placement.replica_sets(part.end);
            let inside = placement.replica_sets(part.end.wrapping_sub(1));
            if part.contains(part.end.wrapping_sub(1)) {
                let ids = |s: &Vec<Vec<&LayoutNode>>| {
                    s.iter()
                        .map(|set| set.iter().map(|n| n.id).collect::<Vec<_>>())
                        .collect::<Vec<_>>()
                };
                assert_eq!(ids(&at_end), ids(&inside));
            }
        }
    }

    #[test]
    fn five_equal_nodes_each_own_a_fifth() {
        let ring = Ring::new(&layout(
            &[("a", 1), ("b", 1), ("c", 1), ("d", 1), ("e", 1)],
            3,
        ));
        let shares = primary_shares(&ring, 100_000);
        assert_eq!(shares.len(), 5);
        for (id, share) in shares {
            assert!((share - 0.20).abs() <= 0.03, "node {id} owns {share}");
        }
    }

    #[test]
    fn weights_two_to_one_give_two_to_one() {
        let ring = Ring::new(&layout(&[("a", 2), ("b", 1)], 1));
        let shares = primary_shares(&ring, 100_000);
        let heavy = shares[&ring.nodes()[0].id];
        let light = shares[&ring.nodes()[1].id];
        let ratio = heavy / light;
        assert!((1.7..=2.3).contains(&ratio), "ratio {ratio}");
    }

    #[test]
    fn replica_sets_are_distinct_and_span_zones() {
        let ring = Ring::new(&layout(
            &[("a", 1), ("a", 1), ("b", 1), ("b", 1), ("c", 1), ("c", 1)],
            3,
        ));
        for k in 0..2000u32 {
            let set = ring.replicas(hash64(&[&k.to_be_bytes()]));
            assert_eq!(set.len(), 3);
            let ids: HashSet<_> = set.iter().map(|n| n.id).collect();
            let zones: HashSet<_> = set.iter().map(|n| n.zone.clone()).collect();
            assert_eq!(ids.len(), 3);
            assert_eq!(zones.len(), 3, "replicas should cover all three zones");
        }
    }

    #[test]
    fn fewer_zones_than_replicas_still_gives_distinct_nodes() {
        let ring = Ring::new(&layout(&[("a", 1), ("a", 1), ("a", 1), ("b", 1)], 3));
        for k in 0..500u32 {
            let set = ring.replicas(hash64(&[&k.to_be_bytes()]));
            let ids: HashSet<_> = set.iter().map(|n| n.id).collect();
            assert_eq!(ids.len(), 3);
            assert!(set.iter().any(|n| n.zone == "b"));
        }
    }

    #[test]
    fn one_dead_node_leaves_every_partition_covered_with_three_replicas() {
        let ring = Ring::new(&layout(&[("a", 1), ("b", 1), ("c", 1), ("d", 1)], 3));
        let ids: Vec<Uuid> = ring.nodes().iter().map(|n| n.id).collect();
        assert!(ring.covered_by(|id| *id != ids[0]));
        assert!(!ring.covered_by(|id| *id == ids[0]));
        let single = Ring::new(&layout(&[("a", 1), ("b", 1)], 1));
        assert!(!single.covered_by(|id| *id != single.nodes()[0].id));
    }

    #[test]
    fn partitions_tile_the_ring_and_share_a_replica_set() {
        let ring = Ring::new(&layout(&[("a", 1), ("b", 1), ("c", 1), ("d", 2)], 3));
        let parts = ring.partitions();
        assert_eq!(parts.len(), 5 * VNODES_PER_WEIGHT as usize);
        assert!(parts.windows(2).all(|w| w[0].end == w[1].start));
        assert_eq!(parts[0].start, parts.last().unwrap().end);
        let subset: Vec<Partition> = parts.iter().copied().step_by(3).collect();
        for k in 0..5000u32 {
            let h = hash64(&[&k.to_be_bytes()]);
            let i = find_partition(&parts, h).expect("every hash is in a partition");
            assert_eq!(parts.iter().filter(|p| p.contains(h)).count(), 1);
            assert_eq!(ring.replicas(h), ring.replicas(parts[i].end));
            let in_subset = subset.iter().position(|p| p.contains(h));
            assert_eq!(find_partition(&subset, h), in_subset);
        }
        for edge in [0, u64::MAX, parts[0].end, parts[0].end + 1] {
            assert!(find_partition(&parts, edge).is_some());
        }
        let whole = Partition { start: 7, end: 7 };
        assert!([0, 7, 8, u64::MAX].iter().all(|h| whole.contains(*h)));
        assert!(Ring::new(&layout(&[], 1)).partitions().is_empty());
    }

    #[test]
    fn replication_is_capped_by_node_count_and_hash_is_stable() {
        let ring = Ring::new(&layout(&[("a", 1)], 1));
        assert_eq!(ring.replicas(7).len(), 1);
        // The hash is part of the on-disk placement contract: it must never change.
        assert_eq!(hash64(&[b"cairn"]), hash64(&[b"cairn"]));
        assert_ne!(hash64(&[b"ab", b"c"]), hash64(&[b"a", b"bc"]));
    }
}
