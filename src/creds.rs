//! Credentials: the cluster secret (environment, file, or the data dir) and S3 access keys.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// Environment variable holding the cluster secret itself.
pub const SECRET_ENV: &str = "CAIRN_CLUSTER_SECRET";
/// File name of the cluster secret inside a data dir.
pub const SECRET_FILE: &str = "cluster_secret";

/// An S3 access key: (access key id, secret access key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPair {
    pub id: String,
    pub secret: String,
}

/// A new access key id: `GK` followed by 24 upper-case hex digits (96 random bits).
pub fn new_key_id() -> String {
    let bytes: [u8; 12] = rand::random();
    format!("GK{}", hex::encode_upper(bytes))
}

/// A new secret access key: 64 lower-case hex digits (256 random bits).
pub fn new_key_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

/// A fresh random key pair.
pub fn new_key() -> KeyPair {
    KeyPair {
        id: new_key_id(),
        secret: new_key_secret(),
    }
}

/// The key given by `CAIRN_ACCESS_KEY_ID` + `CAIRN_SECRET_ACCESS_KEY`, if both are set.
pub fn env_key() -> anyhow::Result<Option<KeyPair>> {
    let get = |name: &str| {
        std::env::var(name)
            .ok()
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    match (get("CAIRN_ACCESS_KEY_ID"), get("CAIRN_SECRET_ACCESS_KEY")) {
        (Some(id), Some(secret)) => {
            if !id.chars().all(|c| c.is_ascii_alphanumeric()) {
                bail!("CAIRN_ACCESS_KEY_ID must be ASCII letters and digits");
            }
            if !secret.chars().all(|c| c.is_ascii_graphic()) {
                bail!("CAIRN_SECRET_ACCESS_KEY must be printable ASCII without spaces");
            }
            Ok(Some(KeyPair { id, secret }))
        }
        (None, None) => Ok(None),
        _ => bail!("set both CAIRN_ACCESS_KEY_ID and CAIRN_SECRET_ACCESS_KEY, or neither"),
    }
}

/// Trims a secret and checks it can travel in a gRPC header.
fn validate(secret: String, origin: &str) -> anyhow::Result<String> {
    let secret = secret.trim().to_string();
    if secret.is_empty() {
        bail!("the cluster secret from {origin} is empty");
    }
    if !secret.chars().all(|c| c.is_ascii_graphic()) {
        bail!("the cluster secret from {origin} must be printable ASCII without spaces");
    }
    Ok(secret)
}

fn read_secret_file(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read cluster secret file {}", path.display()))?;
    validate(text, &path.display().to_string())
}

/// The cluster secret from `CAIRN_CLUSTER_SECRET`, else `--cluster-secret-file`, else
/// `<data_dir>/cluster_secret` if it exists. `None` when none of them is given.
pub fn find_cluster_secret(
    file: Option<&Path>,
    data_dir: Option<&Path>,
) -> anyhow::Result<Option<String>> {
    if let Ok(v) = std::env::var(SECRET_ENV)
        && !v.trim().is_empty()
    {
        return validate(v, SECRET_ENV).map(Some);
    }
    if let Some(path) = file {
        return read_secret_file(path).map(Some);
    }
    if let Some(dir) = data_dir {
        let path = dir.join(SECRET_FILE);
        if path.exists() {
            return read_secret_file(&path).map(Some);
        }
    }
    Ok(None)
}

/// Like [`find_cluster_secret`], but on a data dir's first start generates a secret and
/// stores it there (mode 0600, durably) when none is given. A data dir that already ran
/// with a secret from elsewhere never gets a new one: its peers and admins know the old one.
/// Returns the secret and whether it was generated.
pub fn cluster_secret_or_generate(
    file: Option<&Path>,
    data_dir: &Path,
    first_start: bool,
) -> anyhow::Result<(String, bool)> {
    if let Some(secret) = find_cluster_secret(file, Some(data_dir))? {
        return Ok((secret, false));
    }
    if !first_start {
        bail!(
            "no cluster secret: {} has none and this data dir already ran with one from \
             {SECRET_ENV} or --cluster-secret-file; give the same secret again",
            data_dir.display()
        );
    }
    let secret = cairn_proto::secret::generate();
    write_private_durably(&data_dir.join(SECRET_FILE), secret.as_bytes())?;
    Ok((secret, true))
}

/// The secret admin verbs use, or an error telling how to give one.
pub fn admin_cluster_secret(file: Option<&Path>, data_dir: &Path) -> anyhow::Result<String> {
    find_cluster_secret(file, Some(data_dir))?.ok_or_else(|| {
        anyhow::anyhow!(
            "no cluster secret: set {SECRET_ENV}, pass --cluster-secret-file FILE, or point \
             --data-dir at the server's data dir ({} does not exist)",
            data_dir.join(SECRET_FILE).display()
        )
    })
}

/// Writes `bytes` to `path` readable by the owner only: temp file, fsync, rename, fsync dir.
fn write_private_durably(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let write = || -> std::io::Result<()> {
        let mut f = options.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(&dir)?.sync_all()
    };
    write().with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_and_secrets_have_the_documented_shape() {
        let key = new_key();
        assert_eq!(key.id.len(), 26);
        assert!(key.id.starts_with("GK"));
        assert!(
            key.id[2..]
                .chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
        );
        assert_eq!(key.secret.len(), 64);
        assert!(key.secret.chars().all(|c| c.is_ascii_hexdigit()));
        let other = new_key();
        assert_ne!(key.id, other.id);
        assert_ne!(key.secret, other.secret);
    }

    #[test]
    fn generated_secret_is_private_and_reused() {
        let dir = std::env::temp_dir().join(format!("cairn-creds-{}", new_key_id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Skip if the environment overrides the secret.
        if std::env::var_os(SECRET_ENV).is_none() {
            assert!(cluster_secret_or_generate(None, &dir, false).is_err());
            let (first, generated) = cluster_secret_or_generate(None, &dir, true).unwrap();
            assert!(generated);
            assert_eq!(first.len(), 64);
            let (again, generated) = cluster_secret_or_generate(None, &dir, false).unwrap();
            assert!(!generated);
            assert_eq!(first, again);
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(dir.join(SECRET_FILE))
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600);
            }
            assert_eq!(admin_cluster_secret(None, &dir).unwrap(), first);
            let missing = dir.join("nope");
            let err = admin_cluster_secret(None, &missing)
                .unwrap_err()
                .to_string();
            assert!(err.contains("no cluster secret"), "{err}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn secret_files_are_trimmed_and_checked() {
        let dir = std::env::temp_dir().join(format!("cairn-creds-{}", new_key_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("s");
        std::fs::write(&file, "  abc123\n").unwrap();
        assert_eq!(read_secret_file(&file).unwrap(), "abc123");
        std::fs::write(&file, "\n").unwrap();
        assert!(read_secret_file(&file).is_err());
        std::fs::write(&file, "a b").unwrap();
        assert!(read_secret_file(&file).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
