//! TLS for the S3 and website listeners: a certificate chain and private key from PEM files,
//! HTTP/2 and HTTP/1.1 offered through ALPN.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use cairn_proto::tls::pem_certificates;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::aws_lc_rs;
use tokio_rustls::rustls::pki_types::PrivateKeyDer;
use tokio_rustls::rustls::pki_types::pem::PemObject;

/// PEM files of a listener's certificate.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key (PKCS#8, PKCS#1 or SEC1) of the leaf certificate.
    pub key: PathBuf,
}

/// A TLS acceptor for `files`; fails with a readable message on an unreadable or invalid file
/// or a key that does not match the certificate.
pub fn acceptor(files: &TlsFiles) -> anyhow::Result<TlsAcceptor> {
    let chain = pem_certificates(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("cannot read a private key from {}", files.key.display()))?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .with_context(|| {
            format!(
                "the key in {} does not fit the certificate in {}",
                files.key.display(),
                files.cert.display()
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
