//! Developer API accounts and HTTP Basic authentication.

use base64::{Engine, engine::general_purpose::STANDARD};

use super::error::ApiError;

/// What an API key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    ReadWrite,
    ReadOnly,
}

/// One `EMAIL:API_KEY` pair the simulator accepts.
#[derive(Clone)]
pub struct Account {
    pub email: String,
    api_key: String,
    pub access: Access,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("email", &self.email)
            .field("access", &self.access)
            .finish_non_exhaustive()
    }
}

/// An account argument that is not `EMAIL:API_KEY`.
#[derive(Debug, thiserror::Error)]
#[error("expected EMAIL:API_KEY with both parts non-empty")]
pub struct InvalidAccount;

impl Account {
    /// Parses `EMAIL:API_KEY` from the command line. The error never echoes
    /// the key.
    pub fn parse(pair: &str, access: Access) -> Result<Self, InvalidAccount> {
        match pair.split_once(':') {
            Some((email, key)) if !email.is_empty() && !key.is_empty() => {
                Ok(Self { email: email.to_owned(), api_key: key.to_owned(), access })
            }
            _ => Err(InvalidAccount),
        }
    }
}

/// The account a request's `Authorization: Basic ...` header names, if the
/// key matches.
pub fn authenticate<'a>(accounts: &'a [Account], header: Option<&str>) -> Result<&'a Account, ApiError> {
    let encoded = header
        .and_then(|h| h.strip_prefix("Basic ").or_else(|| h.strip_prefix("basic ")))
        .ok_or(ApiError::Unauthorized)?;
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| ApiError::Unauthorized)?;
    let decoded = String::from_utf8(decoded).map_err(|_| ApiError::Unauthorized)?;
    let (email, key) = decoded.split_once(':').ok_or(ApiError::Unauthorized)?;
    accounts.iter().find(|a| a.email == email && a.api_key == key).ok_or(ApiError::Unauthorized)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user_pass: &str) -> String {
        format!("Basic {}", STANDARD.encode(user_pass))
    }

    #[test]
    fn matches_email_and_key() {
        let accounts = vec![Account::parse("a@example.com:k1", Access::ReadWrite).expect("valid")];
        assert!(authenticate(&accounts, Some(&basic("a@example.com:k1"))).is_ok());
        for bad in
            [basic("a@example.com:k2"), basic("b@example.com:k1"), "Basic !!".into(), "Bearer x".into()]
        {
            assert!(matches!(authenticate(&accounts, Some(&bad)), Err(ApiError::Unauthorized)), "{bad}");
        }
        assert!(matches!(authenticate(&accounts, None), Err(ApiError::Unauthorized)));
    }

    #[test]
    fn parse_rejects_incomplete_pairs_without_echoing_them() {
        for bad in ["nocolon", ":key", "email:"] {
            let err = Account::parse(bad, Access::ReadOnly).expect_err("invalid");
            assert!(!err.to_string().contains(bad));
        }
    }
}
