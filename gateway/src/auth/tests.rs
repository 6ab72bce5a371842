//! Tests pinned to published vectors: the AWS S3 SigV4 examples (sig-v4-header-based-auth,
//! sigv4-query-string-auth, sigv4-streaming), the AWS signing-key example, and requests signed
//! by botocore 1.43 (keys with spaces, unicode and reserved characters; `+` in queries).

use chrono::{DateTime, Utc};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};

use super::*;

const AKID: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const EXAMPLE_HOST: &str = "examplebucket.s3.amazonaws.com";
const EXAMPLE_DATE: &str = "20130524T000000Z";
const REGION: &str = "us-east-1";

/// An owned request, to borrow as [`RequestParts`].
#[derive(Clone)]
struct TestRequest {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

impl TestRequest {
    fn new(method: &str, uri: &str, headers: &[(&str, &str)]) -> Self {
        let mut req = TestRequest {
            method: method.parse().unwrap(),
            uri: uri.parse().unwrap(),
            headers: HeaderMap::new(),
        };
        for (name, value) in headers {
            req.append(name, value);
        }
        req
    }

    fn append(&mut self, name: &str, value: &str) {
        self.headers.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }

    fn set(&mut self, name: &str, value: &str) {
        self.headers.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }

    fn parts(&self) -> RequestParts<'_> {
        RequestParts {
            method: &self.method,
            uri: &self.uri,
            headers: &self.headers,
        }
    }

    fn auth_at(&self, region: &str, now: &str) -> Outcome {
        authenticate(&self.parts(), region, time(now), secret_for).map_err(Failure)
    }

    fn auth(&self) -> Outcome {
        self.auth_at(REGION, EXAMPLE_DATE)
    }

    /// Signs with the `Authorization` header using this module's primitives (which the
    /// published vectors pin); for tests of what happens around a valid signature.
    fn sign_header(mut self, region: &str, signed_headers: &[&str]) -> Self {
        let amz_date = self.headers["x-amz-date"].to_str().unwrap().to_owned();
        let payload = self.headers["x-amz-content-sha256"]
            .to_str()
            .unwrap()
            .to_owned();
        let scope = format!("{}/{region}/s3/aws4_request", &amz_date[..8]);
        let signature = self.signature(&amz_date, &scope, signed_headers, &payload, false);
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential={AKID}/{scope}, SignedHeaders={}, Signature={signature}",
            signed_headers.join(";")
        );
        self.set("authorization", &authorization);
        self
    }

    /// Presigns: adds the `X-Amz-*` parameters to the query, then the signature.
    fn presign(mut self, region: &str, amz_date: &str, expires: &str) -> Self {
        let scope = format!("{}/{region}/s3/aws4_request", &amz_date[..8]);
        let auth_params = format!(
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={AKID}%2F{}\
             &X-Amz-Date={amz_date}&X-Amz-Expires={expires}&X-Amz-SignedHeaders=host",
            scope.replace('/', "%2F")
        );
        let query = match self.uri.query() {
            Some(q) => format!("{q}&{auth_params}"),
            None => auth_params,
        };
        self.uri = format!("{}?{query}", self.uri.path()).parse().unwrap();
        let signature = self.signature(amz_date, &scope, &["host"], UNSIGNED_PAYLOAD, true);
        self.uri = format!("{}?{query}&X-Amz-Signature={signature}", self.uri.path())
            .parse()
            .unwrap();
        self
    }

    fn signature(
        &self,
        amz_date: &str,
        scope: &str,
        signed_headers: &[&str],
        payload: &str,
        presigned: bool,
    ) -> String {
        let signed: Vec<String> = signed_headers.iter().map(|s| s.to_string()).collect();
        let canonical = canonical_request(&self.parts(), &signed, payload, presigned);
        let region = scope.split('/').nth(1).unwrap();
        let key = signing_key(SECRET, &amz_date[..8], region, "s3");
        hex::encode(hmac_sha256(
            &key,
            string_to_sign(amz_date, scope, &canonical).as_bytes(),
        ))
    }
}

/// `S3Error` is not `PartialEq`; compare errors by code and message.
#[derive(Debug)]
struct Failure(S3Error);

impl PartialEq for Failure {
    fn eq(&self, other: &Self) -> bool {
        self.0.code() == other.0.code() && self.0.message() == other.0.message()
    }
}

impl std::ops::Deref for Failure {
    type Target = S3Error;
    fn deref(&self) -> &S3Error {
        &self.0
    }
}

type Outcome = Result<Option<Authenticated>, Failure>;

fn secret_for(key_id: &str) -> Option<String> {
    (key_id == AKID).then(|| SECRET.to_owned())
}

fn time(amz_date: &str) -> DateTime<Utc> {
    parse_amz_date(amz_date).unwrap()
}

fn authenticated(payload: PayloadCheck) -> Outcome {
    Ok(Some(Authenticated {
        access_key_id: AKID.into(),
        payload,
    }))
}

fn sha256(hex_digest: &str) -> PayloadCheck {
    let mut digest = [0u8; 32];
    hex::decode_to_slice(hex_digest, &mut digest).unwrap();
    PayloadCheck::Sha256(digest)
}

fn error_code(result: Outcome) -> &'static str {
    result.unwrap_err().code()
}

/// A short-lived header-signed GET with an empty body, for the negative tests.
fn signed_get(uri: &str, amz_date: &str, region: &str) -> TestRequest {
    TestRequest::new(
        "GET",
        uri,
        &[
            ("host", EXAMPLE_HOST),
            ("x-amz-date", amz_date),
            ("x-amz-content-sha256", EMPTY_SHA256),
        ],
    )
    .sign_header(region, &["host", "x-amz-content-sha256", "x-amz-date"])
}

// ---------------------------------------------------------------------------------------------
// AWS published examples.

fn aws_get_object(authorization: &str) -> TestRequest {
    TestRequest::new(
        "GET",
        "/test.txt",
        &[
            ("host", EXAMPLE_HOST),
            ("range", "bytes=0-9"),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", EXAMPLE_DATE),
            ("authorization", authorization),
        ],
    )
}

const GET_OBJECT_AUTH: &str = "AWS4-HMAC-SHA256 \
    Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,\
    SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,\
    Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41";

#[test]
fn aws_example_get_object() {
    let req = aws_get_object(GET_OBJECT_AUTH);
    assert_eq!(req.auth(), authenticated(sha256(EMPTY_SHA256)));

    // The intermediate values published with the example.
    let signed: Vec<String> = ["host", "range", "x-amz-content-sha256", "x-amz-date"]
        .map(String::from)
        .to_vec();
    let canonical = canonical_request(&req.parts(), &signed, EMPTY_SHA256, false);
    assert_eq!(
        String::from_utf8(canonical.clone()).unwrap(),
        format!(
            "GET\n/test.txt\n\nhost:{EXAMPLE_HOST}\nrange:bytes=0-9\n\
             x-amz-content-sha256:{EMPTY_SHA256}\nx-amz-date:{EXAMPLE_DATE}\n\n\
             host;range;x-amz-content-sha256;x-amz-date\n{EMPTY_SHA256}"
        )
    );
    assert_eq!(
        string_to_sign(
            EXAMPLE_DATE,
            "20130524/us-east-1/s3/aws4_request",
            &canonical
        ),
        "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n\
         7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"
    );
}

#[test]
fn authorization_header_layout_variations() {
    let credential = "Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request";
    let signed = "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date";
    let signature = "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41";
    for value in [
        format!("AWS4-HMAC-SHA256 {credential}, {signed}, {signature}"),
        format!("AWS4-HMAC-SHA256 {signature},{credential},{signed}"),
        format!("  AWS4-HMAC-SHA256   {credential} ,  {signed},{signature}  "),
        format!("AWS4-HMAC-SHA256\t{credential} {signed} {signature}"),
        format!("AWS4-HMAC-SHA256 {credential},,{signed},{signature},"),
    ] {
        assert_eq!(
            aws_get_object(&value).auth(),
            authenticated(sha256(EMPTY_SHA256)),
            "{value}"
        );
    }
}

#[test]
fn aws_example_put_object() {
    let put = |path: &str| {
        TestRequest::new(
            "PUT",
            path,
            &[
                ("host", EXAMPLE_HOST),
                ("date", "Fri, 24 May 2013 00:00:00 GMT"),
                ("x-amz-date", EXAMPLE_DATE),
                ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
                (
                    "x-amz-content-sha256",
                    "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
                ),
                (
                    "authorization",
                    "AWS4-HMAC-SHA256 \
                     Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,\
                     SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,\
                     Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
                ),
            ],
        )
    };
    let expected = authenticated(sha256(
        "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
    ));
    // `$` is signed as `%24` whether the client escaped it or not.
    assert_eq!(put("/test%24file.text").auth(), expected);
    assert_eq!(put("/test$file.text").auth(), expected);
}

#[test]
fn aws_example_get_bucket_lifecycle() {
    let auth = "AWS4-HMAC-SHA256 \
        Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,\
        SignedHeaders=host;x-amz-content-sha256;x-amz-date,\
        Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543";
    // A parameter without `=` is signed with an empty value.
    for uri in ["/?lifecycle", "/?lifecycle="] {
        let req = TestRequest::new(
            "GET",
            uri,
            &[
                ("host", EXAMPLE_HOST),
                ("x-amz-date", EXAMPLE_DATE),
                ("x-amz-content-sha256", EMPTY_SHA256),
                ("authorization", auth),
            ],
        );
        assert_eq!(req.auth(), authenticated(sha256(EMPTY_SHA256)), "{uri}");
    }
}

#[test]
fn aws_example_list_objects() {
    let auth = "AWS4-HMAC-SHA256 \
        Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,\
        SignedHeaders=host;x-amz-content-sha256;x-amz-date,\
        Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7";
    // Order and escaping on the wire do not matter; the value does.
    for (uri, ok) in [
        ("/?max-keys=2&prefix=J", true),
        ("/?prefix=J&max-keys=2", true),
        ("/?prefix=%4A&max-keys=2", true),
        ("/?prefix=K&max-keys=2", false),
    ] {
        let req = TestRequest::new(
            "GET",
            uri,
            &[
                ("host", EXAMPLE_HOST),
                ("x-amz-date", EXAMPLE_DATE),
                ("x-amz-content-sha256", EMPTY_SHA256),
                ("authorization", auth),
            ],
        );
        if ok {
            assert_eq!(req.auth(), authenticated(sha256(EMPTY_SHA256)), "{uri}");
        } else {
            assert_eq!(error_code(req.auth()), "SignatureDoesNotMatch", "{uri}");
        }
    }
}

const PRESIGNED_EXAMPLE: &str = "/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256\
    &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request\
    &X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\
    &X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";

#[test]
fn aws_example_presigned_get() {
    let req = TestRequest::new("GET", PRESIGNED_EXAMPLE, &[("host", EXAMPLE_HOST)]);
    assert_eq!(req.auth(), authenticated(PayloadCheck::Unsigned));
    // Valid until the last second of X-Amz-Expires, then expired.
    assert_eq!(
        req.auth_at(REGION, "20130524T235959Z"),
        authenticated(PayloadCheck::Unsigned)
    );
    assert_eq!(
        req.auth_at(REGION, "20130525T000000Z"),
        authenticated(PayloadCheck::Unsigned)
    );
    assert_eq!(
        req.auth_at(REGION, "20130525T000001Z")
            .unwrap_err()
            .message(),
        "Request has expired"
    );
    assert_eq!(
        error_code(req.auth_at(REGION, "20130601T000000Z")),
        "AccessDenied"
    );
}

#[test]
fn aws_example_streaming_seed_signature_and_first_chunk() {
    let seed = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
    let req = TestRequest::new(
        "PUT",
        "/examplebucket/chunkObject.txt",
        &[
            ("host", "s3.amazonaws.com"),
            ("x-amz-date", EXAMPLE_DATE),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
            ("x-amz-content-sha256", STREAMING_PAYLOAD),
            ("content-encoding", "aws-chunked"),
            ("x-amz-decoded-content-length", "66560"),
            ("content-length", "66824"),
            (
                "authorization",
                &format!(
                    "AWS4-HMAC-SHA256 \
                     Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,\
                     SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;\
                     x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,\
                     Signature={seed}"
                ),
            ),
        ],
    );
    let Some(Authenticated {
        payload: PayloadCheck::StreamingSigned(ctx),
        ..
    }) = req.auth().unwrap()
    else {
        panic!("expected a streaming payload");
    };
    assert_eq!(ctx.seed_signature, seed);
    assert_eq!(ctx.amz_date, EXAMPLE_DATE);
    assert_eq!(ctx.scope, "20130524/us-east-1/s3/aws4_request");
    assert!(!ctx.trailer);
    assert!(!format!("{ctx:?}").contains(&hex::encode(ctx.signing_key)));

    // The context is all the chunk decoder needs: the first chunk signature of the example.
    let chunk_string_to_sign = format!(
        "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{}\n{EMPTY_SHA256}\n{}",
        ctx.amz_date,
        ctx.scope,
        ctx.seed_signature,
        sha256_hex(&[b'a'; 65536])
    );
    assert_eq!(
        hex::encode(hmac_sha256(
            &ctx.signing_key,
            chunk_string_to_sign.as_bytes()
        )),
        "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"
    );
}

#[test]
fn aws_example_signing_key() {
    assert_eq!(
        hex::encode(signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20120215",
            "us-east-1",
            "iam"
        )),
        "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
    );
}

// ---------------------------------------------------------------------------------------------
// Requests signed by botocore (S3SigV4Auth / S3SigV4QueryAuth), path-style on localhost:9000.

/// Key `dir/my file ünï+(1)~!*'$&=,;:@.txt` as botocore escapes it.
const BOTO_KEY_PATH: &str =
    "/bucket/dir/my%20file%20%C3%BCn%C3%AF%2B%281%29~%21%2A%27%24%26%3D%2C%3B%3A%40.txt";

#[test]
fn botocore_put_key_with_special_characters_and_untrimmed_header() {
    let req = TestRequest::new(
        "PUT",
        BOTO_KEY_PATH,
        &[
            ("host", "localhost:9000"),
            ("x-amz-meta-note", "  a   b  c "),
            ("content-type", "text/plain"),
            ("x-amz-date", EXAMPLE_DATE),
            (
                "x-amz-content-sha256",
                "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
            ),
            (
                "authorization",
                "AWS4-HMAC-SHA256 \
                 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-meta-note, \
                 Signature=b7d7c5119fc59bb257b62f4f9d7c51f35b7ebbede0a823b1dca3ce6d1436cbfb",
            ),
            ("content-length", "5"),
        ],
    );
    let expected = authenticated(sha256(
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
    ));
    assert_eq!(req.auth(), expected);

    // The same key with `~`, `*` and `'` escaped differently on the wire still verifies.
    let mut respelled = req.clone();
    respelled.uri = BOTO_KEY_PATH
        .replace('~', "%7E")
        .replace("%2A", "*")
        .replace("%27", "'")
        .parse()
        .unwrap();
    assert_eq!(respelled.auth(), expected);
}

#[test]
fn botocore_list_with_plus_space_unicode_and_empty_value() {
    let req = TestRequest::new(
        "GET",
        "/bucket?list-type=2&prefix=a+b%2F%C3%BC%2B&delimiter=%2F&continuation-token=\
         &encoding-type=url",
        &[
            ("host", "localhost:9000"),
            ("x-amz-date", EXAMPLE_DATE),
            ("x-amz-content-sha256", EMPTY_SHA256),
            (
                "authorization",
                "AWS4-HMAC-SHA256 \
                 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
                 SignedHeaders=host;x-amz-content-sha256;x-amz-date, \
                 Signature=e1491593e63187decdcd7c56a0c39062130aee9ca5b592fa54a8d486321a1d15",
            ),
        ],
    );
    assert_eq!(req.auth(), authenticated(sha256(EMPTY_SHA256)));
}

#[test]
fn botocore_presigned_get_special_key_other_region() {
    let req = TestRequest::new(
        "GET",
        &format!(
            "{BOTO_KEY_PATH}?versionId=3%2F4%2B5&X-Amz-Algorithm=AWS4-HMAC-SHA256\
             &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Feu-west-3%2Fs3%2Faws4_request\
             &X-Amz-Date=20130524T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host\
             &X-Amz-Signature=11390eecb10c2b7d9dc631f0d3e359b74f6b1ac6c6cc38f6b60c4c64b6002092"
        ),
        &[("host", "localhost:9000")],
    );
    assert_eq!(
        req.auth_at("eu-west-3", "20130524T005959Z"),
        authenticated(PayloadCheck::Unsigned)
    );
    assert_eq!(
        req.auth_at("eu-west-3", "20130524T010001Z")
            .unwrap_err()
            .message(),
        "Request has expired"
    );
    let err = req.auth_at(REGION, EXAMPLE_DATE).unwrap_err();
    assert_eq!(err.code(), "AuthorizationHeaderMalformed");
    assert!(
        err.message()
            .ends_with("the region 'eu-west-3' is wrong; expecting 'us-east-1'"),
        "{}",
        err.message()
    );
}

#[test]
fn botocore_presigned_put_with_signed_content_type_and_max_expiry() {
    let mut req = TestRequest::new(
        "PUT",
        "/bucket/plain.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256\
         &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request\
         &X-Amz-Date=20130524T000000Z&X-Amz-Expires=604800\
         &X-Amz-SignedHeaders=content-type%3Bhost\
         &X-Amz-Signature=97fe8368a859e25cf5679271844d7b914764a52bc4cba523c94bed98dfbcd19c",
        &[
            ("host", "localhost:9000"),
            ("content-type", "image/png"),
            ("content-length", "0"),
        ],
    );
    assert_eq!(
        req.auth_at(REGION, "20130531T000000Z"),
        authenticated(PayloadCheck::Unsigned)
    );
    req.set("content-type", "text/html");
    assert_eq!(error_code(req.auth()), "SignatureDoesNotMatch");
}

// ---------------------------------------------------------------------------------------------
// Outcomes around a valid signature.

#[test]
fn anonymous_requests() {
    for uri in ["/bucket/key", "/bucket?list-type=2&prefix=x", "/"] {
        let req = TestRequest::new("GET", uri, &[("host", EXAMPLE_HOST)]);
        assert_eq!(req.auth(), Ok(None), "{uri}");
    }
}

#[test]
fn wrong_secret_is_signature_mismatch() {
    let req = aws_get_object(GET_OBJECT_AUTH);
    let result = authenticate(&req.parts(), REGION, time(EXAMPLE_DATE), |_| {
        Some("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEX".into())
    });
    assert_eq!(result.unwrap_err().code(), "SignatureDoesNotMatch");

    let presigned = TestRequest::new("GET", PRESIGNED_EXAMPLE, &[("host", EXAMPLE_HOST)]);
    let result = authenticate(&presigned.parts(), REGION, time(EXAMPLE_DATE), |_| {
        Some("not the secret".into())
    });
    assert_eq!(result.unwrap_err().code(), "SignatureDoesNotMatch");
}

#[test]
fn tampered_requests_are_signature_mismatch() {
    // Signed header value, method, path, signature itself.
    let mut req = aws_get_object(GET_OBJECT_AUTH);
    req.set("range", "bytes=0-10");
    assert_eq!(error_code(req.auth()), "SignatureDoesNotMatch");

    let mut req = aws_get_object(GET_OBJECT_AUTH);
    req.method = Method::HEAD;
    assert_eq!(error_code(req.auth()), "SignatureDoesNotMatch");

    let mut req = aws_get_object(GET_OBJECT_AUTH);
    req.uri = "/test.txt2".parse().unwrap();
    assert_eq!(error_code(req.auth()), "SignatureDoesNotMatch");

    for signature in ["f0e8", "", "zz", &"f".repeat(64), &"F0E8".repeat(16)] {
        let auth = GET_OBJECT_AUTH.replace(
            "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
            signature,
        );
        assert_eq!(
            error_code(aws_get_object(&auth).auth()),
            "SignatureDoesNotMatch",
            "{signature}"
        );
    }

    // A query parameter added to a presigned URL.
    let req = TestRequest::new(
        "GET",
        &format!("{PRESIGNED_EXAMPLE}&versionId=1"),
        &[("host", EXAMPLE_HOST)],
    );
    assert_eq!(error_code(req.auth()), "SignatureDoesNotMatch");
}

#[test]
fn signature_comparison_accepts_uppercase_hex() {
    let auth = GET_OBJECT_AUTH.replace(
        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
        "F0E8BDB87C964420E857BD35B5D6ED310BD44F0170ABA48DD91039C6036BDB41",
    );
    assert_eq!(
        aws_get_object(&auth).auth(),
        authenticated(sha256(EMPTY_SHA256))
    );
}

#[test]
fn unknown_access_key() {
    let req = aws_get_object(&GET_OBJECT_AUTH.replace(AKID, "AKIDUNKNOWN"));
    assert_eq!(error_code(req.auth()), "InvalidAccessKeyId");

    let presigned = TestRequest::new(
        "GET",
        &PRESIGNED_EXAMPLE.replace(AKID, "AKIDUNKNOWN"),
        &[("host", EXAMPLE_HOST)],
    );
    assert_eq!(error_code(presigned.auth()), "InvalidAccessKeyId");
}

#[test]
fn clock_skew() {
    let req = aws_get_object(GET_OBJECT_AUTH);
    for (now, ok) in [
        ("20130524T001500Z", true),
        ("20130523T234500Z", true),
        ("20130524T001501Z", false),
        ("20130523T234459Z", false),
        ("20200101T000000Z", false),
    ] {
        let result = req.auth_at(REGION, now);
        if ok {
            assert!(result.is_ok(), "{now}");
        } else {
            assert_eq!(error_code(result), "RequestTimeTooSkewed", "{now}");
        }
    }
}

#[test]
fn presigned_validity_window() {
    let req = TestRequest::new("GET", "/bucket/key", &[("host", EXAMPLE_HOST)]).presign(
        REGION,
        "20240101T120000Z",
        "60",
    );
    assert_eq!(
        req.auth_at(REGION, "20240101T120000Z"),
        authenticated(PayloadCheck::Unsigned)
    );
    assert_eq!(
        req.auth_at(REGION, "20240101T120100Z"),
        authenticated(PayloadCheck::Unsigned)
    );
    assert_eq!(
        error_code(req.auth_at(REGION, "20240101T120101Z")),
        "AccessDenied"
    );
    // Signed a little in the future (client clock ahead): fine within the skew, not beyond.
    assert!(req.auth_at(REGION, "20240101T114500Z").is_ok());
    assert_eq!(
        error_code(req.auth_at(REGION, "20240101T114459Z")),
        "RequestTimeTooSkewed"
    );
}

#[test]
fn presigned_expires_bounds() {
    let base = TestRequest::new("GET", "/bucket/key", &[("host", EXAMPLE_HOST)]);
    for expires in ["1", "604800"] {
        let req = base.clone().presign(REGION, EXAMPLE_DATE, expires);
        assert!(req.auth().is_ok(), "{expires}");
    }
    for expires in [
        "0",
        "-1",
        "604801",
        "abc",
        "",
        "1.5",
        "99999999999999999999",
    ] {
        let req = base.clone().presign(REGION, EXAMPLE_DATE, expires);
        assert_eq!(
            error_code(req.auth()),
            "AuthorizationHeaderMalformed",
            "{expires}"
        );
    }
}

#[test]
fn presigned_with_content_sha256_header() {
    // The header is not among the signed headers, but its value is the payload hash line.
    let mut req = TestRequest::new("PUT", "/bucket/key", &[("host", EXAMPLE_HOST)]);
    req.set("x-amz-content-sha256", UNSIGNED_PAYLOAD);
    let req = req.presign(REGION, EXAMPLE_DATE, "60");
    assert_eq!(req.auth(), authenticated(PayloadCheck::Unsigned));

    let mut other = req.clone();
    other.set("x-amz-content-sha256", EMPTY_SHA256);
    assert_eq!(error_code(other.auth()), "SignatureDoesNotMatch");
}

#[test]
fn presigned_missing_or_bad_parameters() {
    let full = PRESIGNED_EXAMPLE;
    for (name, value) in [
        ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
        (
            "X-Amz-Credential",
            "AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request",
        ),
        ("X-Amz-Date", "20130524T000000Z"),
        ("X-Amz-Expires", "86400"),
        ("X-Amz-SignedHeaders", "host"),
    ] {
        let pair = format!("{name}={value}");
        let missing = full
            .replace(&format!("&{pair}"), "")
            .replace(&format!("{pair}&"), "");
        assert_ne!(missing, full);
        let req = TestRequest::new("GET", &missing, &[("host", EXAMPLE_HOST)]);
        assert_eq!(
            error_code(req.auth()),
            "AuthorizationHeaderMalformed",
            "{name}"
        );
    }
    for (from, to) in [
        ("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA1"),
        (
            "X-Amz-Date=20130524T000000Z",
            "X-Amz-Date=2013-05-24T00:00:00Z",
        ),
        ("%2Fs3%2F", "%2Fec2%2F"),
        ("%2F20130524%2F", "%2F20130525%2F"),
        ("aws4_request", "aws5_request"),
        ("AKIAIOSFODNN7EXAMPLE%2F", ""),
        ("X-Amz-SignedHeaders=host", "X-Amz-SignedHeaders=ho%20st"),
        ("X-Amz-SignedHeaders=host", "X-Amz-SignedHeaders="),
    ] {
        let req = TestRequest::new(
            "GET",
            &full.replacen(from, to, 1),
            &[("host", EXAMPLE_HOST)],
        );
        assert_eq!(
            error_code(req.auth()),
            "AuthorizationHeaderMalformed",
            "{to}"
        );
    }
    // Signature missing while the other parameters are there: not anonymous.
    let unsigned = &full[..full.find("&X-Amz-Signature").unwrap()];
    let req = TestRequest::new("GET", unsigned, &[("host", EXAMPLE_HOST)]);
    assert_eq!(error_code(req.auth()), "AuthorizationHeaderMalformed");
}

#[test]
fn credential_scope_errors() {
    let message = |auth: &str| aws_get_object(auth).auth().unwrap_err().message();
    assert_eq!(
        message(&GET_OBJECT_AUTH.replace("/us-east-1/", "/us-west-2/")),
        "The authorization header is malformed; the region 'us-west-2' is wrong; \
         expecting 'us-east-1'"
    );
    assert_eq!(
        message(&GET_OBJECT_AUTH.replace("/s3/", "/ec2/")),
        "The authorization header is malformed; incorrect service \"ec2\". \
         This endpoint belongs to \"s3\"."
    );
    assert_eq!(
        message(&GET_OBJECT_AUTH.replace("aws4_request", "aws4_requests")),
        "The authorization header is malformed; incorrect terminal \"aws4_requests\". \
         This endpoint uses \"aws4_request\"."
    );
    assert_eq!(
        message(&GET_OBJECT_AUTH.replace("/20130524/", "/20130525/")),
        "The authorization header is malformed; Invalid credential date. \
         Date is not the same as X-Amz-Date."
    );
    for credential in [
        "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3",
        "/20130524/us-east-1/s3/aws4_request",
        "",
    ] {
        let auth = GET_OBJECT_AUTH.replace(
            "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request",
            credential,
        );
        assert!(
            message(&auth).contains("the Credential is mal-formed"),
            "{credential}"
        );
    }
    // The whole error carries the AWS code.
    let err = aws_get_object(&GET_OBJECT_AUTH.replace("/us-east-1/", "/eu-west-1/"))
        .auth()
        .unwrap_err();
    assert_eq!(err.code(), "AuthorizationHeaderMalformed");
    assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
}

#[test]
fn content_sha256_header_is_required_and_validated() {
    let mut req = aws_get_object(GET_OBJECT_AUTH);
    req.headers.remove("x-amz-content-sha256");
    let err = req.auth().unwrap_err();
    assert_eq!(err.code(), "InvalidRequest");
    assert_eq!(
        err.message(),
        "Missing required header for this request: x-amz-content-sha256"
    );

    for bad in [
        "STREAMING-PAYLOAD",
        "e3b0",
        "unsigned-payload",
        &"g".repeat(64),
    ] {
        let mut req = aws_get_object(GET_OBJECT_AUTH);
        req.set("x-amz-content-sha256", bad);
        assert_eq!(error_code(req.auth()), "InvalidArgument", "{bad}");
    }
}

#[test]
fn payload_modes() {
    let signed_headers = ["host", "x-amz-content-sha256", "x-amz-date"];
    let req = |payload: &str| {
        TestRequest::new(
            "PUT",
            "/bucket/key",
            &[
                ("host", EXAMPLE_HOST),
                ("x-amz-date", EXAMPLE_DATE),
                ("x-amz-content-sha256", payload),
            ],
        )
        .sign_header(REGION, &signed_headers)
    };
    assert_eq!(
        req(UNSIGNED_PAYLOAD).auth(),
        authenticated(PayloadCheck::Unsigned)
    );
    assert_eq!(
        req(STREAMING_UNSIGNED_PAYLOAD_TRAILER).auth(),
        authenticated(PayloadCheck::StreamingUnsigned)
    );
    assert_eq!(
        req(EMPTY_SHA256).auth(),
        authenticated(sha256(EMPTY_SHA256))
    );
    for (mode, trailer) in [
        (STREAMING_PAYLOAD, false),
        (STREAMING_PAYLOAD_TRAILER, true),
    ] {
        let request = req(mode);
        let authorization = request.headers["authorization"]
            .to_str()
            .unwrap()
            .to_owned();
        let Ok(Some(Authenticated {
            payload: PayloadCheck::StreamingSigned(ctx),
            ..
        })) = request.auth()
        else {
            panic!("{mode}: expected a streaming payload");
        };
        assert_eq!(ctx.trailer, trailer);
        assert!(authorization.ends_with(&format!("Signature={}", ctx.seed_signature)));
        assert_eq!(
            ctx.signing_key,
            signing_key(SECRET, "20130524", REGION, "s3")
        );
    }
}

#[test]
fn verify_payload_sha256_reports_mismatch() {
    let a = [7u8; 32];
    let mut b = a;
    assert!(verify_payload_sha256(&a, &b).is_ok());
    b[31] ^= 1;
    assert_eq!(
        verify_payload_sha256(&a, &b).unwrap_err().code(),
        "XAmzContentSHA256Mismatch"
    );
}

#[test]
fn date_header_fallback() {
    // No x-amz-date: an RFC 1123 `Date` is signed in its ISO 8601 basic form.
    let mut req = TestRequest::new(
        "GET",
        "/bucket/key",
        &[
            ("host", EXAMPLE_HOST),
            ("date", "Fri, 24 May 2013 00:00:00 GMT"),
            ("x-amz-content-sha256", EMPTY_SHA256),
        ],
    );
    req.set("x-amz-date", EXAMPLE_DATE);
    let signed = req.sign_header(REGION, &["date", "host"]);
    let mut req = signed.clone();
    req.headers.remove("x-amz-date");
    assert_eq!(req.auth(), authenticated(sha256(EMPTY_SHA256)));

    // An ISO 8601 basic `Date` also works.
    let mut iso = TestRequest::new(
        "GET",
        "/bucket/key",
        &[
            ("host", EXAMPLE_HOST),
            ("date", EXAMPLE_DATE),
            ("x-amz-content-sha256", EMPTY_SHA256),
        ],
    );
    iso.set("x-amz-date", EXAMPLE_DATE);
    let mut iso = iso.sign_header(REGION, &["date", "host"]);
    iso.headers.remove("x-amz-date");
    assert_eq!(iso.auth(), authenticated(sha256(EMPTY_SHA256)));

    // Neither header, or an unreadable one: AccessDenied.
    let mut none = signed.clone();
    none.headers.remove("x-amz-date");
    none.headers.remove("date");
    assert_eq!(error_code(none.auth()), "AccessDenied");
    for bad in [
        "yesterday",
        "2013-05-24T00:00:00Z",
        "20130524T000000",
        "20131324T000000Z",
    ] {
        let mut req = signed.clone();
        req.set("x-amz-date", bad);
        assert_eq!(error_code(req.auth()), "AccessDenied", "{bad}");
    }
}

#[test]
fn host_from_uri_authority_when_header_is_absent() {
    // HTTP/2 requests carry `:authority` instead of a Host header.
    let mut req = aws_get_object(GET_OBJECT_AUTH);
    req.headers.remove("host");
    req.uri = format!("https://{EXAMPLE_HOST}/test.txt").parse().unwrap();
    assert_eq!(req.auth(), authenticated(sha256(EMPTY_SHA256)));
}

#[test]
fn repeated_headers_are_joined_with_commas() {
    let mut req = TestRequest::new(
        "GET",
        "/bucket/key",
        &[
            ("host", EXAMPLE_HOST),
            ("x-amz-date", EXAMPLE_DATE),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-meta-tag", " one "),
        ],
    );
    req.append("x-amz-meta-tag", "two  words");
    let signed: Vec<String> = vec!["host".into(), "x-amz-meta-tag".into()];
    let canonical = String::from_utf8(canonical_request(
        &req.parts(),
        &signed,
        EMPTY_SHA256,
        false,
    ))
    .unwrap();
    assert!(
        canonical.contains("\nx-amz-meta-tag:one,two words\n"),
        "{canonical}"
    );

    let req = req.sign_header(REGION, &["host", "x-amz-meta-tag"]);
    assert!(req.auth().is_ok());
}

#[test]
fn keys_with_special_characters_round_trip() {
    for path in [
        "/bucket/a%20b/c%2Bd+e",
        "/bucket/%E2%82%AC%F0%9F%98%80%E4%B8%AD",
        "/bucket/a%2Fb//c/./../d",
        "/bucket/%25%26%3D%3F%23%5B%5D",
        "/bucket/~user/!$&'()*,;=:@",
    ] {
        let req = TestRequest::new(
            "PUT",
            path,
            &[
                ("host", EXAMPLE_HOST),
                ("x-amz-date", EXAMPLE_DATE),
                ("x-amz-content-sha256", UNSIGNED_PAYLOAD),
            ],
        )
        .sign_header(REGION, &["host", "x-amz-content-sha256", "x-amz-date"]);
        assert_eq!(req.auth(), authenticated(PayloadCheck::Unsigned), "{path}");
    }
}

#[test]
fn query_parameters_with_empty_values() {
    for uri in [
        "/bucket?uploads",
        "/bucket?uploads=",
        "/bucket/key?uploadId=&partNumber=1",
        "/bucket?delete&x=",
        "/bucket?a=1&&b=2&",
        "/bucket?acl&versionId=3%2F4",
    ] {
        let req = signed_get(uri, EXAMPLE_DATE, REGION);
        assert_eq!(req.auth(), authenticated(sha256(EMPTY_SHA256)), "{uri}");
    }
}

#[test]
fn canonical_uri_rules() {
    for (path, expected) in [
        ("", "/"),
        ("/", "/"),
        ("/test$file.text", "/test%24file.text"),
        ("/test%24file.text", "/test%24file.text"),
        ("/%7euser/a%2fb", "/~user/a%2Fb"),
        ("/a+b", "/a%2Bb"),
        ("/a%20b", "/a%20b"),
        ("/café", "/caf%C3%A9"),
        ("/caf%C3%A9", "/caf%C3%A9"),
        ("//double//slash/", "//double//slash/"),
        ("/./..", "/./.."),
        ("/100%", "/100%25"),
        ("/%zz", "/%25zz"),
        ("/A-Z_a.z~0", "/A-Z_a.z~0"),
    ] {
        assert_eq!(canonical_uri(path), expected, "{path}");
    }
}

#[test]
fn canonical_query_rules() {
    for (query, presigned, expected) in [
        ("", false, ""),
        ("b=2&a=1&a=0&c", false, "a=0&a=1&b=2&c="),
        ("prefix=a+b%2f%C3%BC", false, "prefix=a%20b%2F%C3%BC"),
        ("k=%2B&k2=+", false, "k=%2B&k2=%20"),
        ("a=1&X-Amz-Signature=ff", true, "a=1"),
        ("a=1&X-Amz-Signature=ff", false, "X-Amz-Signature=ff&a=1"),
        ("B=1&a=1&_=1", false, "B=1&_=1&a=1"),
        ("x=a=b", false, "x=a%3Db"),
        ("&&", false, ""),
        ("~=~", false, "~=~"),
    ] {
        assert_eq!(canonical_query(query, presigned), expected, "{query}");
    }
}

#[test]
fn both_mechanisms_at_once_is_rejected() {
    let req = TestRequest::new(
        "GET",
        PRESIGNED_EXAMPLE,
        &[("host", EXAMPLE_HOST), ("authorization", GET_OBJECT_AUTH)],
    );
    assert_eq!(error_code(req.auth()), "InvalidArgument");
}

#[test]
fn unsupported_schemes() {
    let req = aws_get_object("AWS AKIAIOSFODNN7EXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg=");
    assert_eq!(error_code(req.auth()), "InvalidRequest");
    let sigv4a = GET_OBJECT_AUTH.replace("AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256");
    assert_eq!(error_code(aws_get_object(&sigv4a).auth()), "InvalidRequest");
    assert_eq!(
        error_code(aws_get_object("Bearer abc").auth()),
        "InvalidArgument"
    );
    let v2_presigned = TestRequest::new(
        "GET",
        "/bucket/key?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=1&Signature=x",
        &[("host", EXAMPLE_HOST)],
    );
    assert_eq!(error_code(v2_presigned.auth()), "InvalidRequest");
}

#[test]
fn malformed_authorization_headers() {
    for value in [
        "",
        "AWS4-HMAC-SHA256",
        "AWS4-HMAC-SHA256 ",
        "AWS4-HMAC-SHA256 Credential",
        "AWS4-HMAC-SHA256 Credential=a/b/c/d/e",
        "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
         Signature=00",
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
         SignedHeaders=host",
        "AWS4-HMAC-SHA256 Credential=x, Credential=y, SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
         SignedHeaders=, Signature=00",
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
         SignedHeaders=host;;range, Signature=00",
    ] {
        let code = error_code(aws_get_object(value).auth());
        assert_eq!(code, "AuthorizationHeaderMalformed", "{value:?}");
    }

    // Non-ASCII bytes in the header value.
    let mut req = aws_get_object(GET_OBJECT_AUTH);
    req.headers.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_bytes(b"AWS4-HMAC-SHA256 Credential=\xff\xfe/20130524").unwrap(),
    );
    assert_eq!(error_code(req.auth()), "AuthorizationHeaderMalformed");
}

/// Every prefix of a valid header or URL, and random byte flips, give an error and never a
/// panic (the full, unmodified request aside).
#[test]
fn no_panics_on_mangled_input() {
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let header = GET_OBJECT_AUTH.as_bytes();
    for cut in 0..header.len() {
        if let Ok(value) = HeaderValue::from_bytes(&header[..cut]) {
            let mut req = aws_get_object(GET_OBJECT_AUTH);
            req.headers.insert(http::header::AUTHORIZATION, value);
            assert!(req.auth().is_err(), "{cut}");
        }
    }
    for _ in 0..3000 {
        let mut bytes = header.to_vec();
        for _ in 0..1 + next() % 4 {
            let i = (next() % bytes.len() as u64) as usize;
            bytes[i] = (next() % 256) as u8;
        }
        if let Ok(value) = HeaderValue::from_bytes(&bytes) {
            let mut req = aws_get_object(GET_OBJECT_AUTH);
            req.headers.insert(http::header::AUTHORIZATION, value);
            let _ = req.auth();
        }
    }
    for cut in 0..PRESIGNED_EXAMPLE.len() {
        if let Ok(uri) = PRESIGNED_EXAMPLE[..cut].parse::<Uri>() {
            let mut req = TestRequest::new("GET", "/", &[("host", EXAMPLE_HOST)]);
            req.uri = uri;
            let _ = req.auth();
        }
    }
    for _ in 0..3000 {
        let mut bytes = PRESIGNED_EXAMPLE.as_bytes().to_vec();
        for _ in 0..1 + next() % 4 {
            let i = (next() % bytes.len() as u64) as usize;
            bytes[i] = (next() % 128) as u8;
        }
        if let Ok(uri) = Uri::from_maybe_shared(bytes) {
            let mut req = TestRequest::new("GET", "/", &[("host", EXAMPLE_HOST)]);
            req.uri = uri;
            let _ = req.auth();
        }
    }
    // Hostile header values for the date and payload hash.
    for value in [
        &b"\xff\xff"[..],
        b"20130524T000000Z\xff",
        b"\x7f",
        b"\xe2\x82\xac",
    ] {
        let Ok(value) = HeaderValue::from_bytes(value) else {
            continue;
        };
        for name in ["x-amz-date", "x-amz-content-sha256", "host", "range"] {
            let mut req = aws_get_object(GET_OBJECT_AUTH);
            req.headers.insert(name, value.clone());
            assert!(req.auth().is_err(), "{name}");
        }
    }
}
