//! The real aws CLI against a server: mb, cp up and down (100 MiB), ls, rm, rb.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cluster_tests::{CmdOutput, Server, md5_hex, random_bytes, run_with_timeout, unique_bucket};

struct Aws<'a> {
    server: &'a Server,
    config: &'a Path,
    credentials: &'a Path,
}

impl Aws<'_> {
    fn run(&self, args: &[&str]) -> CmdOutput {
        let mut cmd = Command::new("aws");
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("AWS_") {
                cmd.env_remove(k);
            }
        }
        cmd.args(args)
            .arg("--endpoint-url")
            .arg(self.server.s3_url())
            .env("AWS_ACCESS_KEY_ID", &self.server.root_key().id)
            .env("AWS_SECRET_ACCESS_KEY", &self.server.root_key().secret)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", self.config)
            .env("AWS_SHARED_CREDENTIALS_FILE", self.credentials)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_PAGER", "")
            .env("NO_PROXY", "*");
        run_with_timeout(&mut cmd, Duration::from_secs(600))
            .unwrap_or_else(|e| panic!("cannot run aws: {e}"))
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.success(),
            "`aws {}` failed ({}):\nstdout:\n{}\nstderr:\n{}\n--- server log tail ---\n{}",
            args.join(" "),
            out.status_text(),
            out.stdout,
            out.stderr,
            self.server.log_tail()
        );
        out.stdout
    }
}

fn aws_cli_present() -> bool {
    Command::new("aws")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test]
async fn aws_cli_mb_cp_ls_rm_rb() {
    assert!(
        aws_cli_present(),
        "the aws CLI is not on PATH: run `python3 -m pip install awscli` (CI's .ci/run does)"
    );
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    let credentials = dir.path().join("credentials");
    // The CLI's defaults, as a user has them: multipart above 8 MB, CRC checksums.
    std::fs::write(&config, "[default]\nregion = us-east-1\n").unwrap();
    std::fs::write(&credentials, "").unwrap();
    let aws = Aws {
        server: &server,
        config: &config,
        credentials: &credentials,
    };

    let bucket = unique_bucket("awscli");
    let url = format!("s3://{bucket}");
    aws.ok(&["s3", "mb", &url]);
    let buckets = aws.ok(&["s3", "ls"]);
    assert!(
        buckets.contains(&bucket),
        "`aws s3 ls` lacks {bucket}:\n{buckets}"
    );

    let data = random_bytes(100 * 1024 * 1024);
    let up = dir.path().join("upload.bin");
    std::fs::write(&up, &data).unwrap();
    let obj = format!("{url}/dir/big file.bin");
    aws.ok(&["s3", "cp", up.to_str().unwrap(), &obj]);

    let ls = aws.ok(&["s3", "ls", &format!("{url}/dir/")]);
    assert!(
        ls.lines()
            .any(|l| l.contains("big file.bin") && l.contains(&data.len().to_string())),
        "`aws s3 ls` does not show the object with its size:\n{ls}"
    );
    let ls = aws.ok(&["s3", "ls", &url]);
    assert!(
        ls.contains("PRE dir/"),
        "`aws s3 ls` lacks the prefix:\n{ls}"
    );

    let down = dir.path().join("download.bin");
    aws.ok(&["s3", "cp", &obj, down.to_str().unwrap()]);
    let got = std::fs::read(&down).unwrap();
    assert_eq!(got.len(), data.len(), "downloaded size");
    assert_eq!(md5_hex(&got), md5_hex(&data), "downloaded content");

    let head = aws.ok(&[
        "s3api",
        "head-object",
        "--bucket",
        &bucket,
        "--key",
        "dir/big file.bin",
    ]);
    // 100 MiB went up as a multipart upload of 8 MiB parts (the CLI default): the ETag is
    // the MD5 of the part MD5s, with the part count.
    let part_md5s: Vec<u8> = data
        .chunks(8 * 1024 * 1024)
        .flat_map(|part| hex::decode(md5_hex(part)).unwrap())
        .collect();
    let multipart_etag = format!(
        "{}-{}",
        md5_hex(&part_md5s),
        data.len().div_ceil(8 * 1024 * 1024)
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
