//! The cluster contract shared by Cairn gateways and nodes: generated gRPC types, the
//! replicated metadata model, ring placement, identifiers and versions, the cluster
//! secret that authenticates every internal call, and TLS of the node gRPC listeners.

pub mod block_node;
pub mod client;
pub mod ids;
pub mod meta;
pub mod ring;
pub mod secret;
pub mod tls;
pub mod versions;

/// Generated protobuf / tonic code (`proto/cairn.proto`).
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("cairn.v1");
}

/// Start of the message of a `FailedPrecondition` status for a write whose condition
/// (If-None-Match / If-Match) does not hold.
pub const CONDITION_FAILED: &str = "write condition failed";
/// Start of the message of an `Aborted` status for a conditional write that lost a race to a
/// newer version.
pub const CONDITION_CONFLICT: &str = "write condition conflict";
/// Start of the message of a `ResourceExhausted` status for new data a node refuses because
/// the free space of its data dir is below its reserve.
pub const STORAGE_FULL: &str = "storage full";

/// Whether a node refused new data because its disk is below its free-space reserve.
pub fn is_storage_full(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::ResourceExhausted && status.message().starts_with(STORAGE_FULL)
}

pub use ids::{BlockId, Hlc, VersionKey};
pub use meta::{MetaCommand, MetaError, MetaResult, Metadata};
pub use ring::{Placement, Ring};
