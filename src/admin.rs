//! Admin verbs (`cairn status | layout | key | bucket ...`): gRPC to any node with the cluster
//! secret. Metadata changes are `MetaService.Write` commands (forwarded to the Raft leader by
//! the node), reads are linearizable `MetaService.Read`s.

use std::time::Duration;

use anyhow::{Context, bail};
use cairn_proto::client::Peers;
use cairn_proto::meta::{AccessKey, Bucket, MetaCommand, MetaError, MetaResult, Metadata, Rights};
use cairn_proto::pb::{
    ListRequest, MetaReadRequest, MetaWriteRequest, RecordState, StatusRequest, StatusResponse,
};
use cairn_proto::tls::Dialer;
use uuid::Uuid;

use crate::cli::{AdminArgs, BucketCommand, KeyCommand, LayoutCommand, RightsArgs, WebsiteArgs};
use crate::creds;

/// `println!` that returns write errors (a closed pipe) instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*)?;
    }};
}

mod cluster;
mod rebalance;

/// Upper bound of one admin command.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Page size of the emptiness check before a bucket is deleted.
const EMPTY_CHECK_PAGE: u32 = 1000;

/// A connection to one node.
pub struct Admin {
    peers: Peers,
    node: String,
}

/// Turns a gRPC failure into a one-line error naming the node.
fn rpc_error(addr: &str, status: tonic::Status) -> anyhow::Error {
    use std::error::Error as _;
    let mut detail = status.message().to_string();
    let mut source = status.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !detail.contains(&text) {
            detail = format!("{detail}: {text}");
        }
        source = s.source();
    }
    // A plaintext client is cut off by a TLS listener (or reads its alert as a broken HTTP/2
    // frame); a TLS client fails its handshake with a plaintext one or an unknown certificate.
    let lower = detail.to_ascii_lowercase();
    let tls_hint = [
        "connection closed",
        "broken pipe",
        "connection reset",
        "invalid size",
        "tls",
        "handshake",
        "certificate",
        "corrupt message",
    ]
    .iter()
    .any(|w| lower.contains(w));
    let hint = if tls_hint {
        " (nodes serving gRPC over TLS need --grpc-tls-ca with their CA; plaintext nodes need it unset)"
    } else {
        ""
    };
    match status.code() {
        tonic::Code::Unavailable | tonic::Code::Cancelled => {
            anyhow::anyhow!("cannot reach node {addr}: {detail}{hint}")
        }
        tonic::Code::Unauthenticated => {
            anyhow::anyhow!("node {addr} refused the cluster secret: {detail}")
        }
        code => anyhow::anyhow!("node {addr}: {detail} ({code:?}){hint}"),
    }
}

/// One line for a refused metadata command.
fn meta_error(e: MetaError, subject: &str) -> anyhow::Error {
    match e {
        MetaError::BucketAlreadyExists | MetaError::BucketAlreadyOwnedByYou => {
            anyhow::anyhow!("bucket already exists: {subject}")
        }
        e => anyhow::anyhow!("{e}"),
    }
}

impl Admin {
    pub fn connect(args: &AdminArgs) -> anyhow::Result<Self> {
        let secret =
            creds::admin_cluster_secret(args.cluster_secret_file.as_deref(), &args.data_dir)?;
        let peers = Peers::new(&secret)
            .map_err(|e| anyhow::anyhow!("{}", e.message()))?
            .with_dialer(Dialer::from_ca(args.grpc_tls_ca.as_deref())?);
        Ok(Self {
            peers,
            node: args.node.clone(),
        })
    }

    async fn status_of(&self, addr: &str) -> anyhow::Result<StatusResponse> {
        let mut client = self.peers.admin(addr).map_err(|e| rpc_error(addr, e))?;
        let resp = client
            .status(StatusRequest {})
            .await
            .map_err(|e| rpc_error(addr, e))?;
        Ok(resp.into_inner())
    }

    /// Linearizable read of the whole metadata: (applied index, state).
    async fn read(&self) -> anyhow::Result<(u64, Metadata)> {
        let addr = &self.node;
        let mut client = self.peers.meta(addr).map_err(|e| rpc_error(addr, e))?;
        let state = client
            .read(MetaReadRequest::default())
            .await
            .map_err(|e| rpc_error(addr, e))?
            .into_inner();
        let meta: Metadata = serde_json::from_slice(&state.state)
            .context("node sent metadata this cairn cannot decode")?;
        Ok((state.applied_index, meta))
    }

    /// Commits a metadata command; a refusal is an `Err(MetaError)` inside `Ok`.
    async fn write(&self, cmd: &MetaCommand) -> anyhow::Result<Result<MetaResult, MetaError>> {
        let addr = &self.node;
        let mut client = self.peers.meta(addr).map_err(|e| rpc_error(addr, e))?;
        let command = serde_json::to_vec(cmd)?;
        let resp = client
            .write(MetaWriteRequest { command })
            .await
            .map_err(|e| rpc_error(addr, e))?
            .into_inner();
        let result: MetaResult = serde_json::from_slice(&resp.result)
            .context("node sent a result this cairn cannot decode")?;
        Ok(result.into_result())
    }
}

async fn with_timeout<T>(
    node: &str,
    fut: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::time::timeout(COMMAND_TIMEOUT, fut)
        .await
        .map_err(|_| {
            anyhow::anyhow!("timed out after {COMMAND_TIMEOUT:?} talking to node {node}")
        })?
}

pub async fn status(args: AdminArgs) -> anyhow::Result<()> {
    let admin = Admin::connect(&args)?;
    with_timeout(&args.node, cluster::print_status(&admin)).await
}

pub async fn layout(args: AdminArgs, command: LayoutCommand) -> anyhow::Result<()> {
    let admin = Admin::connect(&args)?;
    if command.waits() {
        // Each request inside has its own timeout.
        return cluster::layout(&admin, command).await;
    }
    with_timeout(&args.node, cluster::layout(&admin, command)).await
}

pub async fn key(args: AdminArgs, command: KeyCommand) -> anyhow::Result<()> {
    let admin = Admin::connect(&args)?;
    with_timeout(&args.node, async {
        match command {
            KeyCommand::Create {
                name,
                create_bucket,
            } => key_create(&admin, &name, create_bucket).await,
            KeyCommand::List => key_list(&admin).await,
            KeyCommand::Delete { id } => key_delete(&admin, &id).await,
            KeyCommand::Allow(r) => key_rights(&admin, &r, true).await,
            KeyCommand::Deny(r) => key_rights(&admin, &r, false).await,
        }
    })
    .await
}

pub async fn bucket(args: AdminArgs, command: BucketCommand) -> anyhow::Result<()> {
    let admin = Admin::connect(&args)?;
    with_timeout(&args.node, async {
        match command {
            BucketCommand::Create { name, region } => bucket_create(&admin, &name, &region).await,
            BucketCommand::List => bucket_list(&admin).await,
            BucketCommand::Delete { name } => bucket_delete(&admin, &name).await,
            BucketCommand::Website(args) => bucket_website(&admin, &args).await,
        }
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// keys
// ---------------------------------------------------------------------------------------------

async fn key_create(admin: &Admin, name: &str, create_bucket: bool) -> anyhow::Result<()> {
    let name = name.trim();
    if name.is_empty() {
        bail!("a key needs a name");
    }
    let pair = creds::new_key();
    let key = AccessKey {
        id: pair.id.clone(),
        secret: pair.secret.clone(),
        name: name.to_string(),
        created_ms: cairn_proto::ids::now_ms(),
        allow_create_bucket: create_bucket,
        buckets: Default::default(),
    };
    admin
        .write(&MetaCommand::CreateKey { key })
        .await?
        .map_err(|e| meta_error(e, name))?;
    out!("access_key_id={}", pair.id);
    out!("secret_access_key={}", pair.secret);
    Ok(())
}

/// `rw-` style summary of rights.
fn rights_letters(r: Rights) -> String {
    [(r.read, 'r'), (r.write, 'w'), (r.owner, 'o')]
        .iter()
        .map(|&(set, c)| if set { c } else { '-' })
        .collect()
}

fn rights_words(r: Rights) -> String {
    let words: Vec<&str> = [(r.read, "read"), (r.write, "write"), (r.owner, "owner")]
        .iter()
        .filter(|(set, _)| *set)
        .map(|(_, w)| *w)
        .collect();
    if words.is_empty() {
        "none".into()
    } else {
        words.join(", ")
    }
}

fn bucket_name(meta: &Metadata, id: &Uuid) -> String {
    meta.bucket_by_id(id)
        .map(|b| b.name.clone())
        .unwrap_or_else(|| id.to_string())
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

async fn key_list(admin: &Admin) -> anyhow::Result<()> {
    let (_, meta) = admin.read().await?;
    let rows: Vec<Vec<String>> = meta
        .keys
        .values()
        .map(|k| {
            let mut buckets: Vec<String> = k
                .buckets
                .iter()
                .map(|(id, r)| format!("{}:{}", bucket_name(&meta, id), rights_letters(*r)))
                .collect();
            buckets.sort();
            vec![
                k.id.clone(),
                k.name.clone(),
                yes_no(k.allow_create_bucket).to_string(),
                format_ms(k.created_ms),
                if buckets.is_empty() {
                    "-".into()
                } else {
                    buckets.join(" ")
                },
            ]
        })
        .collect();
    if rows.is_empty() {
        out!("no keys (create one with `cairn key create NAME`)");
        return Ok(());
    }
    print_table(
        &[
            "ID",
            "NAME",
            "CREATE_BUCKET",
            "CREATED",
            "BUCKETS (r=read w=write o=owner)",
        ],
        &rows,
    )?;
    Ok(())
}

async fn key_delete(admin: &Admin, id: &str) -> anyhow::Result<()> {
    admin
        .write(&MetaCommand::DeleteKey { id: id.to_string() })
        .await?
        .map_err(|e| meta_error(e, id))?;
    out!("deleted key {id}");
    Ok(())
}

async fn key_rights(admin: &Admin, args: &RightsArgs, allow: bool) -> anyhow::Result<()> {
    let (_, meta) = admin.read().await?;
    if !meta.keys.contains_key(&args.id) {
        bail!("no such access key: {}", args.id);
    }
    // clap guarantees --bucket and/or --create-bucket.
    if let Some((bucket, rights)) = args.bucket_rights() {
        let Some(b) = meta.bucket(bucket) else {
            bail!("no such bucket: {bucket}");
        };
        let cmd = MetaCommand::SetRights {
            key_id: args.id.clone(),
            bucket: bucket.to_string(),
            rights,
            allow,
        };
        let result = admin
            .write(&cmd)
            .await?
            .map_err(|e| meta_error(e, bucket))?;
        let now = match result {
            MetaResult::Key(k) => k.rights(&b.id),
            _ => rights,
        };
        out!("{} on {bucket}: {}", args.id, rights_words(now));
    }
    if args.create_bucket {
        let cmd = MetaCommand::SetCreateBucket {
            key_id: args.id.clone(),
            allow,
        };
        admin
            .write(&cmd)
            .await?
            .map_err(|e| meta_error(e, &args.id))?;
        out!("{} may create buckets: {}", args.id, yes_no(allow));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// buckets
// ---------------------------------------------------------------------------------------------

/// S3 bucket naming rules (the DNS-compatible subset every client accepts).
pub fn check_bucket_name(name: &str) -> anyhow::Result<()> {
    let valid_chars = name
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.');
    let alnum = |c: Option<u8>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let looks_like_ip = name.split('.').count() == 4
        && name
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()));
    if !(3..=63).contains(&name.len())
        || !valid_chars
        || !alnum(name.bytes().next())
        || !alnum(name.bytes().last())
        || name.contains("..")
        || name.contains(".-")
        || name.contains("-.")
        || looks_like_ip
    {
        bail!(
            "invalid bucket name {name:?}: use 3-63 lower-case letters, digits, '-' and '.', \
             starting and ending with a letter or digit"
        );
    }
    Ok(())
}

async fn bucket_create(admin: &Admin, name: &str, region: &str) -> anyhow::Result<()> {
    check_bucket_name(name)?;
    let cmd = MetaCommand::CreateBucket {
        id: Uuid::new_v4(),
        name: name.to_string(),
        owner: String::new(),
        region: region.to_string(),
        created_ms: cairn_proto::ids::now_ms(),
    };
    let result = admin.write(&cmd).await?.map_err(|e| meta_error(e, name))?;
    match result {
        MetaResult::Bucket(b) => out!("{}", b.id),
        _ => {
            let MetaCommand::CreateBucket { id, .. } = cmd else {
                unreachable!()
            };
            out!("{id}");
        }
    }
    Ok(())
}

fn format_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| "-".into())
}

async fn bucket_list(admin: &Admin) -> anyhow::Result<()> {
    let (_, meta) = admin.read().await?;
    let rows: Vec<Vec<String>> = meta
        .buckets
        .values()
        .map(|b: &Bucket| {
            vec![
                b.name.clone(),
                b.id.to_string(),
                format_ms(b.created_ms),
                if b.owner.is_empty() {
                    "-".into()
                } else {
                    b.owner.clone()
                },
                b.region.clone(),
            ]
        })
        .collect();
    if rows.is_empty() {
        out!("no buckets");
        return Ok(());
    }
    print_table(&["NAME", "ID", "CREATED", "OWNER", "REGION"], &rows)?;
    Ok(())
}

/// Whether any node of the layout holds a readable object of the bucket. Every node must
/// answer: a node that cannot be asked might hold the only copy of an object.
async fn bucket_has_objects(
    admin: &Admin,
    meta: &Metadata,
    bucket: &Bucket,
) -> anyhow::Result<bool> {
    let complete = RecordState::Complete as i32;
    for node in &meta.layout.nodes {
        let mut client = admin
            .peers
            .objects(&node.addr)
            .map_err(|e| rpc_error(&node.addr, e))?;
        let mut start_after = String::new();
        loop {
            let req = ListRequest {
                bucket_id: bucket.id.as_bytes().to_vec(),
                start_after: start_after.clone(),
                limit: EMPTY_CHECK_PAGE,
                headers_only: true,
                ..Default::default()
            };
            let page = client
                .list(req)
                .await
                .map_err(|e| rpc_error(&node.addr, e))
                .with_context(|| format!("cannot check that bucket {} is empty", bucket.name))?
                .into_inner();
            if page.records.iter().any(|r| r.state == complete) {
                return Ok(true);
            }
            match page.records.last() {
                Some(last) if page.truncated => start_after = last.key.clone(),
                _ => break,
            }
        }
    }
    Ok(false)
}

async fn bucket_delete(admin: &Admin, name: &str) -> anyhow::Result<()> {
    let (_, meta) = admin.read().await?;
    let Some(bucket) = meta.bucket(name) else {
        bail!("no such bucket: {name}");
    };
    if bucket_has_objects(admin, &meta, bucket).await? {
        bail!("bucket {name} is not empty: delete its objects first");
    }
    let cmd = MetaCommand::DeleteBucket {
        name: name.to_string(),
        id: Some(bucket.id),
    };
    admin.write(&cmd).await?.map_err(|e| meta_error(e, name))?;
    out!("deleted bucket {name}");
    Ok(())
}

async fn bucket_website(admin: &Admin, args: &WebsiteArgs) -> anyhow::Result<()> {
    let website = args.config();
    if let Some(config) = &website {
        config
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid website configuration: {e}"))?;
    }
    let cmd = MetaCommand::SetBucketWebsite {
        bucket: args.name.clone(),
        website: website.clone(),
    };
    admin
        .write(&cmd)
        .await?
        .map_err(|e| meta_error(e, &args.name))?;
    match website {
        None => out!("website disabled for bucket {}", args.name),
        Some(c) => {
            let shown = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
            out!(
                "website enabled for bucket {}: index {}, error {}, spa fallback {}",
                args.name,
                shown(&c.index_document),
                shown(&c.error_document),
                shown(&c.spa_fallback)
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// output
// ---------------------------------------------------------------------------------------------

/// Left-aligned columns separated by two spaces (the last column unpadded).
fn format_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, cell) in cells.into_iter().enumerate() {
            out.push_str(cell);
            if i < last {
                let pad = widths[i] - cell.chars().count() + 2;
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
        out
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

fn print_table(headers: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    use std::io::Write as _;
    std::io::stdout().write_all(format_table(headers, rows).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_s3_rules() {
        for ok in ["abc", "my-bucket", "a.b.c", "1bucket", &"a".repeat(63)] {
            assert!(check_bucket_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            "Abc",
            "-abc",
            "abc-",
            "a..b",
            "a_b",
            "192.168.1.1",
            &"a".repeat(64),
            "a.-b",
        ] {
            assert!(check_bucket_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tables_align_columns() {
        let rows = vec![
            vec!["a".to_string(), "long value".to_string(), "x".to_string()],
            vec!["bbbb".to_string(), "v".to_string(), "y".to_string()],
        ];
        assert_eq!(
            format_table(&["H1", "H2", "H3"], &rows),
            "H1    H2          H3\na     long value  x\nbbbb  v           y\n"
        );
    }

    #[test]
    fn rights_render() {
        assert_eq!(rights_letters(Rights::ALL), "rwo");
        let r = Rights {
            read: true,
            ..Default::default()
        };
        assert_eq!(rights_letters(r), "r--");
        assert_eq!(rights_words(r), "read");
        assert_eq!(rights_words(Rights::default()), "none");
    }
}
