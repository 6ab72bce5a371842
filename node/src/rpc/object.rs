//! ObjectService: thin gRPC layer over the coordinator and the local index.

use std::sync::Arc;

use cairn_proto::VersionKey;
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
use crate::store::index::is_purged;
use crate::store::{Index, ListQuery};
use cairn_proto::versions::VersionSelector;

/// Largest listing page a node answers.
const MAX_LIST: u32 = 10_000;

pub struct ObjectRpc(pub Arc<NodeState>);

fn bucket_id(raw: &[u8]) -> Result<Uuid, Status> {
    Uuid::from_slice(raw).map_err(|_| Status::invalid_argument("bucket id must be 16 bytes"))
}

/// Answers a `Get` from the local index: the version asked for (by id or the null version),
/// or the newest visible record with the purged versions newer than it.
pub fn read_record(index: &Index, req: &GetRecordRequest) -> Result<GetRecordResponse, Status> {
    let bucket = bucket_id(&req.bucket_id)?;
    let selector = match &req.version {
        Some(v) => Some(VersionSelector::Id(
            VersionKey::from_pb(v).ok_or_else(|| Status::invalid_argument("bad version"))?,
        )),
        None => req.null_version.then_some(VersionSelector::Null),
    };
    if let Some(selector) = selector {
        let record = index
            .selected(&bucket, &req.key, selector)
            .map_err(index_status)?;
        return Ok(match record {
            Some(r) if is_purged(&r) => GetRecordResponse {
                record: None,
                purged: r.version.into_iter().collect(),
            },
            record => GetRecordResponse {
                record,
                purged: Vec::new(),
            },
        });
    }
    let latest = index.latest(&bucket, &req.key).map_err(index_status)?;
    Ok(GetRecordResponse {
        purged: latest.purged_versions(),
        record: latest.record,
    })
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
