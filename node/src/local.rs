//! PutBlock and GetBlock on this node's stores, shared by the gRPC BlockService and by
//! [`LocalBlockNode`], the in-process handle a gateway running in the same process
//! (`cairn server`) uses instead of gRPC over loopback: same checks, same durability.

use std::sync::Arc;

use bytes::Bytes;
use cairn_proto::BlockId;
use cairn_proto::block_node::BlockNode;
use cairn_proto::pb::{GetBlockRequest, PutBlockHeader};
use prost::Message;
use tonic::Status;

use crate::coordinator::index_status;
use crate::rpc::MAX_BLOCK;
use crate::state::NodeState;
use crate::store::{BlockError, Op};

pub(crate) fn block_id(raw: &[u8]) -> Result<BlockId, Status> {
    BlockId::from_slice(raw).ok_or_else(|| Status::invalid_argument("block id must be 16 bytes"))
}

/// Checks a PutBlock header before any data is accepted, including that the block fits
/// above the data dir's free-space reserve (a refused block is new data, whether a client's
/// or a repair copy).
pub(crate) fn check_put_header(state: &NodeState, header: &PutBlockHeader) -> Result<(), Status> {
    state.check_layout(header.layout_version)?;
    block_id(&header.id)?;
    if header.owner.is_none() {
        return Err(Status::invalid_argument("block owner missing"));
    }
    if header.size > MAX_BLOCK {
        return Err(Status::invalid_argument("block too large"));
    }
    state.disk.admit(header.size)
}

/// Stores a block and its reference; returns once both are durable. The file and the
/// reference are written concurrently: a reference whose file could not be written is
/// dropped again (and one left behind by a crash only points at a missing file, which the
/// collector treats like any orphan).
pub async fn put_block(
    state: &NodeState,
    header: PutBlockHeader,
    chunks: Vec<Bytes>,
) -> Result<(), Status> {
    check_put_header(state, &header)?;
    let id = block_id(&header.id)?;
    let received: u64 = chunks.iter().map(|c| c.len() as u64).sum();
    if received != header.size {
        return Err(Status::invalid_argument(format!(
            "block size {received} != announced {}",
            header.size
        )));
    }
    let owner = header
        .owner
        .as_ref()
        .map(Message::encode_to_vec)
        .unwrap_or_default();
    let blocks = state.blocks.clone();
    let write = async {
        tokio::task::spawn_blocking(move || blocks.put(&id, &chunks))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| Status::internal(format!("writing block: {e}")))
    };
    let reference = async {
        state
            .index
            .apply(vec![Op::AddRef {
                block: id,
                owner: owner.clone(),
            }])
            .await
            .map_err(index_status)
    };
    let (written, referenced) = tokio::join!(write, reference);
    if let Err(e) = written {
        if referenced.is_ok() {
            // The block becomes an orphan whose (missing) file the collector forgets.
            let _ = state
                .index
                .apply(vec![Op::DropRef { block: id, owner }])
                .await;
        }
        return Err(e);
    }
    referenced.map(|_| ())
}

/// Reads `req.length` bytes (0 = to the end) from `req.offset`, verified against the block
/// checksum.
pub async fn get_block(state: &NodeState, req: GetBlockRequest) -> Result<Bytes, Status> {
    let id = block_id(&req.id)?;
    let blocks = state.blocks.clone();
    tokio::task::spawn_blocking(move || blocks.get(&id, req.offset, req.length))
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(|e| match e {
            BlockError::NotFound => Status::not_found("no such block"),
            BlockError::OutOfRange => Status::out_of_range("range outside the block"),
            BlockError::Corrupt(why) => Status::data_loss(format!("corrupt block: {why}")),
            BlockError::Io(e) => Status::internal(e.to_string()),
        })
}

/// This node's blocks for a gateway in the same process.
pub struct LocalBlockNode(pub Arc<NodeState>);

/// [`LocalBlockNode`] as a trait object.
pub fn block_node(state: Arc<NodeState>) -> Arc<dyn BlockNode> {
    Arc::new(LocalBlockNode(state))
}

#[tonic::async_trait]
impl BlockNode for LocalBlockNode {
    async fn put_block(&self, header: PutBlockHeader, data: Vec<Bytes>) -> Result<(), Status> {
        put_block(&self.0, header, data).await
    }

    async fn get_block(&self, req: GetBlockRequest) -> Result<Vec<Bytes>, Status> {
        Ok(vec![get_block(&self.0, req).await?])
    }
}
