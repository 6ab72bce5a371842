//! Body plumbing: request bodies as a stream of byte chunks, response bodies as boxed
//! streams, so no handler ever holds a whole object.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::Body;
use hyper::body::{Frame, Incoming};

use crate::error::S3Error;

/// A request body as a stream of data chunks (trailers are handled by the aws-chunked decoder).
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, S3Error>> + Send>>;

/// A response body.
pub type ResponseBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// How much of a request body a handler left unread is still read (and discarded) after the
/// answer, so a client still sending gets the answer rather than a connection reset.
const DRAIN_LIMIT: usize = 64 << 20;
/// How long such draining may take.
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// The data frames of a hyper request body. Dropped before the end (a handler refused the
/// request early), the rest is drained in the background up to [`DRAIN_LIMIT`].
pub fn incoming_stream(body: Incoming) -> BodyStream {
    Box::pin(RequestBody {
        body: Some(body),
        done: false,
    })
}

/// A request body's data frames; drains what is left when dropped early.
struct RequestBody {
    body: Option<Incoming>,
    done: bool,
}

impl Stream for RequestBody {
    type Item = Result<Bytes, S3Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(body) = self.body.as_mut() else {
            return Poll::Ready(None);
        };
        loop {
            match ready!(Pin::new(&mut *body).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        return Poll::Ready(Some(Ok(data)));
                    }
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(S3Error::InvalidRequest(format!(
                        "error reading request body: {e}"
                    )))));
                }
                None => {
                    self.done = true;
                    return Poll::Ready(None);
                }
            }
        }
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        let Some(mut body) = self.body.take().filter(|_| !self.done) else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let drain = async {
                let mut read = 0;
                while let Some(Ok(frame)) = body.frame().await {
                    read += frame.data_ref().map_or(0, Bytes::len);
                    if read > DRAIN_LIMIT {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
        });
    }
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
