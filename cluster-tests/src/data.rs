//! Test bodies: random bytes, and a deterministic pseudo-random stream of any length that is
//! generated on the fly (so a 1 GiB upload never sits in memory).

use std::pin::Pin;
use std::task::{Context, Poll};

use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use md5::{Digest, Md5};
use rand::RngCore;

pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rand::rng().fill_bytes(&mut v);
    v
}

pub fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

/// The ETag S3 gives a single-part object: the quoted hex MD5.
pub fn quoted_md5(data: &[u8]) -> String {
    format!("\"{}\"", md5_hex(data))
}

/// Base64 of the MD5, for `Content-MD5`.
pub fn content_md5(data: &[u8]) -> String {
    aws_smithy_types::base64::encode(Md5::digest(data))
}

const CHUNK: usize = 256 * 1024;

/// Deterministic pseudo-random bytes (xorshift64*) identified by `(seed, len)`.
#[derive(Clone, Debug)]
pub struct Pattern {
    state: u64,
    remaining: u64,
}

impl Pattern {
    pub fn new(seed: u64, len: u64) -> Self {
        Self {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            remaining: len,
        }
    }

    /// The next chunk (at most 256 KiB), `None` at the end.
    pub fn next_chunk(&mut self) -> Option<Bytes> {
        if self.remaining == 0 {
            return None;
        }
        let n = (self.remaining as usize).min(CHUNK);
        let mut buf = Vec::with_capacity(n + 8);
        while buf.len() < n {
            self.state ^= self.state >> 12;
            self.state ^= self.state << 25;
            self.state ^= self.state >> 27;
            let v = self.state.wrapping_mul(0x2545_F491_4F6C_DD1D);
            buf.extend_from_slice(&v.to_le_bytes());
        }
        buf.truncate(n);
        self.remaining -= n as u64;
        Some(Bytes::from(buf))
    }

    /// Hex MD5 of the whole pattern (computed by generating it).
    pub fn md5_hex(mut self) -> String {
        let mut h = Md5::new();
        while let Some(c) = self.next_chunk() {
            h.update(&c);
        }
        hex::encode(h.finalize())
    }

    /// The whole pattern in memory (for small lengths).
    pub fn to_vec(mut self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.remaining as usize);
        while let Some(c) = self.next_chunk() {
            v.extend_from_slice(&c);
        }
        v
    }

    /// A streaming, exact-length request body (not held in memory, not retryable).
    pub fn into_byte_stream(self) -> ByteStream {
        ByteStream::new(SdkBody::from_body_1_x(PatternBody(self)))
    }
}

/// A streaming body (sent as `UNSIGNED-PAYLOAD`, not hashed by the client) over shared bytes.
pub fn shared_byte_stream(data: Bytes) -> ByteStream {
    ByteStream::new(SdkBody::from_body_1_x(SharedBody { data, pos: 0 }))
}

struct SharedBody {
    data: Bytes,
    pos: usize,
}

impl Body for SharedBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.pos >= self.data.len() {
            return Poll::Ready(None);
        }
        let end = (self.pos + CHUNK).min(self.data.len());
        let chunk = self.data.slice(self.pos..end);
        self.pos = end;
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.pos >= self.data.len()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact((self.data.len() - self.pos) as u64)
    }
}

struct PatternBody(Pattern);

impl Body for PatternBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.0.next_chunk().map(|c| Ok(Frame::data(c))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.0.remaining)
    }
}

/// Reads a response body to the end without keeping it: (length, hex MD5).
pub async fn stream_md5(mut body: ByteStream) -> anyhow::Result<(u64, String)> {
    let mut h = Md5::new();
    let mut len = 0u64;
    while let Some(chunk) = body.try_next().await? {
        len += chunk.len() as u64;
        h.update(&chunk);
    }
    Ok((len, hex::encode(h.finalize())))
}
