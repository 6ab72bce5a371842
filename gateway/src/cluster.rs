//! The gateway's view of the cluster: gRPC clients to the nodes, a cached copy of the Raft
//! metadata kept fresh by a watch stream, and the quorum calls on records and blocks.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_proto::block_node::{BlockNode, GrpcBlockNode};
use cairn_proto::client::{AuthChannel, Peers, refs_by_replica};
use cairn_proto::ids::record_freshness;
use cairn_proto::meta::LayoutNode;
use cairn_proto::meta::{MetaCommand, MetaError, MetaResult, Metadata};
use cairn_proto::pb::object_service_client::ObjectServiceClient;
use cairn_proto::pb::object_service_server::ObjectService;
use cairn_proto::pb::{
    self, CoordinateRequest, CoordinateResponse, GetBlockRequest, GetRecordRequest,
    GetRecordResponse, ListRequest, ListResponse, MetaReadRequest, MetaWriteRequest,
    PutBlockHeader, RefsRequest, SetTagsRequest, SetTagsResponse, StoreRequest, StoreResponse,
};
use cairn_proto::ring::{block_hash, object_hash};
use cairn_proto::tls::Dialer;
use cairn_proto::versions::{
    NewestMerge, VersionSelector, is_purged, is_visible, supersedes, version_key,
};
use cairn_proto::{Placement, VersionKey, is_storage_full};
use futures::stream::FuturesUnordered;
use futures::{Stream, StreamExt};
use tokio::sync::watch;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::error::S3Error;

/// Blocks an object read fetches ahead of the one being sent.
const READ_AHEAD: usize = 4;

/// A consistent snapshot of the metadata and the placement built from it.
#[derive(Clone)]
pub struct MetaView {
    pub applied_index: u64,
    pub meta: Arc<Metadata>,
    pub placement: Arc<Placement>,
}

impl MetaView {
    fn new(applied_index: u64, meta: Metadata) -> Self {
        let placement = Arc::new(meta.placement());
        Self {
            applied_index,
            meta: Arc::new(meta),
            placement,
        }
    }

    /// This view advanced by `commands` (serde_json, in log order) to `applied_index`; the
    /// placement is rebuilt only if the layouts changed.
    fn advanced(&self, applied_index: u64, commands: &[Vec<u8>]) -> Result<Self, S3Error> {
        let mut meta = self.meta.clone();
        for json in commands {
            let cmd: MetaCommand =
                serde_json::from_slice(json).map_err(|e| S3Error::InternalError(e.to_string()))?;
            Arc::make_mut(&mut meta).apply(&cmd);
        }
        let same_layouts =
            meta.layout == self.meta.layout && meta.layout_history == self.meta.layout_history;
        let placement = if same_layouts {
            self.placement.clone()
        } else {
            Arc::new(meta.placement())
        };
        Ok(Self {
            applied_index,
            meta,
            placement,
        })
    }
}

/// Whether a node refused a request because the sender's layout is older than its own.
fn is_stale_layout(e: &Status) -> bool {
    e.code() == tonic::Code::FailedPrecondition && e.message().starts_with("stale layout")
}

/// A node running in the same process as the gateway (`cairn server`): calls to its address
/// go straight to its services instead of gRPC over loopback.
#[derive(Clone)]
pub struct LocalNode {
    /// The node's RPC address, as the layout names it.
    pub addr: String,
    /// Its ObjectService (records: coordinate, get, store, list).
    pub objects: Arc<dyn ObjectService>,
    /// Its blocks (PutBlock / GetBlock).
    pub blocks: Arc<dyn BlockNode>,
}

impl std::fmt::Debug for LocalNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalNode")
            .field("addr", &self.addr)
            .finish()
    }
}

/// One node's ObjectService: over gRPC, or called directly when the node runs in this
/// process (no protobuf encoding, no loopback connection; the same service code answers).
enum ObjectClient {
    Remote(Box<ObjectServiceClient<AuthChannel>>),
    Local(Arc<dyn ObjectService>),
}

impl ObjectClient {
    async fn coordinate(&mut self, req: CoordinateRequest) -> Result<CoordinateResponse, Status> {
        let resp = match self {
            Self::Remote(client) => client.coordinate(req).await,
            Self::Local(service) => service.coordinate(Request::new(req)).await,
        };
        resp.map(Response::into_inner)
    }

    async fn get(&mut self, req: GetRecordRequest) -> Result<GetRecordResponse, Status> {
        let resp = match self {
            Self::Remote(client) => client.get(req).await,
            Self::Local(service) => service.get(Request::new(req)).await,
        };
        resp.map(Response::into_inner)
    }

    async fn store(&mut self, req: StoreRequest) -> Result<StoreResponse, Status> {
        let resp = match self {
            Self::Remote(client) => client.store(req).await,
            Self::Local(service) => service.store(Request::new(req)).await,
        };
        resp.map(Response::into_inner)
    }

    async fn set_tags(&mut self, req: SetTagsRequest) -> Result<SetTagsResponse, Status> {
        let resp = match self {
            Self::Remote(client) => client.set_tags(req).await,
            Self::Local(service) => service.set_tags(Request::new(req)).await,
        };
        resp.map(Response::into_inner)
    }

    async fn list(&mut self, req: ListRequest) -> Result<ListResponse, Status> {
        let resp = match self {
            Self::Remote(client) => client.list(req).await,
            Self::Local(service) => service.list(Request::new(req)).await,
        };
        resp.map(Response::into_inner)
    }
}

/// How long cached metadata counts as current without word from the cluster (nodes send a
/// heartbeat every second while they know a Raft leader).
pub const METADATA_STALE_AFTER: Duration = Duration::from_secs(6);
/// How long a metadata write waits for the watch stream to bring the change before this
/// gateway reads the whole state instead.
const WRITE_VISIBLE_WAIT: Duration = Duration::from_secs(1);

/// Connections and cached metadata shared by all requests of a gateway.
#[derive(Clone)]
pub struct Cluster {
    peers: Peers,
    local: Option<LocalNode>,
    seeds: Arc<Vec<String>>,
    view: watch::Sender<MetaView>,
    last_contact: Arc<Mutex<Option<Instant>>>,
}

fn unavailable(e: impl std::fmt::Display) -> S3Error {
    S3Error::ServiceUnavailable(format!("cluster unavailable: {e}"))
}

fn decode_state(state: &pb::MetaState) -> Result<MetaView, S3Error> {
    let meta: Metadata =
        serde_json::from_slice(&state.state).map_err(|e| S3Error::InternalError(e.to_string()))?;
    Ok(MetaView::new(state.applied_index, meta))
}

impl Cluster {
    /// Connects to the given node addresses (with `dialer`) and starts following the
    /// metadata. Object calls to `local` (a node in this process) skip the network.
    pub fn start(
        seeds: Vec<String>,
        cluster_secret: &str,
        dialer: Dialer,
        local: Option<LocalNode>,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !seeds.is_empty(),
            "a gateway needs at least one node address"
        );
        let peers = Peers::new(cluster_secret)
            .map_err(|e| anyhow::anyhow!("{}", e.message()))?
            .with_dialer(dialer);
        let (view, _) = watch::channel(MetaView::new(0, Metadata::default()));
        let cluster = Self {
            peers,
            local,
            seeds: Arc::new(seeds),
            view,
            last_contact: Default::default(),
        };
        tokio::spawn(cluster.clone().follow_metadata());
        Ok(cluster)
    }

    /// The ObjectService of `node` (another process at its address refuses the calls).
    fn objects(&self, node: &LayoutNode) -> Result<ObjectClient, Status> {
        match &self.local {
            Some(local) if local.addr == node.addr => {
                Ok(ObjectClient::Local(local.objects.clone()))
            }
            _ => self
                .peers
                .objects_on(node)
                .map(|c| ObjectClient::Remote(Box::new(c))),
        }
    }

    /// The BlockService of `node` (called in-process for the local node).
    fn block_node(&self, node: &LayoutNode) -> Result<Arc<dyn BlockNode>, Status> {
        match &self.local {
            Some(local) if local.addr == node.addr => Ok(local.blocks.clone()),
            _ => Ok(Arc::new(GrpcBlockNode(self.peers.blocks_on(node)?))),
        }
    }

    /// The current cached metadata.
    pub fn view(&self) -> MetaView {
        self.view.borrow().clone()
    }

    /// Ready while the metadata is current and holds a layout.
    pub fn ready(&self) -> bool {
        self.fresh() && !self.view().placement.is_empty()
    }

    /// Takes `next` into the cache unless the cache is already newer.
    fn accept(&self, next: MetaView) {
        self.view.send_if_modified(|current| {
            if next.applied_index >= current.applied_index {
                *current = next;
                true
            } else {
                false
            }
        });
    }

    /// Waits (briefly) until the cached metadata includes log index `index` (0: unknown).
    async fn caught_up(&self, index: u64) -> bool {
        if index == 0 {
            return false;
        }
        let mut view = self.view.subscribe();
        let reached = view.wait_for(|v| v.applied_index >= index);
        matches!(
            tokio::time::timeout(WRITE_VISIBLE_WAIT, reached).await,
            Ok(Ok(_))
        )
    }

    /// Notes that the metadata was confirmed current just now.
    fn touch(&self) {
        if let Ok(mut t) = self.last_contact.lock() {
            *t = Some(Instant::now());
        }
    }

    /// Whether the cached metadata was confirmed current within [`METADATA_STALE_AFTER`].
    /// A gateway serving from a stale cache could honour revoked keys, so it fails closed.
    pub fn fresh(&self) -> bool {
        self.last_contact
            .lock()
            .map(|t| t.is_some_and(|t| t.elapsed() < METADATA_STALE_AFTER))
            .unwrap_or(false)
    }

    /// Node addresses to try for metadata: the seeds, then the layout's nodes.
    fn meta_nodes(&self) -> Vec<String> {
        let mut nodes: Vec<String> = self.seeds.iter().cloned().collect();
        for n in self.view().placement.nodes() {
            if !nodes.contains(&n.addr) {
                nodes.push(n.addr.clone());
            }
        }
        nodes
    }

    async fn follow_metadata(self) {
        let mut attempt = 0usize;
        loop {
            let nodes = self.meta_nodes();
            let addr = &nodes[attempt % nodes.len()];
            attempt += 1;
            match self.watch_from(addr).await {
                Ok(()) => tracing::info!(node = %addr, "metadata stream ended"),
                Err(e) => tracing::debug!(node = %addr, error = %e, "metadata stream failed"),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Follows one node's watch stream: a full state first, then the commands of each change
    /// (applied here to the stream's previous state), heartbeats in between. A stream silent
    /// for [`METADATA_STALE_AFTER`], or out of step, is dropped so another node is tried.
    async fn watch_from(&self, addr: &str) -> Result<(), S3Error> {
        let mut stream = self
            .peers
            .meta(addr)?
            .watch(MetaReadRequest::default())
            .await?
            .into_inner();
        let mut followed: Option<MetaView> = None;
        while let Some(state) = tokio::time::timeout(METADATA_STALE_AFTER, stream.message())
            .await
            .map_err(|_| unavailable("the metadata stream went silent"))??
        {
            let next = if !state.state.is_empty() {
                Some(decode_state(&state)?)
            } else if state.base_index > 0 {
                match &followed {
                    Some(view) if view.applied_index == state.base_index => {
                        Some(view.advanced(state.applied_index, &state.commands)?)
                    }
                    _ => return Err(unavailable("the metadata stream is out of step")),
                }
            } else {
                None
            };
            if let Some(view) = next {
                self.accept(view.clone());
                followed = Some(view);
            }
            if state.current {
                self.touch();
            }
        }
        Ok(())
    }

    /// A linearizable view of the metadata (used to confirm cache misses and for listings
    /// that must show every committed change): asks a node for the linearizable applied index
    /// and waits for the watched copy to reach it, reading the whole state only if it does
    /// not in time (or the node answers with the whole state anyway).
    pub async fn refresh(&self) -> Result<MetaView, S3Error> {
        match self.read_state(true).await? {
            state if !state.state.is_empty() => self.accept(decode_state(&state)?),
            state if self.caught_up(state.applied_index).await => {}
            _ => return self.read_full().await,
        }
        self.touch();
        Ok(self.view())
    }

    /// A linearizable read of the whole state (when the watched copy does not catch up).
    async fn read_full(&self) -> Result<MetaView, S3Error> {
        let state = self.read_state(false).await?;
        self.accept(decode_state(&state)?);
        self.touch();
        Ok(self.view())
    }

    /// A linearizable `Read` through the first node that answers.
    async fn read_state(&self, index_only: bool) -> Result<pb::MetaState, S3Error> {
        let mut last = None;
        for addr in self.meta_nodes() {
            match self
                .peers
                .meta(&addr)?
                .read(MetaReadRequest { index_only })
                .await
            {
                Ok(state) => return Ok(state.into_inner()),
                Err(e) => last = Some(e),
            }
        }
        Err(unavailable(last.map(|e| e.to_string()).unwrap_or_default()))
    }

    /// Commits a metadata command through any node (forwarded to the Raft leader).
    pub async fn meta_write(
        &self,
        cmd: &MetaCommand,
    ) -> Result<Result<MetaResult, MetaError>, S3Error> {
        let command = serde_json::to_vec(cmd).map_err(|e| S3Error::InternalError(e.to_string()))?;
        let mut last = None;
        for addr in self.meta_nodes() {
            match self
                .peers
                .meta(&addr)?
                .write(MetaWriteRequest {
                    command: command.clone(),
                })
                .await
            {
                Ok(resp) => {
                    let result: MetaResult = serde_json::from_slice(&resp.get_ref().result)
                        .map_err(|e| S3Error::InternalError(e.to_string()))?;
                    // Make the change visible to this gateway before answering: the watch
                    // stream brings it in a moment, a full read if it does not.
                    if !self.caught_up(resp.get_ref().applied_index).await {
                        self.read_full().await?;
                    }
                    return Ok(result.into_result());
                }
                Err(e) => last = Some(e),
            }
        }
        Err(unavailable(last.map(|e| e.to_string()).unwrap_or_default()))
    }

    /// Sends a record to its key's coordinator (the first replica that answers).
    pub async fn coordinate(
        &self,
        record: pb::ObjectRecord,
    ) -> Result<CoordinateResponse, S3Error> {
        self.coordinate_if(record, None).await
    }

    /// [`Self::coordinate`] for a conditional write (If-None-Match / If-Match), checked
    /// atomically at the coordinator.
    pub async fn coordinate_if(
        &self,
        record: pb::ObjectRecord,
        condition: Option<pb::WriteCondition>,
    ) -> Result<CoordinateResponse, S3Error> {
        let bucket = Uuid::from_slice(&record.bucket_id)
            .map_err(|e| S3Error::InternalError(e.to_string()))?;
        let key = record.key.clone();
        self.at_coordinator(&bucket, &key, |mut client, layout_version| {
            let req = CoordinateRequest {
                record: Some(record.clone()),
                layout_version,
                condition: condition.clone(),
            };
            async move { client.coordinate(req).await }
        })
        .await
    }

    /// Replaces the tags of a key's newest visible version (or of `version`) at its
    /// coordinator; answers with the edited record. NoSuchKey when there is no such
    /// complete version.
    pub async fn set_tags(
        &self,
        bucket: &Uuid,
        key: &str,
        version: Option<VersionKey>,
        tags: std::collections::BTreeMap<String, String>,
    ) -> Result<pb::ObjectRecord, S3Error> {
        let resp = self
            .at_coordinator(bucket, key, |mut client, layout_version| {
                let req = SetTagsRequest {
                    bucket_id: bucket.as_bytes().to_vec(),
                    key: key.to_string(),
                    version: version.map(|v| v.to_pb()),
                    tags: tags.clone(),
                    layout_version,
                };
                async move { client.set_tags(req).await }
            })
            .await?;
        resp.record
            .ok_or_else(|| S3Error::InternalError("the coordinator returned no record".into()))
    }

    /// Calls a key's coordinator: the first of its replicas that answers (refreshing the
    /// layout once if ours is behind).
    async fn at_coordinator<T, F, Fut>(
        &self,
        bucket: &Uuid,
        key: &str,
        call: F,
    ) -> Result<T, S3Error>
    where
        F: Fn(ObjectClient, u64) -> Fut,
        Fut: std::future::Future<Output = Result<T, Status>>,
    {
        let mut view = self.view();
        let mut last = None;
        let mut refreshed = false;
        let mut targets = view.placement.write_targets(object_hash(bucket, key));
        let mut i = 0;
        while let Some(node) = targets.get(i) {
            match call(self.objects(node)?, view.placement.version()).await {
                Ok(resp) => return Ok(resp),
                Err(e) if e.code() == tonic::Code::Unavailable => last = Some(e),
                // Our layout is behind: catch up and start over with the new replicas.
                Err(e) if is_stale_layout(&e) && !refreshed => {
                    refreshed = true;
                    view = self.refresh().await?;
                    targets = view.placement.write_targets(object_hash(bucket, key));
                    i = 0;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            i += 1;
        }
        Err(unavailable(
            last.map(|e| e.to_string())
                .unwrap_or_else(|| "no replicas".into()),
        ))
    }

    /// Quorum read of a key's newest visible record (complete or tombstone), or of the
    /// version `selector` names: the freshest copy (version, then tag edits) among a read
    /// quorum, skipping versions any answering replica reports purged. Replicas found holding
    /// an older copy (or, for the newest, none) are repaired in the background.
    pub async fn get_record(
        &self,
        bucket: &Uuid,
        key: &str,
        selector: Option<VersionSelector>,
    ) -> Result<Option<pb::ObjectRecord>, S3Error> {
        let view = self.view();
        let replicas = view.placement.read_set(object_hash(bucket, key));
        let quorum = replicas.len() / 2 + 1;
        let (version, null_version) = match selector {
            None => (None, false),
            Some(VersionSelector::Null) => (None, true),
            Some(VersionSelector::Id(v)) => (Some(v.to_pb()), false),
        };
        let mut reads: FuturesUnordered<_> = replicas
            .iter()
            .map(|node| {
                let req = GetRecordRequest {
                    bucket_id: bucket.as_bytes().to_vec(),
                    key: key.to_string(),
                    layout_version: view.placement.version(),
                    version: version.clone(),
                    null_version,
                    ..Default::default()
                };
                let client = self.objects(node);
                let node = LayoutNode::clone(node);
                async move { (node, async { client?.get(req).await }.await) }
            })
            .collect();
        let mut answers: Vec<(LayoutNode, Option<Freshness>)> = Vec::new();
        // A replica without an older version may rightly have dropped it: only the newest
        // visible version is restored where it is missing.
        let repair_missing = selector.is_none();
        let (mut merge, mut last) = (NewestMerge::default(), None);
        while let Some((node, result)) = reads.next().await {
            match result {
                Ok(answer) => {
                    answers.push((node, answer.record.as_ref().map(record_freshness)));
                    merge.add(answer.record, &answer.purged);
                    if answers.len() >= quorum {
                        let newest = merge.newest().cloned();
                        if let Some(newest) = newest.clone() {
                            let cluster = self.clone();
                            tokio::spawn(async move {
                                cluster
                                    .read_repair(newest, answers, reads, repair_missing)
                                    .await
                            });
                        }
                        return Ok(newest);
                    }
                }
                Err(e) => last = Some(e),
            }
        }
        Err(unavailable(last.map(|e| e.to_string()).unwrap_or_default()))
    }

    /// Waits for the replicas that had not answered yet, then stores `newest` on every
    /// replica that answered with an older copy (or none, with `repair_missing`).
    async fn read_repair<F>(
        &self,
        newest: pb::ObjectRecord,
        mut answers: Vec<(LayoutNode, Option<Freshness>)>,
        mut rest: F,
        repair_missing: bool,
    ) where
        F: futures::Stream<Item = (LayoutNode, Result<GetRecordResponse, tonic::Status>)> + Unpin,
    {
        while let Some((node, result)) = rest.next().await {
            if let Ok(answer) = result {
                answers.push((node, answer.record.as_ref().map(record_freshness)));
            }
        }
        let target = record_freshness(&newest);
        for (node, held) in answers {
            let addr = &node.addr;
            let current = match held {
                Some(held) => held >= target,
                None => !repair_missing,
            };
            if current {
                continue;
            }
            let req = StoreRequest {
                record: Some(newest.clone()),
                layout_version: self.view().placement.version(),
            };
            match self.objects(&node) {
                Ok(mut client) => match client.store(req).await {
                    Ok(_) => {
                        tracing::info!(node = %addr, key = %newest.key, "read repair stored a newer version")
                    }
                    Err(e) => tracing::debug!(node = %addr, error = %e, "read repair failed"),
                },
                Err(e) => tracing::debug!(node = %addr, error = %e, "read repair failed"),
            }
        }
    }

    /// One sorted page of a bucket: the newest visible record per key after `start_after`
    /// (tombstones included), merged from the nodes. Needs one answer per ring partition (every
    /// partition has a replica that answered), so one dead node does not stall listings.
    /// `complete` is false when more keys may follow the last one returned.
    pub async fn list(&self, req: ListRequest) -> Result<ListPage, S3Error> {
        let view = self.view();
        let nodes: Vec<LayoutNode> = view.placement.nodes().into_iter().cloned().collect();
        let calls = nodes.iter().map(|node| {
            let req = ListRequest {
                layout_version: view.placement.version(),
                ..req.clone()
            };
            let client = self.objects(node);
            async move { client?.list(req).await }
        });
        let pages = futures::future::join_all(calls).await;
        let answered: HashSet<Uuid> = nodes
            .iter()
            .zip(&pages)
            .filter(|(_, page)| page.is_ok())
            .map(|(node, _)| node.id)
            .collect();
        if !view
            .placement
            .oldest()
            .covered_by(|id| answered.contains(id))
        {
            let why = pages
                .into_iter()
                .find_map(Result::err)
                .map(|e| e.to_string())
                .unwrap_or_default();
            return Err(unavailable(format!(
                "no replica of some keys answered the listing: {why}"
            )));
        }
        let mut merged: Vec<pb::ObjectRecord> = Vec::new();
        // Entries beyond the smallest last entry of a cut page may be missing from that node's
        // answer.
        let mut bound: Option<(String, VersionKey)> = None;
        let bucket = Uuid::from_slice(&req.bucket_id).unwrap_or_default();
        for (node, page) in nodes.iter().zip(pages) {
            let Ok(mut page) = page else { continue };
            if page.truncated
                && let Some(last) = page.records.last()
            {
                let position = (last.key.clone(), version_key(last));
                if bound
                    .as_ref()
                    .is_none_or(|b| list_order(&position, b).is_lt())
                {
                    bound = Some(position);
                }
            }
            // A node keeps copies of keys it no longer replicates until they are cleaned up;
            // those are not kept current, so only replicas count.
            page.records
                .retain(|r| view.placement.holds(&node.id, object_hash(&bucket, &r.key)));
            merged.extend(page.records);
        }
        merged.sort_by(|a, b| {
            list_order(
                &(a.key.clone(), version_key(a)),
                &(b.key.clone(), version_key(b)),
            )
        });
        // A version some replica purged is gone, whatever a replica that missed it says.
        let purged: HashSet<(String, VersionKey)> = merged
            .iter()
            .filter(|r| is_purged(r))
            .map(|r| (r.key.clone(), version_key(r)))
            .collect();
        merged.retain(|r| !is_purged(r) && !purged.contains(&(r.key.clone(), version_key(r))));
        if req.all_versions {
            merged.dedup_by(|later, earlier| {
                later.key == earlier.key && version_key(later) == version_key(earlier)
            });
            // A replica that has not seen a newer version yet still lists the ones it replaces.
            let mut kept: Vec<pb::ObjectRecord> = Vec::with_capacity(merged.len());
            for record in merged {
                let replaced = kept
                    .iter()
                    .rev()
                    .take_while(|newer| newer.key == record.key)
                    .any(|newer| is_visible(newer) && supersedes(newer, &record));
                if !replaced {
                    kept.push(record);
                }
            }
            merged = kept;
        } else {
            merged.dedup_by(|later, earlier| later.key == earlier.key);
        }
        if let Some(bound) = &bound {
            merged.retain(|r| {
                if req.all_versions {
                    list_order(&(r.key.clone(), version_key(r)), bound).is_le()
                } else {
                    r.key <= bound.0
                }
            });
        }
        Ok(ListPage {
            records: merged,
            complete: bound.is_none(),
        })
    }

    /// Writes a block (the concatenation of `data`) to its replicas; returns once a write
    /// quorum holds it.
    pub async fn put_block(
        &self,
        id: &[u8],
        owner: &pb::BlockOwner,
        data: Vec<Bytes>,
    ) -> Result<(), S3Error> {
        let mut view = self.view();
        let hash = block_hash(id);
        let size: u64 = data.iter().map(|c| c.len() as u64).sum();
        let mut refreshed = false;
        loop {
            let mut writes: FuturesUnordered<_> = view
                .placement
                .write_targets(hash)
                .into_iter()
                .map(|node| {
                    let header = PutBlockHeader {
                        id: id.to_vec(),
                        owner: Some(owner.clone()),
                        size,
                        layout_version: view.placement.version(),
                    };
                    let target = self.block_node(node);
                    let (data, node) = (data.clone(), node.id);
                    async move { (node, async { target?.put_block(header, data).await }.await) }
                })
                .collect();
            let (mut acked, mut last, mut full) = (Vec::new(), None, None);
            while let Some((node, result)) = writes.next().await {
                match result {
                    Ok(_) => {
                        acked.push(node);
                        if view.placement.write_quorum(hash, |id| acked.contains(id)) {
                            tokio::spawn(async move { while writes.next().await.is_some() {} });
                            return Ok(());
                        }
                    }
                    Err(e) if is_storage_full(&e) => full = Some(e),
                    Err(e) => last = Some(e),
                }
            }
            // Our layout is behind: catch up and write to the new replicas too.
            if last.as_ref().is_some_and(is_stale_layout) && !refreshed {
                refreshed = true;
                view = self.refresh().await?;
                continue;
            }
            // Replicas below their free-space reserve kept the quorum from being reached.
            if let Some(full) = full {
                return Err(full.into());
            }
            return Err(unavailable(last.map(|e| e.to_string()).unwrap_or_default()));
        }
    }

    /// Reads `length` bytes (0 = to the end) of a block from the first replica that has a
    /// verified copy.
    pub async fn get_block(
        &self,
        id: &[u8],
        offset: u64,
        length: u64,
    ) -> Result<Vec<Bytes>, S3Error> {
        let view = self.view();
        let mut last = None;
        for node in view.placement.write_targets(block_hash(id)) {
            let req = GetBlockRequest {
                id: id.to_vec(),
                offset,
                length,
                layout_version: view.placement.version(),
            };
            let result = async { self.block_node(node)?.get_block(req).await }.await;
            match result {
                Ok(data) => return Ok(data),
                Err(e) => {
                    tracing::warn!(node = %node.addr, error = %e, "block read failed, trying next replica");
                    last = Some(e);
                }
            }
        }
        Err(S3Error::InternalError(format!(
            "no readable copy of a block: {}",
            last.map(|e| e.to_string()).unwrap_or_default()
        )))
    }

    /// Adds references on existing blocks (on every replica, one request per node and batch);
    /// fails if a block is missing from a write quorum of its replicas.
    pub async fn add_refs(&self, refs: &[pb::BlockRefEntry]) -> Result<(), S3Error> {
        let view = self.view();
        let mut unique: Vec<pb::BlockRefEntry> = Vec::with_capacity(refs.len());
        let mut seen = HashSet::new();
        for entry in refs {
            if seen.insert((
                entry.block_id.as_slice(),
                entry.owner.as_ref().map(prost::Message::encode_to_vec),
            )) {
                unique.push(entry.clone());
            }
        }
        let calls = refs_by_replica(&view.placement, &unique)
            .into_iter()
            .map(|(node, batch)| {
                let ids: Vec<Vec<u8>> = batch.iter().map(|e| e.block_id.clone()).collect();
                let req = RefsRequest {
                    refs: batch,
                    layout_version: view.placement.version(),
                };
                let client = self.peers.blocks_on(&node);
                async move { (node, ids, async move { client?.add_refs(req).await }.await) }
            });
        let mut acks: HashMap<Vec<u8>, Vec<Uuid>> = HashMap::new();
        for (node, ids, result) in futures::future::join_all(calls).await {
            match result {
                Ok(resp) => {
                    let missing: HashSet<&Vec<u8>> = resp.get_ref().missing.iter().collect();
                    for id in ids.into_iter().filter(|id| !missing.contains(id)) {
                        acks.entry(id).or_default().push(node.id);
                    }
                }
                Err(e) => {
                    tracing::warn!(node = %node.addr, error = %e, "adding block references failed")
                }
            }
        }
        for entry in &unique {
            let acked = acks.get(&entry.block_id).cloned().unwrap_or_default();
            let hash = block_hash(&entry.block_id);
            if !view.placement.write_quorum(hash, |id| acked.contains(id)) {
                return Err(S3Error::InternalError(
                    "a source block is no longer available".into(),
                ));
            }
        }
        Ok(())
    }

    /// Drops block references on every replica of their blocks. Best effort (like the
    /// node's release of superseded versions): unreachable replicas keep them until repair.
    pub async fn drop_refs(&self, refs: &[pb::BlockRefEntry]) {
        let view = self.view();
        self.peers
            .drop_refs_everywhere(&view.placement, refs, None, |_| async { Ok(()) })
            .await;
    }

    /// Streams a byte range of an object body stored in blocks.
    pub fn block_reader(
        &self,
        blocks: Vec<pb::BlockPointer>,
        start: u64,
        end_exclusive: u64,
    ) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
        let cluster = self.clone();
        let mut ranges = Vec::new();
        let mut offset = 0u64;
        for b in blocks {
            let (b_start, b_end) = (offset, offset + b.size);
            offset = b_end;
            if b_end <= start || b_start >= end_exclusive {
                continue;
            }
            let from = start.max(b_start) - b_start;
            let to = end_exclusive.min(b_end) - b_start;
            ranges.push((b.id, from, to - from));
        }
        // Fetch a few blocks ahead while the client drains the current one.
        futures::stream::iter(ranges)
            .map(move |(id, from, len)| {
                let cluster = cluster.clone();
                async move { cluster.get_block(&id, from, len).await }
            })
            .buffered(READ_AHEAD)
            .map(|r| {
                r.map(|chunks| futures::stream::iter(chunks.into_iter().map(Ok)))
                    .map_err(std::io::Error::other)
            })
            .try_flatten()
    }
}

use futures::TryStreamExt;

/// How fresh a copy of a record is (see [`record_freshness`]).
type Freshness = (VersionKey, VersionKey);

/// A merged listing page.
pub struct ListPage {
    pub records: Vec<pb::ObjectRecord>,
    pub complete: bool,
}

/// Listing order: by key, then newest version first.
fn list_order(a: &(String, VersionKey), b: &(String, VersionKey)) -> std::cmp::Ordering {
    a.0.cmp(&b.0).then_with(|| b.1.cmp(&a.1))
}
