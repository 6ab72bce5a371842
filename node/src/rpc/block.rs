//! BlockService: block bodies and their references on this node.

use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use cairn_proto::BlockId;
use cairn_proto::pb::block_service_server::BlockService;
use cairn_proto::pb::{
    BlockData, GetBlockRequest, MissingRefsResponse, PutBlockChunk, PutBlockResponse, RefsRequest,
    RefsResponse, put_block_chunk,
};
use futures::Stream;
use prost::Message;
use tonic::{Request, Response, Status, Streaming};

use crate::coordinator::{drop_refs_local, index_status};
use crate::local;
use crate::state::NodeState;
use crate::store::Op;

/// Largest block a node accepts.
pub const MAX_BLOCK: u64 = 32 * 1024 * 1024;
/// Size of the messages a block is streamed back in.
const READ_CHUNK: usize = 1024 * 1024;

pub struct BlockRpc(pub Arc<NodeState>);

fn block_id(raw: &[u8]) -> Result<BlockId, Status> {
    BlockId::from_slice(raw).ok_or_else(|| Status::invalid_argument("block id must be 16 bytes"))
}

type BlockStream = Pin<Box<dyn Stream<Item = Result<BlockData, Status>> + Send>>;

#[tonic::async_trait]
impl BlockService for BlockRpc {
    async fn put_block(
        &self,
        req: Request<Streaming<PutBlockChunk>>,
    ) -> Result<Response<PutBlockResponse>, Status> {
        let mut stream = req.into_inner();
        let header = match stream.message().await?.and_then(|c| c.part) {
            Some(put_block_chunk::Part::Header(h)) => h,
            _ => {
                return Err(Status::invalid_argument(
                    "first message must be the block header",
                ));
            }
        };
        local::check_put_header(&self.0, &header)?;
        let mut chunks: Vec<Bytes> = Vec::new();
        let mut received = 0u64;
        while let Some(chunk) = stream.message().await? {
            if let Some(put_block_chunk::Part::Data(data)) = chunk.part {
                received += data.len() as u64;
                if received > header.size {
                    return Err(Status::invalid_argument("block longer than announced"));
                }
                chunks.push(data);
            }
        }
        local::put_block(&self.0, header, chunks).await?;
        Ok(Response::new(PutBlockResponse {}))
    }

    type GetBlockStream = BlockStream;

    async fn get_block(
        &self,
        req: Request<GetBlockRequest>,
    ) -> Result<Response<BlockStream>, Status> {
        let data = local::get_block(&self.0, req.into_inner()).await?;
        let chunks: Vec<Result<BlockData, Status>> = (0..data.len())
            .step_by(READ_CHUNK)
            .map(|at| {
                Ok(BlockData {
                    data: data.slice(at..(at + READ_CHUNK).min(data.len())),
                })
            })
            .collect();
        Ok(Response::new(Box::pin(futures::stream::iter(chunks))))
    }

    async fn add_refs(&self, req: Request<RefsRequest>) -> Result<Response<RefsResponse>, Status> {
        let req = req.into_inner();
        self.0.check_layout(req.layout_version)?;
        let mut ops = Vec::new();
        let mut missing = Vec::new();
        for entry in req.refs {
            let id = block_id(&entry.block_id)?;
            let owner = entry
                .owner
                .ok_or_else(|| Status::invalid_argument("owner missing"))?;
            if self.0.blocks.contains(&id) {
                ops.push(Op::AddRef {
                    block: id,
                    owner: owner.encode_to_vec(),
                });
            } else {
                missing.push(entry.block_id);
            }
        }
        self.0.index.apply(ops).await.map_err(index_status)?;
        Ok(Response::new(RefsResponse { missing }))
    }

    async fn missing_refs(
        &self,
        req: Request<RefsRequest>,
    ) -> Result<Response<MissingRefsResponse>, Status> {
        let req = req.into_inner();
        Ok(Response::new(
            crate::repair::missing_refs(&self.0, req.refs).await?,
        ))
    }

    async fn drop_refs(&self, req: Request<RefsRequest>) -> Result<Response<RefsResponse>, Status> {
        let req = req.into_inner();
        self.0.check_layout(req.layout_version)?;
        drop_refs_local(&self.0, &req.refs).await?;
        Ok(Response::new(RefsResponse::default()))
    }
}
