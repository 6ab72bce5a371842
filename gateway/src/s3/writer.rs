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

/// A block of a body as the chunks it arrived in: cutting never copies the bytes.
#[derive(Debug, Default, Clone)]
pub struct Block {
    chunks: Vec<Bytes>,
    len: usize,
}

impl Block {
    fn push(&mut self, chunk: Bytes) {
        self.len += chunk.len();
        self.chunks.push(chunk);
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The block as one buffer (a copy unless it arrived in one chunk).
    pub fn into_bytes(mut self) -> Bytes {
        match self.chunks.len() {
            0 => Bytes::new(),
            1 => self.chunks.pop().unwrap_or_default(),
            _ => {
                let mut out = BytesMut::with_capacity(self.len);
                for c in &self.chunks {
                    out.extend_from_slice(c);
                }
                out.freeze()
            }
        }
    }

    /// The chunks, in order.
    pub fn into_chunks(self) -> Vec<Bytes> {
        self.chunks
    }
}

/// Cuts a body into blocks of `block_size`, hashing every byte.
pub struct BlockCutter {
    body: BodyStream,
    /// Received bytes not handed out yet (the head of the next block).
    pending: Block,
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
            pending: Block::default(),
            block_size,
            hasher,
            total: 0,
            max_size,
            ended: false,
        }
    }

    /// The next block (the last one may be short, and empty for an empty body); `None` after the end.
    pub async fn next_block(&mut self) -> S3Result<Option<Block>> {
        while !self.ended && self.pending.len() < self.block_size {
            match self.body.next().await {
                Some(chunk) => {
                    let chunk = chunk?;
                    self.total += chunk.len() as u64;
                    if self.total > self.max_size {
                        return Err(S3Error::EntityTooLarge);
                    }
                    self.hasher.update(&chunk);
                    if !chunk.is_empty() {
                        self.pending.push(chunk);
                    }
                }
                None => self.ended = true,
            }
        }
        if self.pending.is_empty() && self.ended {
            return Ok(None);
        }
        if self.pending.len() <= self.block_size {
            return Ok(Some(std::mem::take(&mut self.pending)));
        }
        // Cut inside the chunk that crosses the block boundary (a slice, not a copy).
        let mut block = Block::default();
        let mut rest = std::mem::take(&mut self.pending).chunks.into_iter();
        for mut chunk in rest.by_ref() {
            let room = self.block_size - block.len();
            if chunk.len() <= room {
                block.push(chunk);
                if block.len() == self.block_size {
                    break;
                }
            } else {
                block.push(chunk.split_to(room));
                self.pending.push(chunk);
                break;
            }
        }
        for chunk in rest {
            self.pending.push(chunk);
        }
        Ok(Some(block))
    }

    /// Whether the body has been read to its end and handed out completely.
    pub fn finished(&self) -> bool {
        self.ended && self.pending.is_empty()
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
    pub async fn push(&mut self, data: Block) -> S3Result<()> {
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
            cluster.put_block(&id.0, &owner, data.into_chunks()).await
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
/// failure the references taken so far are released, so a broken upload leaks nothing. (A
/// gateway that dies mid-body releases nothing: the nodes' reference audit drops those
/// references once they are older than the upload expiry.)
pub async fn write_blocks(
    cluster: &Cluster,
    cutter: &mut BlockCutter,
    owner: &pb::BlockOwner,
    first: Option<Block>,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cutter(chunks: &[&[u8]], block_size: usize) -> BlockCutter {
        let chunks: Vec<Result<Bytes, S3Error>> = chunks
            .iter()
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        BlockCutter::new(
            Box::pin(futures::stream::iter(chunks)),
            block_size,
            BodyHasher::new(false, None),
            u64::MAX,
        )
    }

    async fn blocks(mut cutter: BlockCutter) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(block) = cutter.next_block().await.unwrap() {
            out.push(block.into_bytes().to_vec());
        }
        out
    }

    #[tokio::test]
    async fn cuts_across_chunks_without_losing_bytes() {
        let body: Vec<u8> = (0..100u8).collect();
        for chunking in [
            vec![100],
            vec![3, 7, 10, 25, 1, 54],
            vec![30, 30, 30, 10],
            vec![1; 100],
        ] {
            let mut parts = Vec::new();
            let mut at = 0;
            for n in chunking {
                parts.push(&body[at..at + n]);
                at += n;
            }
            let got = blocks(cutter(&parts, 16)).await;
            assert!(got[..got.len() - 1].iter().all(|b| b.len() == 16));
            assert_eq!(got.last().unwrap().len(), 100 % 16);
            assert_eq!(got.concat(), body);
        }
        assert_eq!(
            blocks(cutter(&[b"", b"abc", b""], 16)).await,
            vec![b"abc".to_vec()]
        );
        assert!(blocks(cutter(&[], 16)).await.is_empty());
    }
}
