//! Direct gRPC access to one node of a test cluster, with the cluster secret: what a node
//! itself holds (records, blocks, references, repair counters), beneath the S3 API.

use cairn_proto::client::Peers;
use cairn_proto::ids::{object_owner, record_blocks, record_freshness};
use cairn_proto::pb::{
    self, GetBlockRequest, GetRecordRequest, MetaReadRequest, RefsRequest, StatusRequest,
};
use cairn_proto::{Metadata, VersionKey};

use crate::Cluster;

/// Direct gRPC access to one node, with the cluster secret.
pub struct NodeProbe {
    peers: Peers,
    addr: String,
}

impl NodeProbe {
    pub fn new(c: &Cluster, i: usize) -> Self {
        Self {
            peers: Peers::new(c.cluster_secret()).expect("peers"),
            addr: c.rpc(i),
        }
    }

    /// A probe of each node of `c`, in node order.
    pub fn each(c: &Cluster) -> Vec<NodeProbe> {
        (0..c.nodes.len()).map(|i| Self::new(c, i)).collect()
    }

    pub async fn bucket_id(&self, name: &str) -> Vec<u8> {
        let state = self
            .peers
            .meta(&self.addr)
            .unwrap()
            .read(MetaReadRequest::default())
            .await
            .expect("metadata read")
            .into_inner();
        let meta: Metadata = serde_json::from_slice(&state.state).expect("metadata json");
        meta.buckets[name].id.as_bytes().to_vec()
    }

    /// The node's answer to a `Get` of `key` (of exactly `version`, if given).
    pub async fn answer(
        &self,
        bucket_id: &[u8],
        key: &str,
        version: Option<pb::Version>,
    ) -> Result<pb::GetRecordResponse, String> {
        let req = GetRecordRequest {
            bucket_id: bucket_id.to_vec(),
            key: key.to_string(),
            version,
            ..Default::default()
        };
        let mut client = self.peers.objects(&self.addr).map_err(|e| e.to_string())?;
        Ok(client
            .get(req)
            .await
            .map_err(|e| format!("Get {key}: {e}"))?
            .into_inner())
    }

    /// The node's newest visible record of `key`.
    pub async fn record(
        &self,
        bucket_id: &[u8],
        key: &str,
    ) -> Result<Option<pb::ObjectRecord>, String> {
        Ok(self.answer(bucket_id, key, None).await?.record)
    }

    pub async fn block(&self, id: &[u8]) -> Result<Vec<u8>, String> {
        let req = GetBlockRequest {
            id: id.to_vec(),
            offset: 0,
            length: 0,
            layout_version: 0,
        };
        let mut client = self.peers.blocks(&self.addr).map_err(|e| e.to_string())?;
        let mut stream = client
            .get_block(req)
            .await
            .map_err(|e| format!("GetBlock {}: {e}", hex::encode(id)))?
            .into_inner();
        let mut out = Vec::new();
        while let Some(chunk) = stream.message().await.map_err(|e| e.to_string())? {
            out.extend_from_slice(&chunk.data);
        }
        Ok(out)
    }

    /// Whether the node holds every block of `record` with a reference for that version.
    pub async fn refs_complete(&self, record: &pb::ObjectRecord) -> Result<bool, String> {
        let owner = object_owner(
            &record.bucket_id,
            &record.key,
            record.version.as_ref().unwrap(),
        );
        let refs = record_blocks(record)
            .iter()
            .map(|b| pb::BlockRefEntry {
                block_id: b.id.clone(),
                owner: Some(owner.clone()),
            })
            .collect();
        let mut client = self.peers.blocks(&self.addr).map_err(|e| e.to_string())?;
        let missing = client
            .missing_refs(RefsRequest {
                refs,
                layout_version: 0,
            })
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        Ok(missing.missing_blocks.is_empty() && missing.missing_refs.is_empty())
    }

    /// The node's `Status` answer (the admin API behind `cairn status`).
    pub async fn status(&self) -> pb::StatusResponse {
        let mut client = self.peers.admin(&self.addr).unwrap();
        let status = client.status(StatusRequest {}).await.expect("status");
        status.into_inner()
    }

    pub async fn anti_entropy(&self) -> pb::AntiEntropyStatus {
        self.status().await.anti_entropy.unwrap_or_default()
    }

    /// The node's collector counters, reference audit included.
    pub async fn gc(&self) -> pb::GcStatus {
        self.status().await.gc.unwrap_or_default()
    }
}

/// The freshest copy of `key` (by [`record_freshness`]: version, then tag edit) that any of
/// the probed nodes holds; nodes that are down or hold none are passed over.
pub async fn freshest_record(
    probes: &[NodeProbe],
    bucket_id: &[u8],
    key: &str,
) -> Option<pb::ObjectRecord> {
    let mut newest: Option<pb::ObjectRecord> = None;
    for probe in probes {
        if let Ok(Some(r)) = probe.record(bucket_id, key).await
            && newest
                .as_ref()
                .is_none_or(|n| record_freshness(n) < record_freshness(&r))
        {
            newest = Some(r);
        }
    }
    newest
}

/// The S3 `versionId` of a record.
pub fn version_id(record: &pb::ObjectRecord) -> String {
    VersionKey::from_pb(record.version.as_ref().expect("a record has a version"))
        .expect("a valid version")
        .to_version_id()
}
