//! HTTPS: a certificate made at start (rcgen) or read from PEM files, served with rustls
//! (the `ring` provider). Each connection shakes hands on its own task, within the
//! handshake timeout (`conn`), so a slow client never holds up the others.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, ServerConfig};

use super::ServeError;

/// Where the certificate comes from.
#[derive(Clone, Debug)]
pub enum Tls {
    /// A self-signed certificate for `localhost` and `127.0.0.1`, made at start.
    SelfSigned,
    /// A certificate chain and its private key, PEM files.
    Pem { cert: PathBuf, key: PathBuf },
}

/// The rustls configuration for `tls`, and the SHA-256 fingerprint of its certificate
/// (`AB:CD:…`, as `openssl x509 -fingerprint -sha256` prints it).
pub(crate) fn server_config(tls: &Tls) -> Result<(Arc<ServerConfig>, String), ServeError> {
    let (chain, key) = match tls {
        Tls::SelfSigned => {
            let made = rcgen::generate_simple_self_signed(vec![
                "localhost".to_owned(),
                "127.0.0.1".to_owned(),
            ])
            .map_err(|e| ServeError::Tls(format!("cannot make a certificate: {e}")))?;
            let key =
                PrivateKeyDer::from(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
            (vec![made.cert.der().clone()], key)
        }
        Tls::Pem { cert, key } => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| pem_error(cert, &e))?;
            if chain.is_empty() {
                return Err(ServeError::Tls(format!(
                    "{}: no certificate in it",
                    cert.display()
                )));
            }
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_error(key, &e))?;
            (chain, key)
        }
    };
    let fingerprint = Sha256::digest(&chain[0])
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|e| ServeError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(config), fingerprint))
}

fn pem_error(path: &Path, error: &dyn std::fmt::Display) -> ServeError {
    ServeError::Tls(format!("{}: {error}", path.display()))
}
