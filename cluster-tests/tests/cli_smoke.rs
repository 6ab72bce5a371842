//! Real clients against a server, each with its default settings on the same 300 MiB file
//! (so each switches to multipart): the aws CLI (mb, cp up and down, ls, rm, rb), boto3
//! (`upload_file` / `download_file`) and rclone (`copy` up, `check`, `copy` down). Every
//! download is byte-identical.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cluster_tests::{AwsCli, Server, aws_env, random_bytes, run_with_timeout, unique_bucket};
use md5::{Digest, Md5};

const MIB: usize = 1024 * 1024;
const BIG: usize = 300 * MIB;

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(Server::start)
}

/// A 300 MiB random file shared by the tests, with its hex MD5.
fn big_file() -> &'static (PathBuf, String) {
    static FILE: OnceLock<(tempfile::TempDir, (PathBuf, String))> = OnceLock::new();
    &FILE
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("big file.bin");
            let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
            let mut md5 = Md5::new();
            for _ in 0..BIG / (4 * MIB) {
                let piece = random_bytes(4 * MIB);
                md5.update(&piece);
                out.write_all(&piece).unwrap();
            }
            out.flush().unwrap();
            (dir, (path, hex::encode(md5.finalize())))
        })
        .1
}

/// Hex MD5s of a file and of each `part` sized piece of it, streamed.
fn file_md5s(path: &Path, part: usize) -> (String, Vec<Vec<u8>>) {
    let mut file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    let (mut whole, mut parts) = (Md5::new(), Vec::new());
    let mut buf = vec![0u8; part];
    loop {
        let mut filled = 0;
        while filled < part {
            match file.read(&mut buf[filled..]).unwrap() {
                0 => break,
                n => filled += n,
            }
        }
        if filled == 0 {
            break;
        }
        whole.update(&buf[..filled]);
        parts.push(Md5::digest(&buf[..filled]).to_vec());
    }
    (hex::encode(whole.finalize()), parts)
}

/// Asserts `got` is byte-identical to the big file.
#[track_caller]
fn assert_same_as_big(got: &Path, what: &str) {
    let (path, md5) = big_file();
    let len = std::fs::metadata(got).unwrap().len();
    assert_eq!(len, std::fs::metadata(path).unwrap().len(), "{what}: size");
    assert_eq!(&file_md5s(got, 8 * MIB).0, md5, "{what}: content");
}

#[track_caller]
fn run_ok(mut cmd: Command, what: &str, server: &Server) -> String {
    let t = Instant::now();
    let out = run_with_timeout(&mut cmd, Duration::from_secs(600))
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}\n--- server log tail ---\n{}",
        out.status_text(),
        out.stdout,
        out.stderr,
        server.log_tail()
    );
    eprintln!("{what}: {:.1} s", t.elapsed().as_secs_f64());
    out.stdout
}

#[tokio::test]
async fn aws_cli_mb_cp_ls_rm_rb() {
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    // The CLI's defaults, as a user has them: multipart above 8 MB, CRC checksums.
    let aws = AwsCli::new(server);

    let bucket = unique_bucket("awscli");
    let url = format!("s3://{bucket}");
    aws.ok(&["s3", "mb", &url]);
    let buckets = aws.ok(&["s3", "ls"]);
    assert!(
        buckets.contains(&bucket),
        "`aws s3 ls` lacks {bucket}:\n{buckets}"
    );

    let (up, _) = big_file();
    let obj = format!("{url}/dir/big file.bin");
    let t = Instant::now();
    aws.ok(&["s3", "cp", up.to_str().unwrap(), &obj]);
    eprintln!("aws s3 cp up 300 MiB: {:.1} s", t.elapsed().as_secs_f64());

    let ls = aws.ok(&["s3", "ls", &format!("{url}/dir/")]);
    assert!(
        ls.lines()
            .any(|l| l.contains("big file.bin") && l.contains(&BIG.to_string())),
        "`aws s3 ls` does not show the object with its size:\n{ls}"
    );
    let ls = aws.ok(&["s3", "ls", &url]);
    assert!(
        ls.contains("PRE dir/"),
        "`aws s3 ls` lacks the prefix:\n{ls}"
    );

    let down = dir.path().join("download.bin");
    let t = Instant::now();
    aws.ok(&["s3", "cp", &obj, down.to_str().unwrap()]);
    eprintln!("aws s3 cp down 300 MiB: {:.1} s", t.elapsed().as_secs_f64());
    assert_same_as_big(&down, "aws s3 cp download");

    let head = aws.ok(&[
        "s3api",
        "head-object",
        "--bucket",
        &bucket,
        "--key",
        "dir/big file.bin",
    ]);
    // 300 MiB went up as a multipart upload of 8 MiB parts (the CLI default): the ETag is
    // the MD5 of the part MD5s, with the part count.
    let (_, parts) = file_md5s(up, 8 * MIB);
    let multipart_etag = format!(
        "{}-{}",
        hex::encode(Md5::digest(parts.concat())),
        BIG.div_ceil(8 * MIB)
    );
    assert!(
        head.contains(&format!("\\\"{multipart_etag}\\\"")),
        "head-object ETag should be {multipart_etag}:\n{head}"
    );

    aws.ok(&["s3", "rm", &obj]);
    let ls = aws.run(&["s3", "ls", &format!("{url}/dir/")]);
    assert!(
        !ls.stdout.contains("big file.bin"),
        "object still listed after rm:\n{}",
        ls.stdout
    );
    aws.ok(&["s3", "rb", &url]);
    let buckets = aws.ok(&["s3", "ls"]);
    assert!(
        !buckets.contains(&bucket),
        "bucket still listed after rb:\n{buckets}"
    );
}

/// boto3's managed transfers with their defaults (multipart above 8 MiB, 10 threads, the
/// SDK's default checksums): `upload_file` then `download_file`.
#[tokio::test]
async fn boto3_upload_file_and_download_file() {
    let python = Command::new("python3")
        .args(["-c", "import boto3"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        python,
        "boto3 is not importable: run `python3 -m pip install boto3` (CI's .ci/run does)"
    );
    let server = server();
    let s3 = server.client();
    let bucket = unique_bucket("boto3");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let down = dir.path().join("down.bin");
    let (up, _) = big_file();
    let script = r#"
import sys, boto3
endpoint, bucket, up, down = sys.argv[1:5]
s3 = boto3.client("s3", endpoint_url=endpoint)
s3.upload_file(up, bucket, "boto/big.bin")
s3.download_file(bucket, "boto/big.bin", down)
"#;
    let mut cmd = Command::new("python3");
    aws_env(&mut cmd, server);
    cmd.env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .args(["-c", script, &server.s3_url(), &bucket])
        .arg(up)
        .arg(&down);
    run_ok(cmd, "boto3 upload_file + download_file 300 MiB", server);
    assert_same_as_big(&down, "boto3 download_file");
    let head = s3
        .head_object()
        .bucket(&bucket)
        .key("boto/big.bin")
        .send()
        .await
        .unwrap();
    let etag = head.e_tag().unwrap_or_default();
    assert!(
        etag.ends_with("-38\""),
        "multipart of 8 MiB parts: ETag {etag}"
    );
}

/// rclone (Debian package) with its defaults for S3 (multipart above 200 MiB, 5 MiB
/// chunks, 4 at a time): `copy` up, `check`, `copy` down.
#[tokio::test]
async fn rclone_copy_and_check() {
    let present = Command::new("rclone")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        present,
        "rclone is not on PATH: run `apt-get install rclone` (CI's .ci/run does)"
    );
    let server = server();
    let s3 = server.client();
    let bucket = unique_bucket("rclone");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rclone.conf");
    std::fs::write(&config, "").unwrap();
    let (up, _) = big_file();
    let rclone = |args: &[&str]| {
        let mut cmd = Command::new("rclone");
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("RCLONE_") || k.starts_with("AWS_") {
                cmd.env_remove(k);
            }
        }
        cmd.arg("--config")
            .arg(&config)
            .args(args)
            .env("RCLONE_CONFIG_CAIRN_TYPE", "s3")
            .env("RCLONE_CONFIG_CAIRN_PROVIDER", "Other")
            .env("RCLONE_CONFIG_CAIRN_ACCESS_KEY_ID", &server.root_key().id)
            .env(
                "RCLONE_CONFIG_CAIRN_SECRET_ACCESS_KEY",
                &server.root_key().secret,
            )
            .env("RCLONE_CONFIG_CAIRN_ENDPOINT", server.s3_url())
            .env("RCLONE_CONFIG_CAIRN_REGION", "us-east-1")
            .env("NO_PROXY", "*");
        cmd
    };
    let remote = format!("cairn:{bucket}/rc");
    let src_dir = up.parent().unwrap().to_str().unwrap();
    run_ok(
        rclone(&["copy", src_dir, &remote]),
        "rclone copy up 300 MiB",
        server,
    );
    run_ok(rclone(&["check", src_dir, &remote]), "rclone check", server);
    let down = dir.path().join("down");
    run_ok(
        rclone(&["copy", &remote, down.to_str().unwrap()]),
        "rclone copy down 300 MiB",
        server,
    );
    assert_same_as_big(&down.join("big file.bin"), "rclone copy download");
    let head = s3
        .head_object()
        .bucket(&bucket)
        .key("rc/big file.bin")
        .send()
        .await
        .unwrap();
    let etag = head.e_tag().unwrap_or_default();
    assert!(
        etag.ends_with("-60\""),
        "multipart of 5 MiB chunks: ETag {etag}"
    );
}
