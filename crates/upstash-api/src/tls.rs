//! Recognising a refused server certificate in a reqwest error. The TLS
//! handshake fails before any request is sent, so such a failure is never a
//! reset that may have happened, and it needs a person: trust the CA.

use std::error::Error as StdError;

use rustls::CertificateError;

/// Why the server's certificate was refused, if that is why `error` happened.
pub(crate) fn refused_certificate(error: &(dyn StdError + 'static)) -> Option<String> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(rustls::Error::InvalidCertificate(problem)) = e.downcast_ref::<rustls::Error>() {
            return Some(describe(problem));
        }
        // io::Error's `source()` skips the error it wraps; rustls' is there.
        if let Some(inner) = e.downcast_ref::<std::io::Error>().and_then(std::io::Error::get_ref)
            && let Some(found) = refused_certificate(inner)
        {
            return Some(found);
        }
        current = e.source();
    }
    None
}

fn describe(problem: &CertificateError) -> String {
    use CertificateError as C;
    match problem {
        C::UnknownIssuer | C::BadSignature => {
            "is not signed by a certificate authority this operator trusts".into()
        }
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            "does not name the host of --upstash-api-url".into()
        }
        C::Expired | C::ExpiredContext { .. } => "has expired".into(),
        C::NotValidYet | C::NotValidYetContext { .. } => "is not valid yet".into(),
        C::Revoked => "is revoked".into(),
        other => format!("is invalid ({other:?})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_certificate_problem_behind_io_errors() {
        let rustls_error = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls_error);
        #[derive(Debug, thiserror::Error)]
        #[error("connect failed")]
        struct Wrapper(#[source] std::io::Error);
        let found = refused_certificate(&Wrapper(io)).expect("found");
        assert!(found.contains("not signed by a certificate authority"), "{found}");
    }

    #[test]
    fn other_failures_are_not_certificate_problems() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(refused_certificate(&refused), None);
        let alert =
            std::io::Error::other(rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure));
        assert_eq!(refused_certificate(&alert), None);
    }
}
