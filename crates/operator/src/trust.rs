//! The CA certificates trusted for the Upstash API besides the system's
//! store: `--ca-file` (where the chart mounts `upstash.caBundle`). Read once
//! at start, so a bad file stops the operator before it reconciles anything.

use std::path::{Path, PathBuf};

use rustls::pki_types::{CertificateDer, pem::PemObject as _};

/// Why `--ca-file` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CaFileError {
    #[error("--ca-file {}: cannot read it: {source}", path.display())]
    Unreadable { path: PathBuf, source: std::io::Error },
    #[error("--ca-file {}: not a PEM file ({reason})", path.display())]
    NotPem { path: PathBuf, reason: String },
    #[error(
        "--ca-file {}: no BEGIN CERTIFICATE block in it; expected one or more PEM CA certificates",
        path.display()
    )]
    NoCertificate { path: PathBuf },
    #[error("--ca-file {}: certificate {index} cannot be a trust anchor ({reason})", path.display())]
    Invalid { path: PathBuf, index: usize, reason: String },
}

/// The certificates of a PEM bundle, each checked to be usable as a root.
/// Other PEM blocks in the file (a key, comments) are ignored.
pub fn load_ca_file(path: &Path) -> Result<Vec<reqwest::Certificate>, CaFileError> {
    let bytes =
        std::fs::read(path).map_err(|source| CaFileError::Unreadable { path: path.to_owned(), source })?;
    let ders = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CaFileError::NotPem { path: path.to_owned(), reason: e.to_string() })?;
    if ders.is_empty() {
        return Err(CaFileError::NoCertificate { path: path.to_owned() });
    }
    let mut roots = rustls::RootCertStore::empty();
    ders.into_iter()
        .enumerate()
        .map(|(i, der)| {
            let invalid =
                |reason: String| CaFileError::Invalid { path: path.to_owned(), index: i + 1, reason };
            // The same parse the TLS verifier makes, so it can never fail later.
            roots.add(der.clone()).map_err(|e| invalid(e.to_string()))?;
            reqwest::Certificate::from_der(&der).map_err(|e| invalid(e.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(content: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), content).expect("write");
        file
    }

    #[test]
    fn unusable_files_are_clear_errors() {
        let missing = load_ca_file(Path::new("/nonexistent/ca.pem")).expect_err("missing");
        assert!(
            missing.to_string().starts_with("--ca-file /nonexistent/ca.pem: cannot read it"),
            "{missing}"
        );

        let empty = file("just some text\n");
        let err = load_ca_file(empty.path()).expect_err("no certificate");
        assert!(err.to_string().contains("no BEGIN CERTIFICATE block"), "{err}");

        let broken = file("-----BEGIN CERTIFICATE-----\n%%%\n-----END CERTIFICATE-----\n");
        let err = load_ca_file(broken.path()).expect_err("bad base64");
        assert!(err.to_string().contains("not a PEM file"), "{err}");

        let not_x509 = file("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
        let err = load_ca_file(not_x509.path()).expect_err("not a certificate");
        assert!(err.to_string().contains("certificate 1 cannot be a trust anchor"), "{err}");
    }
}
