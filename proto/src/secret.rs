//! The cluster secret: every node-to-node, gateway-to-node and admin gRPC call carries it,
//! and nodes refuse calls without it. Calls meant for one node of the layout also name it, so
//! a process now answering at that node's address (a pod back on an empty volume, a new node
//! on a reused address) refuses them instead of standing in for a replica it is not.

use subtle::ConstantTimeEq;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::{Request, Status};
use uuid::Uuid;

/// gRPC metadata header that carries the cluster secret.
pub const HEADER: &str = "x-cairn-cluster-secret";
/// gRPC metadata header naming the node (uuid) a call is meant for.
pub const NODE_HEADER: &str = "x-cairn-node-id";
/// Start of the message of the `Unavailable` status a node answers to a call meant for
/// another node.
pub const WRONG_NODE: &str = "wrong node";

type Ascii = MetadataValue<tonic::metadata::Ascii>;

/// Adds the cluster secret (and, for a call meant for one node, its id) to outgoing calls.
#[derive(Clone)]
pub struct AttachSecret {
    value: Ascii,
    node: Option<Ascii>,
}

impl AttachSecret {
    pub fn new(secret: &str) -> Result<Self, Status> {
        let value = secret
            .parse()
            .map_err(|_| Status::invalid_argument("cluster secret must be printable ASCII"))?;
        Ok(Self { value, node: None })
    }

    /// The same, naming `node` as the only node that may answer.
    pub fn for_node(&self, node: Uuid) -> Self {
        let id = node.to_string().parse().expect("a uuid is ASCII");
        Self {
            value: self.value.clone(),
            node: Some(id),
        }
    }
}

impl Interceptor for AttachSecret {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        req.metadata_mut().insert(HEADER, self.value.clone());
        if let Some(node) = &self.node {
            req.metadata_mut().insert(NODE_HEADER, node.clone());
        }
        Ok(req)
    }
}

/// Refuses incoming calls that do not carry the cluster secret (constant-time compare) and,
/// with [`RequireSecret::for_node`], calls meant for another node.
#[derive(Clone)]
pub struct RequireSecret {
    secret: std::sync::Arc<[u8]>,
    node: Option<Uuid>,
}

impl RequireSecret {
    pub fn new(secret: &str) -> Self {
        Self {
            secret: secret.as_bytes().into(),
            node: None,
        }
    }

    /// The same, also refusing calls that name a node other than `node` (this one).
    pub fn for_node(self, node: Uuid) -> Self {
        Self {
            node: Some(node),
            ..self
        }
    }
}

impl Interceptor for RequireSecret {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        let given = req
            .metadata()
            .get(HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or(b"");
        if given.len() != self.secret.len() || !bool::from(given.ct_eq(&self.secret)) {
            return Err(Status::unauthenticated("missing or wrong cluster secret"));
        }
        if let (Some(me), Some(asked)) = (self.node, req.metadata().get(NODE_HEADER)) {
            let asked = asked.to_str().unwrap_or_default();
            if asked != me.to_string() {
                return Err(Status::unavailable(format!(
                    "{WRONG_NODE}: this is node {me}, not {asked}"
                )));
            }
        }
        Ok(req)
    }
}

/// A fresh random secret (64 hex characters), for `cairn server`'s first start.
pub fn generate() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}
