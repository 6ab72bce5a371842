//! Harness for the multi-process tests: real `cairn` processes on loopback, driven by real S3
//! clients (aws-sdk-s3, the aws CLI, hand-made HTTP requests).
//!
//! - [`Cluster`] starts N `cairn node` processes (`--bootstrap-expect N`) and a gateway, with
//!   kill -9 / restart / join helpers.
//! - [`Server`] starts `cairn server` on a temp data dir with free ports, waits for `/readyz`,
//!   and kills the process on drop ([`Server::kill_9`], [`Server::restart`] for crash tests).
//! - [`s3_client`] builds an aws-sdk-s3 client for a server (path style, `us-east-1`).
//! - [`AwsCli`] drives the aws CLI against a server (root key, private config).
//! - [`raw_request`] / [`signed_request`] send hand-made requests (anonymous, malformed,
//!   unknown sub-resources) and return status, headers and body.
//! - [`browser`] runs headless Chromium: [`screenshot`] of a page, [`dump_dom`] after its
//!   scripts ran, with `--host-resolver-rules` ([`map_host`]) for Host-based routing.
//! - [`Weed`] starts SeaweedFS (`weed mini`) for comparison benchmarks.
//! - [`k8s`] renders a kustomize overlay and turns its pods into `cairn` command lines and
//!   environments on loopback (a loopback address per pod for its DNS name).
//! - [`objects`]: buckets and whole objects in one call each (PUT/GET, ETag checked, listing).
//! - [`multipart`]: multipart uploads in a few calls; [`lifecycle`] and [`bucket_config`]
//!   build the bucket configurations tests set (lifecycle rules; CORS, website, versioning).
//! - [`checks`]: waiting for a condition, `cairn status` rows, the size of a data dir.
//! - [`NodeProbe`] asks one node over gRPC what it holds (records, blocks, counters).
//! - [`raw_http`]: HTTP by hand over a socket (a health probe; a status line over TLS).
//! - [`pki`] makes a throwaway CA and server certificate for the TLS tests.
//! - [`data`] makes test bodies: random bytes and a deterministic streamed body of any size.
//!
//! The binary is built once per test process with the same cargo (`cargo build -p cairn`),
//! unless `CAIRN_BIN` names one.

pub mod aws_cli;
pub mod binary;
pub mod browser;
pub mod bucket_config;
pub mod checks;
pub mod cluster;
pub mod data;
pub mod k8s;
pub mod lifecycle;
pub mod multipart;
pub mod objects;
pub mod pki;
pub mod post_form;
pub mod probe;
pub mod proc;
pub mod raw_http;
mod running;
pub mod s3;
pub mod server;
pub mod vhost;
pub mod weed;

pub use aws_cli::{AwsCli, S3Target, aws_cli_present, aws_env};
pub use binary::{Profile, cairn_bin, workspace_root};
pub use browser::{dump_dom, map_host, require_chromium, screenshot};
pub use checks::{dir_bytes, eventually, status_records, status_row, wait_until};
pub use cluster::{Cluster, ClusterOptions, Proc};
pub use data::{md5_hex, quoted_md5, random_bytes};
pub use multipart::{completed_upload, create_upload};
pub use objects::{
    delete_object, expect_no_such_key, get_bytes, get_object, head_object, list_keys, new_bucket,
    new_bucket_retrying_503, object_keys, prefix_names, put_bytes, put_checked, try_get,
};
pub use probe::NodeProbe;
pub use proc::{CmdOutput, run_with_timeout};
pub use s3::{
    RawResponse, S3Failure, expect_s3_error, http_client, raw_request, raw_request_with, s3_client,
    s3_client_with_timeout, s3_failure, sign_headers, sign_headers_for_payload, signed_request,
    unique_bucket, url_encode_key,
};
pub use server::{KeyPair, Server, ServerOptions};
pub use weed::{Weed, weed_available};
