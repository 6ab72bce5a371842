//! Body plumbing: request bodies as a stream of byte chunks, response bodies as boxed
//! streams, so no handler ever holds a whole object.

use std::pin::Pin;

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};

use crate::error::S3Error;

/// A request body as a stream of data chunks (trailers are handled by the aws-chunked decoder).
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, S3Error>> + Send>>;

/// A response body.
pub type ResponseBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// The data frames of a hyper request body.
pub fn incoming_stream(body: Incoming) -> BodyStream {
    let frames = http_body_util::BodyStream::new(body);
    Box::pin(
        frames
            .try_filter_map(|frame| async move { Ok(frame.into_data().ok()) })
            .map_err(|e| S3Error::InvalidRequest(format!("error reading request body: {e}"))),
    )
}

/// An empty response body.
pub fn empty() -> ResponseBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// A response body from bytes in memory.
pub fn full(data: impl Into<Bytes>) -> ResponseBody {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A streamed response body.
pub fn streamed(
    stream: impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
) -> ResponseBody {
    BodyExt::boxed_unsync(StreamBody::new(stream.map_ok(Frame::data)))
}

/// Reads a small request body (XML documents) up to `limit` bytes.
pub async fn collect_limited(mut body: BodyStream, limit: usize) -> Result<Bytes, S3Error> {
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        if out.len() + chunk.len() > limit {
            return Err(S3Error::MaxMessageLengthExceeded);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.into())
}
