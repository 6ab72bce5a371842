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
//! - [`checks`]: PUT/GET with ETags checked, waiting for a condition, `cairn status` rows.
//! - [`pki`] makes a throwaway CA and server certificate for the TLS tests.
//! - [`data`] makes test bodies: random bytes and a deterministic streamed body of any size.
//!
//! The binary is built once per test process with the same cargo (`cargo build -p cairn`),
//! unless `CAIRN_BIN` names one.

pub mod aws_cli;
pub mod binary;
pub mod browser;
pub mod checks;
pub mod cluster;
pub mod data;
pub mod k8s;
pub mod pki;
pub mod post_form;
pub mod probe;
pub mod proc;
pub mod s3;
pub mod server;
pub mod vhost;
pub mod weed;

pub use aws_cli::{AwsCli, S3Target, aws_cli_present, aws_env};
pub use binary::{Profile, cairn_bin, workspace_root};
pub use browser::{dump_dom, map_host, require_chromium, screenshot};
pub use checks::{
    dir_bytes, list_keys, put_checked, status_records, status_row, try_get, wait_until,
};
pub use cluster::{Cluster, ClusterOptions, Proc};
pub use data::{md5_hex, quoted_md5, random_bytes};
pub use probe::NodeProbe;
pub use proc::{CmdOutput, run_with_timeout};
pub use s3::{
    RawResponse, S3Failure, completed_upload, create_upload, expect_s3_error, http_client,
    raw_request, s3_client, s3_client_with_timeout, s3_failure, sign_headers,
    sign_headers_for_payload, signed_request, unique_bucket, url_encode_key,
};
pub use server::{KeyPair, Server, ServerOptions};
pub use weed::{Weed, weed_available};
