//! The cluster secret: every node-to-node, gateway-to-node and admin gRPC call carries it,
//! and nodes refuse calls without it.

use subtle::ConstantTimeEq;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// gRPC metadata header that carries the cluster secret.
pub const HEADER: &str = "x-cairn-cluster-secret";

/// Adds the cluster secret to outgoing calls.
#[derive(Clone)]
pub struct AttachSecret {
    value: MetadataValue<tonic::metadata::Ascii>,
}

impl AttachSecret {
    pub fn new(secret: &str) -> Result<Self, Status> {
        let value = secret
            .parse()
            .map_err(|_| Status::invalid_argument("cluster secret must be printable ASCII"))?;
        Ok(Self { value })
    }
}

impl Interceptor for AttachSecret {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        req.metadata_mut().insert(HEADER, self.value.clone());
        Ok(req)
    }
}

/// Refuses incoming calls that do not carry the cluster secret (constant-time compare).
#[derive(Clone)]
pub struct RequireSecret {
    secret: std::sync::Arc<[u8]>,
}

impl RequireSecret {
    pub fn new(secret: &str) -> Self {
        Self {
            secret: secret.as_bytes().into(),
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
        if given.len() == self.secret.len() && bool::from(given.ct_eq(&self.secret)) {
            Ok(req)
        } else {
            Err(Status::unauthenticated("missing or wrong cluster secret"))
        }
    }
}

/// A fresh random secret (64 hex characters), for `cairn server`'s first start.
pub fn generate() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}
