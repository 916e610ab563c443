//! TLS set-up shared by every binary and test.

use std::sync::Once;

/// Installs `ring` as rustls' process-wide crypto provider.
///
/// kube and reqwest are built without a default provider so that only one
/// (`ring`) is compiled in; rustls then needs it installed before first use.
/// Safe to call any number of times.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // An error means another provider was installed first, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
