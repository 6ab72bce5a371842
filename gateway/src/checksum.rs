//! Request body digests, computed while the body streams through: the MD5 behind the ETag,
//! the SHA-256 of signed payloads and the S3 additional checksum (`x-amz-checksum-*`).
//!
//! Checksums are encoded as S3 returns them: base64 of the digest, for CRCs of the CRC's
//! big-endian bytes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::error::S3Error;

/// The additional checksum algorithms of S3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChecksumAlgorithm {
    Crc32,
    Crc32c,
    Sha1,
    Sha256,
    Crc64Nvme,
}

impl ChecksumAlgorithm {
    pub const ALL: [ChecksumAlgorithm; 5] = [
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32c,
        ChecksumAlgorithm::Sha1,
        ChecksumAlgorithm::Sha256,
        ChecksumAlgorithm::Crc64Nvme,
    ];

    /// The name in `x-amz-sdk-checksum-algorithm` and `ChecksumAlgorithm` XML elements.
    pub fn name(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Crc32 => "CRC32",
            ChecksumAlgorithm::Crc32c => "CRC32C",
            ChecksumAlgorithm::Sha1 => "SHA1",
            ChecksumAlgorithm::Sha256 => "SHA256",
            ChecksumAlgorithm::Crc64Nvme => "CRC64NVME",
        }
    }

    /// The header (or trailer) carrying the value: `x-amz-checksum-crc32`, ...
    pub fn header_name(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Crc32 => "x-amz-checksum-crc32",
            ChecksumAlgorithm::Crc32c => "x-amz-checksum-crc32c",
            ChecksumAlgorithm::Sha1 => "x-amz-checksum-sha1",
            ChecksumAlgorithm::Sha256 => "x-amz-checksum-sha256",
            ChecksumAlgorithm::Crc64Nvme => "x-amz-checksum-crc64nvme",
        }
    }

    /// Parses [`name`](Self::name), case-insensitively.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|alg| alg.name().eq_ignore_ascii_case(name))
    }

    /// Parses [`header_name`](Self::header_name), case-insensitively.
    pub fn from_header_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|alg| alg.header_name().eq_ignore_ascii_case(name))
    }

    /// Length of the raw digest in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            ChecksumAlgorithm::Crc32 | ChecksumAlgorithm::Crc32c => 4,
            ChecksumAlgorithm::Crc64Nvme => 8,
            ChecksumAlgorithm::Sha1 => 20,
            ChecksumAlgorithm::Sha256 => 32,
        }
    }

    /// Decodes a base64 value, checking its length.
    fn decode(self, value: &str) -> Option<Vec<u8>> {
        BASE64
            .decode(value.trim())
            .ok()
            .filter(|raw| raw.len() == self.digest_len())
    }

    /// `InvalidRequest` for a malformed value.
    fn invalid_value(self) -> S3Error {
        S3Error::InvalidRequest(format!(
            "Value for {} header is invalid.",
            self.header_name()
        ))
    }
}

/// The checksum a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedChecksum {
    pub algorithm: ChecksumAlgorithm,
    /// The value of the `x-amz-checksum-*` header (base64, validated); `None` when the value
    /// comes in the trailer or the client only named the algorithm.
    pub expected: Option<String>,
    /// Declared by `x-amz-trailer`: the value must arrive in the aws-chunked trailer.
    pub trailer: bool,
}

/// Which checksum a request asks for: an `x-amz-checksum-<alg>` header, else `x-amz-trailer`
/// (value in the trailer), else `x-amz-sdk-checksum-algorithm` (compute only).
pub fn requested_checksum(headers: &http::HeaderMap) -> Result<Option<RequestedChecksum>, S3Error> {
    let sdk_algorithm = match headers.get("x-amz-sdk-checksum-algorithm") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(ChecksumAlgorithm::from_name)
                .ok_or_else(|| {
                    S3Error::InvalidRequest(
                        "Value for x-amz-sdk-checksum-algorithm header is invalid.".into(),
                    )
                })?,
        ),
    };

    let mut given = ChecksumAlgorithm::ALL.into_iter().flat_map(|alg| {
        headers
            .get_all(alg.header_name())
            .iter()
            .map(move |v| (alg, v))
    });
    let requested = if let Some((algorithm, value)) = given.next() {
        if given.next().is_some() {
            return Err(S3Error::InvalidRequest(
                "Expecting a single x-amz-checksum- header. Multiple checksum Types are not \
                 allowed."
                    .into(),
            ));
        }
        let value = value
            .to_str()
            .ok()
            .filter(|v| algorithm.decode(v).is_some())
            .ok_or_else(|| algorithm.invalid_value())?;
        RequestedChecksum {
            algorithm,
            expected: Some(value.trim().to_owned()),
            trailer: false,
        }
    } else if let Some(value) = headers.get("x-amz-trailer") {
        let algorithm = value
            .to_str()
            .ok()
            .and_then(|v| ChecksumAlgorithm::from_header_name(v.trim()))
            .ok_or_else(|| {
                S3Error::InvalidRequest(
                    "The value specified in the x-amz-trailer header is not supported".into(),
                )
            })?;
        RequestedChecksum {
            algorithm,
            expected: None,
            trailer: true,
        }
    } else if let Some(algorithm) = sdk_algorithm {
        RequestedChecksum {
            algorithm,
            expected: None,
            trailer: false,
        }
    } else {
        return Ok(None);
    };

    if sdk_algorithm.is_some_and(|alg| alg != requested.algorithm) {
        return Err(S3Error::InvalidRequest(
            "Value for x-amz-sdk-checksum-algorithm header is invalid.".into(),
        ));
    }
    Ok(Some(requested))
}

/// Computes the digests of a body fed to it piece by piece.
pub struct BodyHasher {
    md5: Md5,
    sha256: Option<Sha256>,
    checksum: Option<(ChecksumAlgorithm, Running)>,
}

/// A checksum being computed.
enum Running {
    Crc(crc_fast::Digest),
    Sha1(Sha1),
    Sha256(Sha256),
}

impl BodyHasher {
    /// Always computes MD5; SHA-256 when `sha256` (signed payloads); and `checksum` if any.
    pub fn new(sha256: bool, checksum: Option<ChecksumAlgorithm>) -> Self {
        let running = |alg| match alg {
            ChecksumAlgorithm::Crc32 => {
                Running::Crc(crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32IsoHdlc))
            }
            ChecksumAlgorithm::Crc32c => {
                Running::Crc(crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi))
            }
            ChecksumAlgorithm::Crc64Nvme => {
                Running::Crc(crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme))
            }
            ChecksumAlgorithm::Sha1 => Running::Sha1(Sha1::new()),
            ChecksumAlgorithm::Sha256 => Running::Sha256(Sha256::new()),
        };
        BodyHasher {
            md5: Md5::new(),
            sha256: sha256.then(Sha256::new),
            checksum: checksum.map(|alg| (alg, running(alg))),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        self.md5.update(data);
        if let Some(sha256) = &mut self.sha256 {
            sha256.update(data);
        }
        match &mut self.checksum {
            None => {}
            Some((_, Running::Crc(crc))) => crc.update(data),
            Some((_, Running::Sha1(sha1))) => sha1.update(data),
            Some((_, Running::Sha256(sha256))) => sha256.update(data),
        }
    }

    pub fn finish(self) -> BodyDigests {
        let checksum = self.checksum.map(|(alg, running)| {
            let raw = match running {
                Running::Crc(crc) => {
                    let be = crc.finalize().to_be_bytes();
                    be[be.len() - alg.digest_len()..].to_vec()
                }
                Running::Sha1(sha1) => sha1.finalize().to_vec(),
                Running::Sha256(sha256) => sha256.finalize().to_vec(),
            };
            (alg, BASE64.encode(raw))
        });
        BodyDigests {
            md5: self.md5.finalize().into(),
            sha256: self.sha256.map(|sha256| sha256.finalize().into()),
            checksum,
        }
    }
}

/// The digests of a whole body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyDigests {
    pub md5: [u8; 16],
    pub sha256: Option<[u8; 32]>,
    /// The requested checksum, base64 as S3 returns it.
    pub checksum: Option<(ChecksumAlgorithm, String)>,
}

/// Checks the body against `Content-MD5` (base64) and the requested checksum, whose value comes
/// from its header or, for `x-amz-trailer`, from `trailer_value`.
pub fn verify(
    digests: &BodyDigests,
    content_md5: Option<&str>,
    requested: Option<&RequestedChecksum>,
    trailer_value: Option<&str>,
) -> Result<(), S3Error> {
    if let Some(value) = content_md5 {
        let given = BASE64
            .decode(value.trim())
            .map_err(|_| S3Error::InvalidDigest)?;
        if given.len() != digests.md5.len() {
            return Err(S3Error::InvalidDigest);
        }
        if given != digests.md5 {
            return Err(S3Error::BadDigest);
        }
    }

    let Some(requested) = requested else {
        return Ok(());
    };
    let algorithm = requested.algorithm;
    let expected = match (&requested.expected, trailer_value) {
        (Some(value), _) => value.as_str(),
        (None, Some(value)) if requested.trailer => value,
        (None, _) if requested.trailer => {
            return Err(S3Error::InvalidRequest(format!(
                "The request declared the trailer {} but did not send it.",
                algorithm.header_name()
            )));
        }
        (None, _) => return Ok(()),
    };
    let expected = algorithm
        .decode(expected)
        .ok_or_else(|| algorithm.invalid_value())?;
    match &digests.checksum {
        Some((alg, actual)) if *alg == algorithm => {
            if BASE64.encode(expected) == *actual {
                Ok(())
            } else {
                Err(S3Error::BadDigest)
            }
        }
        _ => Err(S3Error::InternalError(format!(
            "{} checksum was not computed",
            algorithm.name()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderName, HeaderValue};

    use super::*;

    /// Checksums of "hello world", computed with Python (zlib, hashlib) and botocore 1.43 +
    /// awscrt (CRC32C, CRC64NVME).
    const HELLO_WORLD: [(ChecksumAlgorithm, &str); 5] = [
        (ChecksumAlgorithm::Crc32, "DUoRhQ=="),
        (ChecksumAlgorithm::Crc32c, "yZRlqg=="),
        (ChecksumAlgorithm::Crc64Nvme, "jSnVw/bqjr4="),
        (ChecksumAlgorithm::Sha1, "Kq5sNclPz7QV2+lfQIuc6R7oRu0="),
        (
            ChecksumAlgorithm::Sha256,
            "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=",
        ),
    ];

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn digests(data: &[u8], sha256: bool, checksum: Option<ChecksumAlgorithm>) -> BodyDigests {
        let mut hasher = BodyHasher::new(sha256, checksum);
        // Uneven pieces: the result must not depend on how the body is split.
        for piece in data.chunks(3) {
            hasher.update(piece);
        }
        hasher.finish()
    }

    fn code(result: Result<impl std::fmt::Debug, S3Error>) -> &'static str {
        result.unwrap_err().code()
    }

    #[test]
    fn names_round_trip() {
        for alg in ChecksumAlgorithm::ALL {
            assert_eq!(ChecksumAlgorithm::from_name(alg.name()), Some(alg));
            assert_eq!(
                ChecksumAlgorithm::from_name(&alg.name().to_lowercase()),
                Some(alg)
            );
            assert_eq!(
                ChecksumAlgorithm::from_header_name(alg.header_name()),
                Some(alg)
            );
        }
        assert_eq!(ChecksumAlgorithm::from_name("MD5"), None);
        assert_eq!(ChecksumAlgorithm::Crc64Nvme.name(), "CRC64NVME");
        assert_eq!(
            ChecksumAlgorithm::Crc64Nvme.header_name(),
            "x-amz-checksum-crc64nvme"
        );
    }

    #[test]
    fn known_values() {
        for (alg, expected) in HELLO_WORLD {
            let d = digests(b"hello world", false, Some(alg));
            assert_eq!(d.checksum, Some((alg, expected.to_owned())), "{alg:?}");
        }
        // Empty body and the CRC check values ("123456789").
        assert_eq!(
            digests(b"", false, Some(ChecksumAlgorithm::Crc64Nvme)).checksum,
            Some((ChecksumAlgorithm::Crc64Nvme, "AAAAAAAAAAA=".to_owned()))
        );
        assert_eq!(
            digests(b"123456789", false, Some(ChecksumAlgorithm::Crc32c)).checksum,
            Some((ChecksumAlgorithm::Crc32c, "4waSgw==".to_owned()))
        );
        assert_eq!(
            digests(b"123456789", false, Some(ChecksumAlgorithm::Crc64Nvme)).checksum,
            Some((ChecksumAlgorithm::Crc64Nvme, "rosUhgp5mIg=".to_owned()))
        );
    }

    #[test]
    fn md5_and_sha256() {
        let d = digests(b"hello world", true, None);
        assert_eq!(hex::encode(d.md5), "5eb63bbbe01eeed093cb22bb8f5acdc3");
        assert_eq!(
            hex::encode(d.sha256.unwrap()),
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
        assert_eq!(d.checksum, None);
        assert_eq!(digests(b"", false, None).sha256, None);
    }

    #[test]
    fn requested_from_header() {
        let req = requested_checksum(&headers(&[("x-amz-checksum-crc32", "DUoRhQ==")]));
        assert_eq!(
            req.unwrap(),
            Some(RequestedChecksum {
                algorithm: ChecksumAlgorithm::Crc32,
                expected: Some("DUoRhQ==".into()),
                trailer: false,
            })
        );
        // Consistent x-amz-sdk-checksum-algorithm (as botocore sends it) is fine.
        let req = requested_checksum(&headers(&[
            ("x-amz-sdk-checksum-algorithm", "crc64nvme"),
            ("x-amz-checksum-crc64nvme", "jSnVw/bqjr4="),
        ]));
        assert_eq!(
            req.unwrap().unwrap().algorithm,
            ChecksumAlgorithm::Crc64Nvme
        );
        // Other x-amz-checksum-* headers (x-amz-checksum-type) are not checksums.
        assert_eq!(
            requested_checksum(&headers(&[("x-amz-checksum-type", "FULL_OBJECT")])).unwrap(),
            None
        );
        assert_eq!(requested_checksum(&HeaderMap::new()).unwrap(), None);
    }

    #[test]
    fn requested_from_trailer_or_sdk_algorithm() {
        let req = requested_checksum(&headers(&[
            ("x-amz-sdk-checksum-algorithm", "CRC32"),
            ("x-amz-trailer", "x-amz-checksum-crc32"),
        ]));
        assert_eq!(
            req.unwrap(),
            Some(RequestedChecksum {
                algorithm: ChecksumAlgorithm::Crc32,
                expected: None,
                trailer: true,
            })
        );
        let req = requested_checksum(&headers(&[("x-amz-sdk-checksum-algorithm", "SHA256")]));
        assert_eq!(
            req.unwrap(),
            Some(RequestedChecksum {
                algorithm: ChecksumAlgorithm::Sha256,
                expected: None,
                trailer: false,
            })
        );
    }

    #[test]
    fn requested_rejects_bad_headers() {
        let invalid = |pairs: &[(&str, &str)]| {
            let err = requested_checksum(&headers(pairs)).unwrap_err();
            assert_eq!(err.code(), "InvalidRequest", "{pairs:?}");
            err.message()
        };
        assert_eq!(
            invalid(&[
                ("x-amz-checksum-crc32", "DUoRhQ=="),
                ("x-amz-checksum-sha1", "Kq5sNclPz7QV2+lfQIuc6R7oRu0="),
            ]),
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."
        );
        invalid(&[
            ("x-amz-checksum-crc32", "DUoRhQ=="),
            ("x-amz-checksum-crc32", "DUoRhQ=="),
        ]);
        assert_eq!(
            invalid(&[("x-amz-checksum-crc32", "not base64!")]),
            "Value for x-amz-checksum-crc32 header is invalid."
        );
        // Valid base64, wrong length (a CRC32C is 4 bytes).
        assert_eq!(
            invalid(&[("x-amz-checksum-crc32c", "jSnVw/bqjr4=")]),
            "Value for x-amz-checksum-crc32c header is invalid."
        );
        invalid(&[("x-amz-sdk-checksum-algorithm", "MD5")]);
        invalid(&[("x-amz-trailer", "x-amz-checksum-md5")]);
        invalid(&[
            ("x-amz-sdk-checksum-algorithm", "SHA1"),
            ("x-amz-checksum-crc32", "DUoRhQ=="),
        ]);
        invalid(&[
            ("x-amz-sdk-checksum-algorithm", "SHA1"),
            ("x-amz-trailer", "x-amz-checksum-crc32"),
        ]);
    }

    #[test]
    fn verify_content_md5() {
        let d = digests(b"hello world", false, None);
        assert!(verify(&d, Some("XrY7u+Ae7tCTyyK7j1rNww=="), None, None).is_ok());
        assert_eq!(
            code(verify(&d, Some("1B2M2Y8AsgTpgAmY7PhCfg=="), None, None)),
            "BadDigest"
        );
        for malformed in ["not base64!", "AAAA", ""] {
            assert_eq!(
                code(verify(&d, Some(malformed), None, None)),
                "InvalidDigest"
            );
        }
    }

    #[test]
    fn verify_checksum_header_and_trailer() {
        for (alg, value) in HELLO_WORLD {
            let d = digests(b"hello world", false, Some(alg));
            let header = RequestedChecksum {
                algorithm: alg,
                expected: Some(value.into()),
                trailer: false,
            };
            assert!(verify(&d, None, Some(&header), None).is_ok());
            let trailer = RequestedChecksum {
                expected: None,
                trailer: true,
                ..header.clone()
            };
            assert!(verify(&d, None, Some(&trailer), Some(value)).is_ok());

            let other = digests(b"hello world!", false, Some(alg));
            assert_eq!(code(verify(&other, None, Some(&header), None)), "BadDigest");
            assert_eq!(
                code(verify(&other, None, Some(&trailer), Some(value))),
                "BadDigest"
            );
        }
    }

    #[test]
    fn verify_edge_cases() {
        let d = digests(b"hello world", false, Some(ChecksumAlgorithm::Crc32));
        let trailer = RequestedChecksum {
            algorithm: ChecksumAlgorithm::Crc32,
            expected: None,
            trailer: true,
        };
        // Declared in x-amz-trailer but never sent.
        assert_eq!(
            code(verify(&d, None, Some(&trailer), None)),
            "InvalidRequest"
        );
        // A malformed trailer value.
        let err = verify(&d, None, Some(&trailer), Some("DUoR")).unwrap_err();
        assert_eq!(
            err.message(),
            "Value for x-amz-checksum-crc32 header is invalid."
        );
        // Algorithm only (x-amz-sdk-checksum-algorithm): nothing to compare.
        let compute_only = RequestedChecksum {
            trailer: false,
            ..trailer
        };
        assert!(verify(&d, None, Some(&compute_only), None).is_ok());
        // The hasher was built for another algorithm: a bug, not the client's fault.
        let sha1 = RequestedChecksum {
            algorithm: ChecksumAlgorithm::Sha1,
            expected: Some("Kq5sNclPz7QV2+lfQIuc6R7oRu0=".into()),
            trailer: false,
        };
        assert_eq!(code(verify(&d, None, Some(&sha1), None)), "InternalError");
    }
}
