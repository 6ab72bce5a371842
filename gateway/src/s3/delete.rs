//! DeleteObjects: many deletes in one request, with per-key results (Quiet mode lists only
//! the failures).

use futures::StreamExt;
use http::{Response, StatusCode};

use super::versioning::{delete_version, parse_version_id};
use super::{S3, S3Request, xml_response};
use crate::body::{self, ResponseBody};
use crate::error::{S3Error, S3Result};
use crate::xml::{self, DeleteError, DeleteResult, DeletedObject, Xmlns};

/// Most keys one DeleteObjects request may name (as AWS).
const MAX_KEYS: usize = 1000;
/// Largest DeleteObjects body accepted.
const MAX_BODY: usize = 2 * 1024 * 1024;
/// Deletes run concurrently per request.
const CONCURRENCY: usize = 16;

pub async fn delete_objects(s3: &S3, req: S3Request) -> S3Result<Response<ResponseBody>> {
    let bucket = req.bucket()?.clone();
    let body = body::collect_limited(req.body, MAX_BODY).await?;
    let doc: xml::Delete = xml::from_xml(&body)?;
    if doc.objects.is_empty() || doc.objects.len() > MAX_KEYS {
        return Err(S3Error::MalformedXML);
    }
    let outcomes: Vec<_> = futures::stream::iter(doc.objects)
        .map(|object| {
            let bucket = &bucket;
            async move {
                let result = if object.key.is_empty() || object.key.len() > 1024 {
                    Err(S3Error::KeyTooLongError)
                } else {
                    match parse_version_id(object.version_id.as_deref()) {
                        Ok(selector) => delete_version(s3, bucket, &object.key, selector).await,
                        Err(e) => Err(e),
                    }
                };
                (object, result)
            }
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let mut result = DeleteResult {
        xmlns: Xmlns,
        ..Default::default()
    };
    for (object, outcome) in outcomes {
        match outcome {
            Ok(_) if doc.quiet => {}
            Ok(deleted) => {
                let marker = deleted.delete_marker;
                result.deleted.push(DeletedObject {
                    key: object.key,
                    version_id: object.version_id,
                    delete_marker: marker.then_some(true),
                    delete_marker_version_id: deleted.version_id.filter(|_| marker),
                })
            }
            Err(e) => result.errors.push(DeleteError {
                key: object.key,
                code: e.code().to_string(),
                message: e.message(),
                version_id: object.version_id,
            }),
        }
    }
    xml_response(StatusCode::OK, xml::to_xml(&result))
}
