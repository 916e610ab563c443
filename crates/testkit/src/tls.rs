//! Throwaway TLS material for one test: a CA and a server certificate it
//! signed, as PEM files in a temporary directory (removed when dropped).

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// A test CA and a server certificate for `127.0.0.1`, `::1`, `localhost`
/// and the extra IP addresses asked for.
pub struct TestCa {
    dir: tempfile::TempDir,
    ca_pem: String,
}

impl TestCa {
    /// `extra_ips`: addresses besides loopback the server is reached at (for
    /// example the host's address on the pod network).
    pub fn new(extra_ips: &[IpAddr]) -> Self {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.distinguished_name.push(DnType::CommonName, "upstash-rotator test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).expect("self-signed CA");

        let server_key = KeyPair::generate().expect("server key");
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("server params");
        params.distinguished_name.push(DnType::CommonName, "upstash-sim");
        let loopback: [IpAddr; 2] = [[127, 0, 0, 1].into(), std::net::Ipv6Addr::LOCALHOST.into()];
        params.subject_alt_names.extend(loopback.iter().chain(extra_ips).map(|ip| SanType::IpAddress(*ip)));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let issuer = Issuer::new(ca_params, ca_key);
        let server_cert = params.signed_by(&server_key, &issuer).expect("server certificate");

        let dir = tempfile::Builder::new().prefix("upstash-test-ca").tempdir().expect("temp dir");
        let ca_pem = ca_cert.pem();
        for (name, content) in [
            ("ca.pem", ca_pem.as_str()),
            ("server.pem", &server_cert.pem()),
            ("server-key.pem", &server_key.serialize_pem()),
        ] {
            std::fs::write(dir.path().join(name), content).expect("write PEM");
        }
        Self { dir, ca_pem }
    }

    /// The CA certificate (PEM): what `--ca-file`, `SSL_CERT_FILE`,
    /// `NODE_EXTRA_CA_CERTS` or the chart's `upstash.caBundle` take.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The server certificate (PEM), for `upstash-sim --tls-cert`.
    pub fn cert_path(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    /// Its private key (PEM), for `upstash-sim --tls-key`.
    pub fn key_path(&self) -> PathBuf {
        self.dir.path().join("server-key.pem")
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The CA as a root certificate for a reqwest client.
    pub fn reqwest_root(&self) -> reqwest::Certificate {
        reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).expect("CA certificate")
    }
}

/// A client that trusts only the system's CA store, like any client that
/// was not given a test CA.
pub fn system_trust_client() -> reqwest::Client {
    upstash_rotator::tls::install_crypto_provider();
    reqwest::Client::builder().timeout(std::time::Duration::from_secs(10)).build().expect("client")
}
