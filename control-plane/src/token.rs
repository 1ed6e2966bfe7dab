//! The shared bearer token that authorizes uploads.
//!
//! It comes from a file or from the environment, never from a flag: flags show up in `ps` and shell history.

use std::path::Path;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{Error, ErrorKind, Result};

/// The environment variable read when no `--token-file` is given.
pub const TOKEN_ENV: &str = "PORTCULLIS_TOKEN";

/// Reads the token from `file` if given, else from [`TOKEN_ENV`].
///
/// Trailing line endings are trimmed from the file (editors and `echo` add one).
///
/// # Errors
///
/// If the file cannot be read, or neither source yields a non-empty token.
pub fn load(file: Option<&Path>) -> Result<String> {
    let token = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Error::new(ErrorKind::Usage, format!("cannot read token file {}: {e}", path.display())))?;
            text.trim_end_matches(['\r', '\n']).to_owned()
        }
        None => std::env::var(TOKEN_ENV).unwrap_or_default(),
    };
    if token.is_empty() {
        let source = match file {
            Some(path) => format!("token file {} is empty", path.display()),
            None => format!("no token: set {TOKEN_ENV} or pass --token-file PATH"),
        };
        return Err(Error::new(ErrorKind::Usage, source));
    }
    Ok(token)
}

/// A token kept only as its SHA-256, compared in constant time.
#[derive(Clone)]
pub struct TokenCheck {
    digest: [u8; 32],
}

impl TokenCheck {
    /// Remembers the digest of `token`.
    pub fn new(token: &str) -> Self {
        TokenCheck { digest: Sha256::digest(token.as_bytes()).into() }
    }

    /// Whether an `Authorization` header value carries the token as `Bearer TOKEN`.
    ///
    /// Comparing digests makes the comparison constant-time in the token's length as well as its contents.
    pub fn authorizes(&self, authorization: &[u8]) -> bool {
        let Some(presented) = bearer(authorization) else {
            return false;
        };
        let digest: [u8; 32] = Sha256::digest(presented).into();
        digest.ct_eq(&self.digest).into()
    }
}

/// The credentials of a `Bearer` authorization value (scheme matched case-insensitively).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"bearer") || !rest.starts_with(b" ") {
        return None;
    }
    let credentials = rest.trim_ascii();
    (!credentials.is_empty()).then_some(credentials)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_the_exact_bearer_token() {
        let check = TokenCheck::new("s3cret");
        assert!(check.authorizes(b"Bearer s3cret"));
        assert!(check.authorizes(b"bearer  s3cret"));
        for value in
            [&b""[..], b"Bearer", b"Bearer ", b"Bearer s3cre", b"Bearer s3cret2", b"Basic s3cret", b"Bearers3cret"]
        {
            assert!(!check.authorizes(value), "{}", String::from_utf8_lossy(value));
        }
    }

    #[test]
    fn token_file_is_trimmed_of_its_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "abc\n").unwrap();
        assert_eq!(load(Some(&path)).unwrap(), "abc");
        std::fs::write(&path, "\n").unwrap();
        assert_eq!(load(Some(&path)).unwrap_err().kind(), ErrorKind::Usage);
    }
}
