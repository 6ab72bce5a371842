//! TLS of the node gRPC listeners (rustls with aws-lc-rs): the identity a node presents, and
//! how every process (node, gateway, admin CLI) dials nodes — plaintext `http://`, or `https://`
//! trusting the certificate authorities of one PEM file, checking each node's certificate
//! against the host name or IP address it is dialed at.

use std::path::{Path, PathBuf};

use anyhow::Context;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

/// Every certificate in a PEM file (at least one), with a readable error otherwise.
pub fn pem_certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let chain = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("cannot read certificates from {}", path.display()))?;
    anyhow::ensure!(!chain.is_empty(), "no certificate in {}", path.display());
    Ok(chain)
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// PEM files of a node gRPC listener's certificate.
#[derive(Debug, Clone)]
pub struct GrpcIdentityFiles {
    /// Certificate chain, leaf first; its names must cover the node's advertised address.
    pub cert: PathBuf,
    /// Private key of the leaf certificate.
    pub key: PathBuf,
}

impl GrpcIdentityFiles {
    /// The listener's TLS configuration; fails on unreadable or invalid files and on a key
    /// that does not fit the certificate, so a node never starts with a listener that cannot
    /// complete a handshake.
    pub fn server_config(&self) -> anyhow::Result<ServerTlsConfig> {
        pem_certificates(&self.cert)?;
        let identity = Identity::from_pem(read(&self.cert)?, read(&self.key)?);
        let config = ServerTlsConfig::new().identity(identity);
        tonic::transport::Server::builder()
            .tls_config(config.clone())
            .with_context(|| {
                format!(
                    "the key in {} does not fit the certificate in {} (or is not a private key)",
                    self.key.display(),
                    self.cert.display()
                )
            })?;
        Ok(config)
    }
}

/// How this process dials nodes: plaintext, or TLS trusting one set of CA certificates.
#[derive(Debug, Clone, Default)]
pub struct Dialer {
    tls: Option<ClientTlsConfig>,
}

impl Dialer {
    /// Plaintext `http://` connections.
    pub fn plaintext() -> Self {
        Self::default()
    }

    /// TLS connections trusting only the CA certificates in the PEM file `ca`.
    pub fn trusting(ca: &Path) -> anyhow::Result<Self> {
        pem_certificates(ca)?;
        let config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca)?));
        Endpoint::from_static("https://localhost")
            .tls_config(config.clone())
            .with_context(|| format!("cannot use the CA certificates in {}", ca.display()))?;
        Ok(Self { tls: Some(config) })
    }

    /// TLS trusting `ca` when given, else plaintext.
    pub fn from_ca(ca: Option<&Path>) -> anyhow::Result<Self> {
        ca.map_or_else(|| Ok(Self::plaintext()), Self::trusting)
    }

    /// Whether connections use TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// An endpoint for `addr` (`host:port`, or a URI whose scheme is replaced by this
    /// dialer's), with TLS configured when this dialer uses it.
    pub fn endpoint(&self, addr: &str) -> Result<Endpoint, tonic::transport::Error> {
        let authority = addr.split_once("://").map_or(addr, |(_, rest)| rest);
        let scheme = if self.is_tls() { "https" } else { "http" };
        let endpoint = Endpoint::from_shared(format!("{scheme}://{authority}"))?;
        match &self.tls {
            Some(tls) => endpoint.tls_config(tls.clone()),
            None => Ok(endpoint),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_dials_http_and_keeps_the_authority() {
        let d = Dialer::plaintext();
        assert_eq!(
            d.endpoint("10.0.0.1:9002").unwrap().uri(),
            "http://10.0.0.1:9002/"
        );
        assert_eq!(
            d.endpoint("https://node-0.cairn:9002").unwrap().uri(),
            "http://node-0.cairn:9002/"
        );
        assert!(d.endpoint("not a uri").is_err());
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = std::env::temp_dir().join(format!("cairn-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "no pem here\n").unwrap();
        let err = Dialer::trusting(&empty).unwrap_err().to_string();
        assert!(err.contains("no certificate"), "{err}");
        let missing = Dialer::trusting(&dir.join("missing.pem")).unwrap_err();
        assert!(
            format!("{missing:#}").contains("missing.pem"),
            "{missing:#}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
