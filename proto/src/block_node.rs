//! The block operations of one storage node as a trait, so a caller does not care how the
//! node is reached: [`GrpcBlockNode`] talks BlockService over the network; a node running in
//! the same process as a gateway (`cairn server`) hands the gateway an in-process
//! implementation (same checks, same durability, no encoding and no loopback TCP).

use bytes::Bytes;
use tonic::Status;

use crate::client::AuthChannel;
use crate::pb::block_service_client::BlockServiceClient;
use crate::pb::{GetBlockRequest, PutBlockChunk, PutBlockHeader, put_block_chunk};

/// PutBlock and GetBlock of one node.
#[tonic::async_trait]
pub trait BlockNode: Send + Sync + 'static {
    /// Stores a block (its bytes are the concatenation of `data`) and a reference for
    /// `header.owner`; returns once both are durable.
    async fn put_block(&self, header: PutBlockHeader, data: Vec<Bytes>) -> Result<(), Status>;

    /// Reads a byte range of a block, verified against the block checksum, as chunks.
    async fn get_block(&self, req: GetBlockRequest) -> Result<Vec<Bytes>, Status>;
}

/// A node reached over gRPC.
pub struct GrpcBlockNode(pub BlockServiceClient<AuthChannel>);

#[tonic::async_trait]
impl BlockNode for GrpcBlockNode {
    async fn put_block(&self, header: PutBlockHeader, data: Vec<Bytes>) -> Result<(), Status> {
        let messages: Vec<PutBlockChunk> = std::iter::once(put_block_chunk::Part::Header(header))
            .chain(data.into_iter().map(put_block_chunk::Part::Data))
            .map(|part| PutBlockChunk { part: Some(part) })
            .collect();
        self.0
            .clone()
            .put_block(tonic::codegen::tokio_stream::iter(messages))
            .await?;
        Ok(())
    }

    async fn get_block(&self, req: GetBlockRequest) -> Result<Vec<Bytes>, Status> {
        let mut stream = self.0.clone().get_block(req).await?.into_inner();
        let mut out = Vec::new();
        while let Some(chunk) = stream.message().await? {
            out.push(chunk.data);
        }
        Ok(out)
    }
}
