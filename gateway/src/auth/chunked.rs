//! Decoding of `aws-chunked` request bodies (SigV4 streaming uploads), as a stream.
//!
//! Framing: chunks `hex-size[;chunk-signature=sig]\r\n<data>\r\n`, a final chunk of size 0,
//! then trailer lines `name:value\r\n` (for signed trailers, last
//! `x-amz-trailer-signature:sig\r\n`) and an empty line.
//!
//! With a [`StreamingContext`], every chunk signature is verified before the chunk's data is
//! yielded: the chain starts at the request (seed) signature, and each chunk signs
//! `AWS4-HMAC-SHA256-PAYLOAD\n<date>\n<scope>\n<previous signature>\n<sha256("")>\n<sha256(data)>`.
//! Signed trailers sign `AWS4-HMAC-SHA256-TRAILER\n<date>\n<scope>\n<previous signature>\n
//! <sha256(trailer lines)>`, each line `name:value\n`, sorted by name.
//! Without a context (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`), data is yielded as it arrives.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::{Buf, Bytes, BytesMut};
use futures::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue};
use subtle::ConstantTimeEq;

use super::{ALGORITHM, StreamingContext, hmac_sha256, sha256_hex};
use crate::body::BodyStream;
use crate::error::S3Error;

/// Largest chunk accepted (a signed chunk is held in memory until verified).
pub const MAX_CHUNK_SIZE: usize = 16 << 20;
/// Longest chunk header or trailer line.
const MAX_LINE: usize = 4096;
/// Most trailer bytes accepted.
const MAX_TRAILER: usize = 16 << 10;
/// The trailer line carrying the trailer signature (not itself a trailer).
const TRAILER_SIGNATURE: &str = "x-amz-trailer-signature";
/// Hex SHA-256 of the empty string, part of every chunk's string to sign.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// The trailer headers, filled once the decoded stream has ended successfully.
#[derive(Debug, Clone, Default)]
pub struct TrailerSlot(Arc<Mutex<Option<HeaderMap>>>);

impl TrailerSlot {
    /// The trailers (without `x-amz-trailer-signature`), or `None` before the body ends.
    pub fn get(&self) -> Option<HeaderMap> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, trailers: HeaderMap) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(trailers);
    }
}

/// Decodes an `aws-chunked` body, verifying chunk (and trailer) signatures when `ctx` is given
/// and the total against `decoded_length` (`x-amz-decoded-content-length`) when known.
///
/// The stream ends with an error on the first problem; unverified data is never yielded.
pub fn decode(
    body: BodyStream,
    ctx: Option<StreamingContext>,
    decoded_length: Option<u64>,
) -> (BodyStream, TrailerSlot) {
    let slot = TrailerSlot::default();
    let decoder = Decoder {
        input: body,
        buf: BytesMut::new(),
        state: State::Header,
        signer: ctx.map(|ctx| Signer {
            previous: ctx.seed_signature.clone(),
            ctx,
        }),
        decoded_length,
        announced: 0,
        trailers: HeaderMap::new(),
        trailer_bytes: 0,
        slot: slot.clone(),
        finished: false,
    };
    let stream = futures::stream::unfold(decoder, |mut decoder| async move {
        let item = decoder.next().await?;
        Some((item, decoder))
    });
    (Box::pin(stream), slot)
}

/// Where the decoder is in the framing.
#[derive(Debug, Clone, Copy)]
enum State {
    /// Before a chunk header line.
    Header,
    /// Inside a chunk: `remaining` data bytes to come, signed by `signature` (signed bodies).
    Data {
        remaining: usize,
        signature: Option<[u8; 32]>,
    },
    /// Before the `\r\n` closing a chunk's data.
    DataEnd,
    /// After the final chunk: trailer lines up to an empty line.
    Trailer { signature_seen: bool },
    /// The empty line after the trailers has been read.
    End,
}

/// What one step of the state machine produced.
enum Step {
    Data(Bytes),
    Continue,
    NeedInput,
    End,
}

/// Verifies the chain of chunk signatures.
struct Signer {
    ctx: StreamingContext,
    /// The last verified signature (lowercase hex).
    previous: String,
}

impl Signer {
    fn verify_chunk(&mut self, given: &[u8; 32], data: &[u8]) -> Result<(), S3Error> {
        let hash = sha256_hex(data);
        self.verify(given, "PAYLOAD", &format!("{EMPTY_SHA256}\n{hash}"))
    }

    fn verify_trailer(&mut self, given: &[u8; 32], trailers: &HeaderMap) -> Result<(), S3Error> {
        let mut lines: Vec<(&HeaderName, &HeaderValue)> = trailers.iter().collect();
        lines.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        let mut canonical = Vec::new();
        for (name, value) in lines {
            canonical.extend_from_slice(name.as_str().as_bytes());
            canonical.push(b':');
            canonical.extend_from_slice(value.as_bytes());
            canonical.push(b'\n');
        }
        self.verify(given, "TRAILER", &sha256_hex(&canonical))
    }

    /// Checks `given` against the signature of `<ALGORITHM>-<kind>\n<date>\n<scope>\n
    /// <previous>\n<tail>`; on success it becomes the previous signature.
    fn verify(&mut self, given: &[u8; 32], kind: &str, tail: &str) -> Result<(), S3Error> {
        let ctx = &self.ctx;
        let string_to_sign = format!(
            "{ALGORITHM}-{kind}\n{}\n{}\n{}\n{tail}",
            ctx.amz_date, ctx.scope, self.previous
        );
        let expected = hmac_sha256(&ctx.signing_key, string_to_sign.as_bytes());
        if !bool::from(expected.ct_eq(given)) {
            return Err(S3Error::SignatureDoesNotMatch);
        }
        self.previous = hex::encode(expected);
        Ok(())
    }
}

/// The decoding state machine over the input stream.
struct Decoder {
    input: BodyStream,
    /// Input received but not consumed yet.
    buf: BytesMut,
    state: State,
    signer: Option<Signer>,
    decoded_length: Option<u64>,
    /// Data bytes announced by the chunk headers so far.
    announced: u64,
    trailers: HeaderMap,
    trailer_bytes: usize,
    slot: TrailerSlot,
    /// Ended or failed: yields nothing more.
    finished: bool,
}

impl Decoder {
    async fn next(&mut self) -> Option<Result<Bytes, S3Error>> {
        if self.finished {
            return None;
        }
        let item = self.produce().await.transpose();
        if !matches!(item, Some(Ok(_))) {
            self.finished = true;
        }
        item
    }

    /// Runs the state machine up to the next data, the end or an error.
    async fn produce(&mut self) -> Result<Option<Bytes>, S3Error> {
        loop {
            match self.step()? {
                Step::Data(data) => return Ok(Some(data)),
                Step::Continue => {}
                Step::NeedInput => match self.input.next().await {
                    Some(frame) => self.buf.extend_from_slice(&frame?),
                    None => {
                        return Err(S3Error::InvalidRequest(
                            "IncompleteBody: the aws-chunked body ended before its final chunk \
                             and trailers."
                                .into(),
                        ));
                    }
                },
                Step::End => {
                    self.expect_end_of_input().await?;
                    self.slot.set(std::mem::take(&mut self.trailers));
                    return Ok(None);
                }
            }
        }
    }

    /// Advances through the buffered input by one framing element.
    fn step(&mut self) -> Result<Step, S3Error> {
        match self.state {
            State::Header => {
                let Some(line) = self.take_line()? else {
                    return Ok(Step::NeedInput);
                };
                let (size, signature) = self.parse_chunk_header(&line)?;
                self.announced += size as u64;
                if self.decoded_length.is_some_and(|n| self.announced > n) {
                    return Err(length_mismatch());
                }
                if size > 0 {
                    self.state = State::Data {
                        remaining: size,
                        signature,
                    };
                } else {
                    if let (Some(signer), Some(signature)) = (&mut self.signer, signature) {
                        signer.verify_chunk(&signature, b"")?;
                    }
                    self.state = State::Trailer {
                        signature_seen: false,
                    };
                }
                Ok(Step::Continue)
            }
            State::Data {
                remaining,
                signature: None,
            } => {
                if self.buf.is_empty() {
                    return Ok(Step::NeedInput);
                }
                let n = remaining.min(self.buf.len());
                self.state = match remaining - n {
                    0 => State::DataEnd,
                    remaining => State::Data {
                        remaining,
                        signature: None,
                    },
                };
                Ok(Step::Data(self.buf.split_to(n).freeze()))
            }
            State::Data {
                remaining,
                signature: Some(signature),
            } => {
                if self.buf.len() < remaining {
                    self.buf.reserve(remaining - self.buf.len());
                    return Ok(Step::NeedInput);
                }
                let data = self.buf.split_to(remaining).freeze();
                if let Some(signer) = &mut self.signer {
                    signer.verify_chunk(&signature, &data)?;
                }
                self.state = State::DataEnd;
                Ok(Step::Data(data))
            }
            State::DataEnd => {
                if self.buf.len() < 2 {
                    return Ok(Step::NeedInput);
                }
                if self.buf[..2] != *b"\r\n" {
                    return Err(malformed("chunk data is not followed by CRLF"));
                }
                self.buf.advance(2);
                self.state = State::Header;
                Ok(Step::Continue)
            }
            State::Trailer { signature_seen } => {
                let Some(line) = self.take_line()? else {
                    return Ok(Step::NeedInput);
                };
                if line.is_empty() {
                    self.end_trailers(signature_seen)?;
                    self.state = State::End;
                    return Ok(Step::End);
                }
                if signature_seen {
                    return Err(malformed("trailer after the trailer signature"));
                }
                self.trailer_line(&line)?;
                Ok(Step::Continue)
            }
            State::End => Ok(Step::End),
        }
    }

    /// Takes the next `\r\n`-terminated line (without it) from the buffer, if complete.
    fn take_line(&mut self) -> Result<Option<Bytes>, S3Error> {
        let window = &self.buf[..self.buf.len().min(MAX_LINE + 2)];
        match window.windows(2).position(|w| w == b"\r\n") {
            Some(end) => {
                let line = self.buf.split_to(end).freeze();
                self.buf.advance(2);
                Ok(Some(line))
            }
            None if window.len() > MAX_LINE => Err(malformed("line too long")),
            None => Ok(None),
        }
    }

    /// Parses `hex-size[;chunk-signature=sig]`; the signature is required for signed bodies
    /// (and extensions ignored otherwise).
    fn parse_chunk_header(&self, line: &[u8]) -> Result<(usize, Option<[u8; 32]>), S3Error> {
        let line = std::str::from_utf8(line).map_err(|_| malformed("invalid chunk header"))?;
        let (size, extension) = match line.split_once(';') {
            Some((size, extension)) => (size, Some(extension)),
            None => (line, None),
        };
        if size.is_empty() || size.len() > 16 || !size.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(malformed("invalid chunk size"));
        }
        let size = u64::from_str_radix(size, 16).map_err(|_| malformed("invalid chunk size"))?;
        let size = usize::try_from(size)
            .ok()
            .filter(|&size| size <= MAX_CHUNK_SIZE)
            .ok_or_else(|| {
                S3Error::InvalidArgument(format!(
                    "Chunk size {size} exceeds the maximum of {MAX_CHUNK_SIZE} bytes."
                ))
            })?;
        if self.signer.is_none() {
            return Ok((size, None));
        }
        let signature = extension
            .and_then(|e| e.strip_prefix("chunk-signature="))
            .ok_or_else(|| malformed("missing chunk-signature"))?;
        Ok((size, Some(parse_signature(signature)?)))
    }

    /// Records one `name:value` trailer line, or verifies the trailer signature.
    fn trailer_line(&mut self, line: &[u8]) -> Result<(), S3Error> {
        self.trailer_bytes += line.len();
        if self.trailer_bytes > MAX_TRAILER {
            return Err(malformed("trailers too long"));
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| malformed("invalid trailer"))?;
        let name = HeaderName::from_bytes(line[..colon].trim_ascii())
            .map_err(|_| malformed("invalid trailer name"))?;
        let value = HeaderValue::from_bytes(line[colon + 1..].trim_ascii())
            .map_err(|_| malformed("invalid trailer value"))?;

        if self.signer.as_ref().is_some_and(|s| !s.ctx.trailer) {
            return Err(malformed(
                "trailers are only allowed with a -TRAILER payload",
            ));
        }
        if name == TRAILER_SIGNATURE {
            if let Some(signer) = &mut self.signer {
                let signature = value
                    .to_str()
                    .map_err(|_| S3Error::SignatureDoesNotMatch)
                    .and_then(parse_signature)?;
                signer.verify_trailer(&signature, &self.trailers)?;
            }
            self.state = State::Trailer {
                signature_seen: true,
            };
            return Ok(());
        }
        if self.trailers.contains_key(&name) {
            return Err(malformed("duplicate trailer"));
        }
        self.trailers.insert(name, value);
        Ok(())
    }

    /// Checks what must hold once the trailers are complete.
    fn end_trailers(&self, signature_seen: bool) -> Result<(), S3Error> {
        if !signature_seen && self.signer.as_ref().is_some_and(|s| s.ctx.trailer) {
            return Err(S3Error::SignatureDoesNotMatch);
        }
        if self.decoded_length.is_some_and(|n| n != self.announced) {
            return Err(length_mismatch());
        }
        Ok(())
    }

    /// Nothing may follow the end of the aws-chunked body.
    async fn expect_end_of_input(&mut self) -> Result<(), S3Error> {
        let mut extra = !self.buf.is_empty();
        while !extra {
            match self.input.next().await {
                None => return Ok(()),
                Some(frame) => extra = !frame?.is_empty(),
            }
        }
        Err(malformed("data after the end of the body"))
    }
}

/// Decodes a hex signature; a malformed one cannot match.
fn parse_signature(hex_signature: &str) -> Result<[u8; 32], S3Error> {
    let mut signature = [0u8; 32];
    hex::decode_to_slice(hex_signature, &mut signature)
        .map_err(|_| S3Error::SignatureDoesNotMatch)?;
    Ok(signature)
}

fn malformed(what: &str) -> S3Error {
    S3Error::InvalidRequest(format!("Malformed aws-chunked body: {what}."))
}

fn length_mismatch() -> S3Error {
    S3Error::InvalidRequest(
        "IncompleteBody: the decoded body length does not match x-amz-decoded-content-length."
            .into(),
    )
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use futures::executor::block_on;
    use http::{Method, Uri};

    use super::super::{
        Authenticated, PayloadCheck, RequestParts, STREAMING_PAYLOAD, authenticate, signing_key,
    };
    use super::*;
    use crate::checksum::{self, BodyHasher};

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const DATE: &str = "20130524T000000Z";
    const SCOPE: &str = "20130524/us-east-1/s3/aws4_request";
    /// "Example: PUT Object" of the AWS sigv4-streaming documentation.
    const SEED: &str = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
    const EXAMPLE_SIGNATURES: [&str; 3] = [
        "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
        "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
        "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
    ];

    /// The context `authenticate` derives from the AWS example request.
    fn example_context() -> StreamingContext {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("host", "s3.amazonaws.com"),
            ("x-amz-date", DATE),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
            ("x-amz-content-sha256", STREAMING_PAYLOAD),
            ("content-encoding", "aws-chunked"),
            ("x-amz-decoded-content-length", "66560"),
            ("content-length", "66824"),
        ] {
            headers.insert(name, value.parse().unwrap());
        }
        let authorization = format!(
            "{ALGORITHM} Credential=AKIAIOSFODNN7EXAMPLE/{SCOPE},SignedHeaders=content-encoding;\
             content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;\
             x-amz-storage-class,Signature={SEED}"
        );
        headers.insert("authorization", authorization.parse().unwrap());
        let uri: Uri = "/examplebucket/chunkObject.txt".parse().unwrap();
        let req = RequestParts {
            method: &Method::PUT,
            uri: &uri,
            headers: &headers,
        };
        let now: DateTime<Utc> = "2013-05-24T00:00:00Z".parse().unwrap();
        let secret = |_: &str| Some(SECRET.to_owned());
        match authenticate(&req, "us-east-1", now, secret) {
            Ok(Some(Authenticated {
                payload: PayloadCheck::StreamingSigned(ctx),
                ..
            })) => ctx,
            other => panic!("unexpected {other:?}"),
        }
    }

    /// The example's key, date and scope, with the seed and trailer mode given.
    fn context(seed: &str, trailer: bool) -> StreamingContext {
        StreamingContext {
            signing_key: signing_key(SECRET, "20130524", "us-east-1", "s3"),
            seed_signature: seed.into(),
            amz_date: DATE.into(),
            scope: SCOPE.into(),
            trailer,
        }
    }

    /// The AWS example body: 64 KiB of 'a', 1 KiB of 'a', the final chunk.
    fn example_body() -> Vec<u8> {
        let mut body = Vec::new();
        for (size, signature) in [0x10000, 0x400, 0].into_iter().zip(EXAMPLE_SIGNATURES) {
            body.extend_from_slice(format!("{size:x};chunk-signature={signature}\r\n").as_bytes());
            body.extend(std::iter::repeat_n(b'a', size));
            body.extend_from_slice(b"\r\n");
        }
        body
    }

    /// Test-side encoder (checked against the AWS example): signed when `ctx` is given.
    fn encode(
        ctx: Option<&StreamingContext>,
        chunks: &[&[u8]],
        trailers: &[(&str, &str)],
    ) -> Vec<u8> {
        let mut previous = ctx.map(|c| c.seed_signature.clone());
        let mut sign = |kind: &str, tail: String| {
            let (ctx, prev) = (ctx?, previous.as_mut()?);
            let sts = format!(
                "{ALGORITHM}-{kind}\n{}\n{}\n{prev}\n{tail}",
                ctx.amz_date, ctx.scope
            );
            *prev = hex::encode(hmac_sha256(&ctx.signing_key, sts.as_bytes()));
            Some(prev.clone())
        };
        let mut body = Vec::new();
        for data in chunks.iter().chain([&&b""[..]]) {
            body.extend_from_slice(format!("{:x}", data.len()).as_bytes());
            if let Some(sig) = sign("PAYLOAD", format!("{EMPTY_SHA256}\n{}", sha256_hex(data))) {
                body.extend_from_slice(format!(";chunk-signature={sig}").as_bytes());
            }
            body.extend_from_slice(b"\r\n");
            body.extend_from_slice(data);
            if !data.is_empty() {
                body.extend_from_slice(b"\r\n");
            }
        }
        let mut canonical = String::new();
        for (name, value) in trailers {
            body.extend_from_slice(format!("{name}:{value}\r\n").as_bytes());
            canonical.push_str(&format!("{name}:{value}\n"));
        }
        if ctx.is_some_and(|c| c.trailer) {
            let sig = sign("TRAILER", sha256_hex(canonical.as_bytes())).unwrap();
            body.extend_from_slice(format!("{TRAILER_SIGNATURE}:{sig}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body
    }

    /// Deterministic xorshift, for frame splits and mutations.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    /// `body` as a stream of frames of the sizes `split` picks.
    fn frames(body: &[u8], mut split: impl FnMut() -> usize) -> BodyStream {
        let mut frames = Vec::new();
        let mut rest = Bytes::copy_from_slice(body);
        while !rest.is_empty() {
            let n = split().clamp(1, rest.len());
            frames.push(Ok(rest.split_to(n)));
        }
        Box::pin(futures::stream::iter(frames))
    }

    /// Everything the decoded stream yields: the data items, then the error if any.
    struct Decoded {
        items: Vec<Bytes>,
        error: Option<S3Error>,
        trailers: Option<HeaderMap>,
    }

    impl Decoded {
        fn data(&self) -> Vec<u8> {
            self.items.concat()
        }

        fn code(&self) -> &'static str {
            self.error.as_ref().map_or("ok", S3Error::code)
        }
    }

    fn run(
        input: BodyStream,
        ctx: Option<StreamingContext>,
        decoded_length: Option<u64>,
    ) -> Decoded {
        let (mut stream, slot) = decode(input, ctx, decoded_length);
        let mut items = Vec::new();
        let mut error = None;
        block_on(async {
            while let Some(item) = stream.next().await {
                match item {
                    Ok(data) => items.push(data),
                    Err(e) => {
                        assert!(error.is_none(), "an item after an error");
                        error = Some(e);
                    }
                }
            }
        });
        Decoded {
            items,
            error,
            trailers: slot.get(),
        }
    }

    fn run_whole(
        body: &[u8],
        ctx: Option<StreamingContext>,
        decoded_length: Option<u64>,
    ) -> Decoded {
        run(frames(body, || usize::MAX), ctx, decoded_length)
    }

    #[test]
    fn aws_example_put_object() {
        let ctx = example_context();
        assert_eq!(ctx.seed_signature, SEED);
        let body = example_body();
        assert_eq!(body.len(), 66824, "the example's Content-Length");
        assert_eq!(
            encode(
                Some(&context(SEED, false)),
                &[&[b'a'; 0x10000], &[b'a'; 0x400]],
                &[]
            ),
            body
        );

        let decoded = run_whole(&body, Some(ctx.clone()), Some(66560));
        assert_eq!(decoded.code(), "ok");
        assert_eq!(decoded.items.len(), 2);
        assert_eq!(decoded.data(), vec![b'a'; 66560]);
        assert_eq!(decoded.trailers, Some(HeaderMap::new()));

        // The same body in 1-byte frames and in random frames.
        for decoded in [
            run(frames(&body, || 1), Some(ctx.clone()), Some(66560)),
            run(
                frames(&body, {
                    let mut rng = Rng(7);
                    move || rng.below(5000)
                }),
                Some(ctx),
                None,
            ),
        ] {
            assert_eq!(decoded.code(), "ok");
            assert_eq!(decoded.data(), vec![b'a'; 66560]);
        }
    }

    #[test]
    fn tampered_chunk_is_not_yielded() {
        let ctx = example_context();
        let clean = example_body();
        // A byte of the second chunk's data.
        let mut body = clean.clone();
        let second_data = clean.len() - 100;
        body[second_data] = b'b';
        let decoded = run(frames(&body, || 1), Some(ctx.clone()), None);
        assert_eq!(decoded.code(), "SignatureDoesNotMatch");
        assert_eq!(decoded.data(), vec![b'a'; 0x10000], "only the first chunk");
        assert_eq!(decoded.trailers, None);

        // The first chunk's signature: nothing at all is yielded.
        let mut body = clean.clone();
        body[30] = if body[30] == b'0' { b'1' } else { b'0' };
        let decoded = run_whole(&body, Some(ctx.clone()), None);
        assert_eq!(decoded.code(), "SignatureDoesNotMatch");
        assert!(decoded.items.is_empty());

        // Another seed (another request) breaks the chain.
        let other = context(&EXAMPLE_SIGNATURES[0].replace('a', "b"), false);
        assert_eq!(
            run_whole(&clean, Some(other), None).code(),
            "SignatureDoesNotMatch"
        );

        // Chunks replayed in another order.
        let body = encode(Some(&ctx), &[b"first", b"second"], &[]);
        let (first, second) = (84 + 5 + 2, 84 + 5 + 2 + 84 + 6 + 2);
        let swapped = [&body[first..second], &body[..first], &body[second..]].concat();
        assert_eq!(
            run_whole(&swapped, Some(ctx), None).code(),
            "SignatureDoesNotMatch"
        );
    }

    #[test]
    fn unsigned_trailer_as_botocore_sends_it() {
        let body = b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:NhCmhg==\r\n\r\n";
        let mut headers = HeaderMap::new();
        headers.insert("x-amz-trailer", "x-amz-checksum-crc32".parse().unwrap());
        let requested = checksum::requested_checksum(&headers).unwrap().unwrap();

        for split in [usize::MAX, 1, 2, 7] {
            let decoded = run(frames(body, || split), None, Some(5));
            assert_eq!(decoded.code(), "ok");
            assert_eq!(decoded.data(), b"hello");
            let trailers = decoded.trailers.as_ref().unwrap();
            assert_eq!(trailers.len(), 1);
            let value = trailers[requested.algorithm.header_name()]
                .to_str()
                .unwrap();

            let mut hasher = BodyHasher::new(false, Some(requested.algorithm));
            hasher.update(&decoded.data());
            let digests = hasher.finish();
            assert!(checksum::verify(&digests, None, Some(&requested), Some(value)).is_ok());
            assert_eq!(
                checksum::verify(&digests, None, Some(&requested), Some("DUoRhQ=="))
                    .unwrap_err()
                    .code(),
                "BadDigest"
            );
        }
        // Unsigned data is passed on as it arrives.
        assert_eq!(run(frames(body, || 1), None, None).items.len(), 5);
    }

    #[test]
    fn signed_trailer() {
        // Signatures computed independently with Python's hmac/hashlib.
        let ctx = context(SEED, true);
        let body = [
            &b"b;chunk-signature=658a49ee7b49af44c11311d3461346a5688fb3ce5daa61dd95377587f0149255\r\n\
               hello world\r\n\
               0;chunk-signature=1172018d76cd25eb7956fc92d1935d976024a1d96841533ea7b72efe5e8d7463\r\n\
               x-amz-checksum-crc32c:yZRlqg==\r\n"[..],
            b"x-amz-trailer-signature:b6b860481e7a17a1b23ae6aa3b24152089b1aec92c351bcfc64524c243e1820c\r\n\r\n",
        ]
        .concat();
        assert_eq!(
            encode(
                Some(&ctx),
                &[b"hello world"],
                &[("x-amz-checksum-crc32c", "yZRlqg==")]
            ),
            body
        );
        for split in [usize::MAX, 1, 3] {
            let decoded = run(frames(&body, || split), Some(ctx.clone()), Some(11));
            assert_eq!(decoded.code(), "ok");
            assert_eq!(decoded.data(), b"hello world");
            let trailers = decoded.trailers.unwrap();
            assert_eq!(trailers.len(), 1, "the signature is not a trailer");
            assert_eq!(trailers["x-amz-checksum-crc32c"], "yZRlqg==");
        }

        // A tampered trailer value, a missing trailer signature.
        let tampered = String::from_utf8(body.clone())
            .unwrap()
            .replace("yZRlqg==", "yZRlqq==");
        assert_eq!(
            run_whole(tampered.as_bytes(), Some(ctx.clone()), None).code(),
            "SignatureDoesNotMatch"
        );
        let unsigned = [&body[..body.len() - 92], b"\r\n"].concat();
        assert!(unsigned.ends_with(b"yZRlqg==\r\n\r\n"));
        let decoded = run_whole(&unsigned, Some(ctx.clone()), None);
        assert_eq!(decoded.code(), "SignatureDoesNotMatch");
        assert_eq!(decoded.trailers, None);

        // Trailers in a body signed without -TRAILER.
        let no_trailer = context(SEED, false);
        let body = encode(
            Some(&no_trailer),
            &[b"x"],
            &[("x-amz-checksum-crc32", "AAAAAA==")],
        );
        assert_eq!(
            run_whole(&body, Some(no_trailer), None).code(),
            "InvalidRequest"
        );
    }

    #[test]
    fn decoded_length_must_match() {
        let body = encode(None, &[b"hello", b" world"], &[]);
        assert_eq!(run_whole(&body, None, Some(11)).code(), "ok");
        // Too short: detected at the end. Too long: before the excess is yielded.
        assert_eq!(run_whole(&body, None, Some(12)).code(), "InvalidRequest");
        let decoded = run_whole(&body, None, Some(10));
        assert_eq!(decoded.code(), "InvalidRequest");
        assert_eq!(decoded.data(), b"hello");
        assert!(
            decoded
                .error
                .unwrap()
                .message()
                .contains("x-amz-decoded-content-length")
        );
    }

    #[test]
    fn rejects_malformed_bodies() {
        let ctx = context(SEED, false);
        let signed = example_body();
        let cases: &[(&[u8], Option<&StreamingContext>, &str)] = &[
            (b"", None, "InvalidRequest"),
            (b"5\r\nhello\r\n", None, "InvalidRequest"),
            (b"5\r\nhello\r\n0\r\n", None, "InvalidRequest"),
            (
                b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:NhCmhg==\r\n",
                None,
                "InvalidRequest",
            ),
            (b"5\r\nhelloXX0\r\n\r\n", None, "InvalidRequest"),
            (b"5\r\nhel", None, "InvalidRequest"),
            (b"g\r\n\r\n", None, "InvalidRequest"),
            (b"+5\r\nhello\r\n0\r\n\r\n", None, "InvalidRequest"),
            (b"\r\n", None, "InvalidRequest"),
            (b"10000000000000000\r\n", None, "InvalidRequest"),
            (b"1000001\r\n", None, "InvalidArgument"),
            (b"ffffffffffffffff\r\n", None, "InvalidArgument"),
            (b"0\r\nno colon\r\n\r\n", None, "InvalidRequest"),
            (b"0\r\nbad name:x\r\n\r\n", None, "InvalidRequest"),
            (b"0\r\na:1\r\na:2\r\n\r\n", None, "InvalidRequest"),
            (b"0\r\n\r\nextra", None, "InvalidRequest"),
            (b"5\r\nhello\r\n0\r\n\r\n", Some(&ctx), "InvalidRequest"),
            (
                b"0;chunk-signature=zz\r\n\r\n",
                Some(&ctx),
                "SignatureDoesNotMatch",
            ),
            (&signed[..signed.len() - 1], Some(&ctx), "InvalidRequest"),
            (
                &[&signed[..], b"\r\n"].concat(),
                Some(&ctx),
                "InvalidRequest",
            ),
        ];
        for (body, ctx, code) in cases {
            let decoded = run_whole(body, ctx.cloned(), None);
            assert_eq!(
                decoded.code(),
                *code,
                "{}",
                String::from_utf8_lossy(&body[..body.len().min(40)])
            );
            assert_eq!(decoded.trailers, None);
        }
        // Lines are bounded, even when no CRLF ever comes.
        let endless = run(frames(&[b'1'; 100_000], || 1000), None, None);
        assert_eq!(endless.code(), "InvalidRequest");
        // An error from the input is passed on.
        let failing: BodyStream = Box::pin(futures::stream::iter([
            Ok(Bytes::from_static(b"5\r\nhe")),
            Err(S3Error::InternalError("reset".into())),
        ]));
        assert_eq!(run(failing, None, None).code(), "InternalError");
    }

    #[test]
    fn empty_frames_and_trailing_empty_frames() {
        let body = encode(None, &[b"abc"], &[]);
        let mut frames_with_gaps = Vec::new();
        for byte in &body {
            frames_with_gaps.push(Ok(Bytes::new()));
            frames_with_gaps.push(Ok(Bytes::copy_from_slice(&[*byte])));
        }
        frames_with_gaps.push(Ok(Bytes::new()));
        let decoded = run(
            Box::pin(futures::stream::iter(frames_with_gaps)),
            None,
            Some(3),
        );
        assert_eq!(decoded.code(), "ok");
        assert_eq!(decoded.data(), b"abc");
        assert!(decoded.items.iter().all(|item| !item.is_empty()));
    }

    /// Random mutations and frame splits: never a panic, never an item after an error, and
    /// signed bodies never yield data that was not sent.
    #[test]
    fn fuzz_mutations_and_splits() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        // (clean body, its data, context)
        let sources = [
            (
                None,
                vec![&b"hello"[..], b" world"],
                vec![("x-amz-checksum-crc32", "DUoRhQ==")],
            ),
            (
                Some(context(SEED, true)),
                vec![&b"0123456789"[..], b"abcdef"],
                vec![("x-amz-checksum-crc32c", "AAAAAA==")],
            ),
            (Some(context(SEED, false)), vec![&b"xyz"[..]], vec![]),
        ]
        .map(|(ctx, chunks, trailers)| {
            (
                encode(ctx.as_ref(), &chunks, &trailers),
                chunks.concat(),
                ctx,
            )
        });
        let tokens: [&[u8]; 8] = [
            b"\r\n",
            b";",
            b":",
            b"0",
            b"f",
            b"chunk-signature=",
            b"\r",
            b"ffffff",
        ];
        for round in 0..3000 {
            let (clean, data, ctx) = &sources[round % sources.len()];
            let mut body = clean.clone();
            for _ in 0..=rng.below(3) {
                let at = rng.below(body.len() + 1);
                match rng.below(4) {
                    0 if at < body.len() => body[at] = rng.below(256) as u8,
                    1 if at < body.len() => {
                        body.remove(at);
                    }
                    2 => {
                        let tail = body.split_off(at);
                        body.extend_from_slice(tokens[rng.below(tokens.len())]);
                        body.extend(tail);
                    }
                    _ => body.truncate(at),
                }
            }
            let max_frame = 1 + rng.below(20);
            let split_seed = rng.below(1000) as u64 + 1;
            let mut split_rng = Rng(split_seed);
            let decoded_length = (rng.below(2) == 0).then_some(data.len() as u64);
            let input = frames(&body, || 1 + split_rng.below(max_frame));
            let decoded = run(input, ctx.clone(), decoded_length);
            if body == *clean {
                assert_eq!(decoded.code(), "ok");
                assert_eq!(decoded.data(), *data);
            }
            if ctx.is_some() {
                assert!(
                    data.starts_with(&decoded.data()),
                    "round {round}: unsent data yielded"
                );
            }
            if decoded.error.is_some() {
                assert_eq!(decoded.trailers, None);
            }
        }
    }
}
