//! HTTPS for the simulator: a certificate chain and its key from PEM files,
//! served with rustls' `ring` provider. Errors name the file and the
//! problem, never the file's content (it holds a private key).

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use rustls::{
    ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _},
};

/// Why the certificate or key cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("--tls-cert {}: {reason}", path.display())]
    Cert { path: PathBuf, reason: String },
    #[error("--tls-key {}: {reason}", path.display())]
    Key { path: PathBuf, reason: String },
    #[error("--tls-cert and --tls-key cannot be served together: {0}")]
    Unusable(String),
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))
}

/// The chain in `cert` (leaf first) and the private key in `key`, both PEM.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let cert_error = |reason: String| TlsError::Cert { path: cert.to_owned(), reason };
    let key_error = |reason: String| TlsError::Key { path: key.to_owned(), reason };

    let cert_pem = read(cert).map_err(cert_error)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_error(format!("not a PEM certificate chain ({e})")))?;
    if chain.is_empty() {
        return Err(cert_error("no BEGIN CERTIFICATE block in it".into()));
    }
    let key_pem = read(key).map_err(key_error)?;
    let private_key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| key_error(format!("no usable PEM private key in it ({e})")))?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Unusable(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(|e| TlsError::Unusable(e.to_string()))?;
    // The server speaks HTTP/1.1 only; say so, so clients never try h2.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(content: &[u8]) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), content).expect("write");
        file
    }

    #[test]
    fn missing_and_malformed_files_are_named() {
        let missing = Path::new("/nonexistent/cert.pem");
        let key = temp_file(b"");
        let err = server_config(missing, key.path()).expect_err("missing cert");
        assert!(err.to_string().starts_with("--tls-cert /nonexistent/cert.pem: cannot read it"), "{err}");

        let not_pem = temp_file(b"hello");
        let err = server_config(not_pem.path(), key.path()).expect_err("not PEM");
        assert!(err.to_string().contains("no BEGIN CERTIFICATE block"), "{err}");

        let garbage = temp_file(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
        let secret_key =
            temp_file(b"-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END PRIVATE KEY-----\n");
        let err = server_config(garbage.path(), secret_key.path()).expect_err("garbage");
        assert!(matches!(err, TlsError::Unusable(_)), "{err}");
        assert!(!err.to_string().contains("c2VjcmV0"), "the key's content is never shown: {err}");

        let err = server_config(garbage.path(), not_pem.path()).expect_err("no key");
        assert!(err.to_string().contains("--tls-key"), "{err}");
    }
}
