//! Streaming a request body into storage: [`BlockCutter`] cuts the body into blocks while
//! hashing it, and [`BlockUploader`] writes blocks to their replicas with a few in flight.
//! Memory stays at a few blocks whatever the object size.

use bytes::{Bytes, BytesMut};
use cairn_proto::BlockId;
use cairn_proto::pb;
use futures::stream::FuturesUnordered;
use futures::{StreamExt, future::BoxFuture};

use crate::body::BodyStream;
use crate::checksum::{BodyDigests, BodyHasher};
use crate::cluster::Cluster;
use crate::error::{S3Error, S3Result};

/// Blocks written concurrently per upload.
const IN_FLIGHT: usize = 4;

/// Cuts a body into blocks of `block_size`, hashing every byte.
pub struct BlockCutter {
    body: BodyStream,
    buffer: BytesMut,
    block_size: usize,
    hasher: BodyHasher,
    total: u64,
    max_size: u64,
    ended: bool,
}

impl BlockCutter {
    pub fn new(body: BodyStream, block_size: usize, hasher: BodyHasher, max_size: u64) -> Self {
        Self {
            body,
            buffer: BytesMut::new(),
            block_size,
            hasher,
            total: 0,
            max_size,
            ended: false,
        }
    }

    /// The next block (the last one may be short, and empty for an empty body); `None` after the end.
    pub async fn next_block(&mut self) -> S3Result<Option<Bytes>> {
        while !self.ended && self.buffer.len() < self.block_size {
            match self.body.next().await {
                Some(chunk) => {
                    let chunk = chunk?;
                    self.total += chunk.len() as u64;
                    if self.total > self.max_size {
                        return Err(S3Error::EntityTooLarge);
                    }
                    self.hasher.update(&chunk);
                    if self.buffer.is_empty() && chunk.len() >= self.block_size {
                        // Avoid a copy when the client sends block-sized chunks.
                        self.buffer = BytesMut::from(chunk);
                    } else {
                        self.buffer.extend_from_slice(&chunk);
                    }
                }
                None => self.ended = true,
            }
        }
        if self.buffer.is_empty() && self.ended {
            return Ok(None);
        }
        let n = self.buffer.len().min(self.block_size);
        Ok(Some(self.buffer.split_to(n).freeze()))
    }

    /// Whether the body has been read to its end and handed out completely.
    pub fn finished(&self) -> bool {
        self.ended && self.buffer.is_empty()
    }

    /// Bytes read so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The digests of the whole body (call after the last block).
    pub fn digests(self) -> BodyDigests {
        self.hasher.finish()
    }
}

/// Writes blocks owned by one object version or upload, keeping their order.
pub struct BlockUploader<'a> {
    cluster: &'a Cluster,
    owner: pb::BlockOwner,
    pending: FuturesUnordered<BoxFuture<'a, S3Result<()>>>,
    blocks: Vec<pb::BlockPointer>,
}

impl<'a> BlockUploader<'a> {
    pub fn new(cluster: &'a Cluster, owner: pb::BlockOwner) -> Self {
        Self {
            cluster,
            owner,
            pending: FuturesUnordered::new(),
            blocks: Vec::new(),
        }
    }

    /// Starts writing a block; waits while too many are in flight.
    pub async fn push(&mut self, data: Bytes) -> S3Result<()> {
        while self.pending.len() >= IN_FLIGHT {
            if let Some(result) = self.pending.next().await {
                result?;
            }
        }
        let id = BlockId::random();
        self.blocks.push(pb::BlockPointer {
            id: id.0.to_vec(),
            size: data.len() as u64,
        });
        let (cluster, owner) = (self.cluster, self.owner.clone());
        self.pending.push(Box::pin(async move {
            cluster.put_block(&id.0, &owner, data).await
        }));
        Ok(())
    }

    /// Waits for every block; returns them in body order.
    pub async fn finish(mut self) -> S3Result<Vec<pb::BlockPointer>> {
        while let Some(result) = self.pending.next().await {
            result?;
        }
        Ok(self.blocks)
    }
}

/// References `owner` holds on `blocks`.
pub fn owned_refs(owner: &pb::BlockOwner, blocks: &[pb::BlockPointer]) -> Vec<pb::BlockRefEntry> {
    blocks
        .iter()
        .map(|b| pb::BlockRefEntry {
            block_id: b.id.clone(),
            owner: Some(owner.clone()),
        })
        .collect()
}

/// Drops block references in the background (best effort: a failure leaves them to repair).
pub fn release(cluster: &Cluster, refs: Vec<pb::BlockRefEntry>) {
    if refs.is_empty() {
        return;
    }
    let cluster = cluster.clone();
    tokio::spawn(async move { cluster.drop_refs(&refs).await });
}

/// Writes `first` (if not empty) and the rest of the body as blocks owned by `owner`. On any
/// failure the references taken so far are released, so a broken upload leaks nothing.
pub async fn write_blocks(
    cluster: &Cluster,
    cutter: &mut BlockCutter,
    owner: &pb::BlockOwner,
    first: Option<Bytes>,
) -> S3Result<Vec<pb::BlockPointer>> {
    let mut uploader = BlockUploader::new(cluster, owner.clone());
    let written = async {
        let mut next = first;
        loop {
            if let Some(block) = next.take().filter(|b| !b.is_empty()) {
                uploader.push(block).await?;
            }
            match cutter.next_block().await? {
                Some(block) => next = Some(block),
                None => return Ok::<_, S3Error>(()),
            }
        }
    }
    .await;
    let pushed = uploader.blocks.clone();
    match written {
        Ok(()) => uploader.finish().await,
        Err(e) => Err(e),
    }
    .inspect_err(|_| release(cluster, owned_refs(owner, &pushed)))
}
