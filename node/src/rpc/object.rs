//! ObjectService: thin gRPC layer over the coordinator and the local index.

use std::sync::Arc;

use cairn_proto::VersionKey;
use cairn_proto::pb;
use cairn_proto::pb::object_service_server::ObjectService;
use cairn_proto::pb::{
    CoordinateRequest, CoordinateResponse, GetRecordRequest, GetRecordResponse, GetRecordsRequest,
    GetRecordsResponse, ListRequest, ListResponse, PartitionDigestsRequest,
    PartitionDigestsResponse, PartitionRecordsRequest, PartitionRecordsResponse, SetTagsRequest,
    SetTagsResponse, StoreRequest, StoreResponse,
};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::coordinator::{coordinate_if, index_status, set_tags, store_local};
use crate::repair;
use crate::state::NodeState;
use crate::store::index::{is_purged, summary_of};
use crate::store::{Index, ListQuery};
use cairn_proto::versions::VersionSelector;

/// Largest listing page a node answers.
const MAX_LIST: u32 = 10_000;

pub struct ObjectRpc(pub Arc<NodeState>);

fn bucket_id(raw: &[u8]) -> Result<Uuid, Status> {
    Uuid::from_slice(raw).map_err(|_| Status::invalid_argument("bucket id must be 16 bytes"))
}

/// Answers a `Get` from the local index: the version asked for (by id or the null version),
/// or the newest visible record with the purged versions newer than it. With `any_state`,
/// the version asked for is looked up in any state, `uploading` included, and answered as a
/// summary (whether this replica holds it at all).
pub fn read_record(index: &Index, req: &GetRecordRequest) -> Result<GetRecordResponse, Status> {
    let bucket = bucket_id(&req.bucket_id)?;
    let selector = match &req.version {
        Some(v) => Some(VersionSelector::Id(
            VersionKey::from_pb(v).ok_or_else(|| Status::invalid_argument("bad version"))?,
        )),
        None => req.null_version.then_some(VersionSelector::Null),
    };
    match selector {
        Some(VersionSelector::Id(version)) if req.any_state => {
            let held = index
                .exact_version(&bucket, &req.key, &version)
                .map_err(index_status)?;
            Ok(one_version(held.as_ref().map(summary_of)))
        }
        Some(selector) => {
            let record = index
                .selected(&bucket, &req.key, selector)
                .map_err(index_status)?;
            Ok(one_version(record))
        }
        None => {
            let latest = index.latest(&bucket, &req.key).map_err(index_status)?;
            Ok(GetRecordResponse {
                purged: latest.purged_versions(),
                record: latest.record,
            })
        }
    }
}

/// The answer about one version asked for: the record, or its version in `purged` when it
/// was purged here.
fn one_version(record: Option<pb::ObjectRecord>) -> GetRecordResponse {
    match record {
        Some(r) if is_purged(&r) => GetRecordResponse {
            record: None,
            purged: r.version.into_iter().collect(),
        },
        record => GetRecordResponse {
            record,
            purged: Vec::new(),
        },
    }
}

#[tonic::async_trait]
impl ObjectService for ObjectRpc {
    async fn coordinate(
        &self,
        req: Request<CoordinateRequest>,
    ) -> Result<Response<CoordinateResponse>, Status> {
        let req = req.into_inner();
        self.0.check_layout(req.layout_version)?;
        let record = req
            .record
            .ok_or_else(|| Status::invalid_argument("record missing"))?;
        Ok(Response::new(
            coordinate_if(&self.0, record, req.condition).await?,
        ))
    }

    async fn store(&self, req: Request<StoreRequest>) -> Result<Response<StoreResponse>, Status> {
        let req = req.into_inner();
        self.0.check_layout(req.layout_version)?;
        let record = req
            .record
            .ok_or_else(|| Status::invalid_argument("record missing"))?;
        if record.version.is_none() {
            return Err(Status::invalid_argument(
                "replicas only store stamped records",
            ));
        }
        store_local(&self.0, record).await?;
        Ok(Response::new(StoreResponse {}))
    }

    async fn get(
        &self,
        req: Request<GetRecordRequest>,
    ) -> Result<Response<GetRecordResponse>, Status> {
        Ok(Response::new(read_record(
            &self.0.index,
            &req.into_inner(),
        )?))
    }

    async fn set_tags(
        &self,
        req: Request<SetTagsRequest>,
    ) -> Result<Response<SetTagsResponse>, Status> {
        let req = req.into_inner();
        self.0.check_layout(req.layout_version)?;
        let record = set_tags(&self.0, req).await?;
        Ok(Response::new(SetTagsResponse {
            record: Some(record),
        }))
    }

    async fn partition_digests(
        &self,
        req: Request<PartitionDigestsRequest>,
    ) -> Result<Response<PartitionDigestsResponse>, Status> {
        Ok(Response::new(
            repair::serve_digests(&self.0, req.into_inner()).await?,
        ))
    }

    async fn partition_records(
        &self,
        req: Request<PartitionRecordsRequest>,
    ) -> Result<Response<PartitionRecordsResponse>, Status> {
        Ok(Response::new(
            repair::serve_records(&self.0, req.into_inner()).await?,
        ))
    }

    async fn get_records(
        &self,
        req: Request<GetRecordsRequest>,
    ) -> Result<Response<GetRecordsResponse>, Status> {
        Ok(Response::new(
            repair::serve_get_records(&self.0, req.into_inner()).await?,
        ))
    }

    async fn list(&self, req: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        let req = req.into_inner();
        let query = ListQuery {
            bucket: bucket_id(&req.bucket_id)?,
            prefix: req.prefix,
            start_after: req.start_after,
            delimiter: req.delimiter,
            limit: req.limit.clamp(1, MAX_LIST) as usize,
            headers_only: req.headers_only,
            all_versions: req.all_versions,
            after_version: req.after_version.as_ref().and_then(VersionKey::from_pb),
        };
        let index = self.0.index.clone();
        let (records, truncated) = tokio::task::spawn_blocking(move || index.list(&query))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(index_status)?;
        Ok(Response::new(ListResponse { records, truncated }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::index::{test_index, test_record};
    use cairn_proto::pb::RecordState;

    #[tokio::test]
    async fn any_state_reports_uploading_versions_as_summaries() {
        let (_dir, index) = test_index();
        let b = Uuid::new_v4();
        let mut uploading = test_record(b, "k", 10, RecordState::Uploading);
        uploading.user_metadata.insert("m".into(), "v".into());
        index.store(uploading).await.unwrap();
        for (hlc, state) in [(20, RecordState::Complete), (30, RecordState::Purged)] {
            index.store(test_record(b, "k", hlc, state)).await.unwrap();
        }
        let ask = |hlc: u64, any_state: bool| GetRecordRequest {
            bucket_id: b.as_bytes().to_vec(),
            key: "k".into(),
            version: Some(
                VersionKey {
                    hlc,
                    ..Default::default()
                }
                .to_pb(),
            ),
            any_state,
            ..Default::default()
        };
        // Reads never see an `uploading` version; the audit's question does, in brief.
        assert!(
            read_record(&index, &ask(10, false))
                .unwrap()
                .record
                .is_none()
        );
        let held = read_record(&index, &ask(10, true)).unwrap().record.unwrap();
        assert_eq!(held.state(), RecordState::Uploading);
        assert!(held.user_metadata.is_empty());
        let complete = read_record(&index, &ask(20, true)).unwrap();
        assert_eq!(complete.record.unwrap().state(), RecordState::Complete);
        let purged = read_record(&index, &ask(30, true)).unwrap();
        assert!(purged.record.is_none());
        assert_eq!(
            purged.purged,
            ask(30, true).version.into_iter().collect::<Vec<_>>()
        );
        assert_eq!(
            read_record(&index, &ask(40, true)).unwrap(),
            GetRecordResponse::default()
        );
    }
}
