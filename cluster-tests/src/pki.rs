//! A throwaway certificate authority for TLS tests: a CA and one server certificate it signed,
//! written as PEM files in a temp dir.

use std::path::PathBuf;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa};

/// A test CA, a server certificate it signed and a key that fits no certificate, as PEM files;
/// the files go away on drop.
pub struct TestPki {
    dir: tempfile::TempDir,
    /// The CA certificate (PEM text).
    pub ca_pem: String,
    /// The CA certificate as a file.
    pub ca: PathBuf,
    /// Server certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key of `cert`.
    pub key: PathBuf,
    /// A key that belongs to no certificate here.
    pub other_key: PathBuf,
}

impl TestPki {
    /// A new CA named `name` and its server certificate for `localhost` and `127.0.0.1`.
    pub fn new(name: &str) -> TestPki {
        Self::for_names(name, &["localhost", "127.0.0.1"])
    }

    /// A new CA named `name` and its server certificate for `names` (DNS names or IP
    /// addresses).
    pub fn for_names(name: &str, names: &[&str]) -> TestPki {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, name);
        let ca =
            CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap()).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let leaf = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        let write = |file: &str, text: &str| {
            let path = dir.path().join(file);
            std::fs::write(&path, text).unwrap();
            path
        };
        TestPki {
            ca: write("ca.pem", &ca.pem()),
            cert: write("cert.pem", &format!("{}{}", leaf.pem(), ca.pem())),
            key: write("key.pem", &key.serialize_pem()),
            other_key: write(
                "other-key.pem",
                &rcgen::KeyPair::generate().unwrap().serialize_pem(),
            ),
            ca_pem: ca.pem(),
            dir,
        }
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}
