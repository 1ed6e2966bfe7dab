//! `portcullis inspect`: what a bundle file holds, as JSON.

use std::path::{Path, PathBuf};

use portcullis_policies::{bundle, signing, Bundle};
use serde::Serialize;

use crate::error::{Error, ErrorKind, Result};
use crate::keys;

/// The JSON printed by `inspect`.
#[derive(Serialize)]
struct Summary<'a> {
    policy: &'a str,
    revision: u64,
    sha256: String,
    /// The key id in the signature envelope; `null` for an unsigned bundle.
    signed_by: Option<&'a str>,
    /// `unsigned`, `not verified` (no `--trust` given) or `verified`.
    signature: &'static str,
    rules: Vec<RuleSummary<'a>>,
}

/// One rule in [`Summary`].
#[derive(Serialize)]
struct RuleSummary<'a> {
    id: &'a str,
    action: &'static str,
    status: u16,
}

/// Validates the bundle at `path` and returns its summary as pretty-printed JSON.
///
/// Without `trust`, a signature is reported but not checked (the key id is only a claim). With `trust` (public
/// key files), the bundle must be signed by one of them, as a filter with those `trusted_keys` requires.
///
/// # Errors
///
/// [`ErrorKind::InvalidBundle`] with the loader's or the signature check's message, a key file that cannot be
/// read, or an I/O error.
pub fn inspect(path: &Path, trust: &[PathBuf]) -> Result<String> {
    let trusted = keys::load_public(trust)?;
    let bytes =
        std::fs::read(path).map_err(|e| Error::new(ErrorKind::Io, format!("cannot read {}: {e}", path.display())))?;
    let invalid = |e: &dyn std::fmt::Display| {
        Error::new(ErrorKind::InvalidBundle, format!("invalid bundle {}: {e}", path.display()))
    };
    let envelope = signing::open(&bytes).map_err(|e| invalid(&e))?;
    let signature = if trusted.is_empty() {
        if envelope.key_id.is_some() {
            "not verified"
        } else {
            "unsigned"
        }
    } else {
        envelope.verify(&trusted).map_err(|e| {
            Error::new(ErrorKind::InvalidBundle, format!("signature check failed for {}: {e}", path.display()))
        })?;
        "verified"
    };
    let loaded = Bundle::from_bytes(envelope.bundle).map_err(|e| invalid(&e))?;
    let summary = Summary {
        policy: loaded.policy_name(),
        revision: loaded.revision(),
        sha256: bundle::hex(loaded.digest()),
        signed_by: envelope.key_id,
        signature,
        rules: loaded
            .rules()
            .iter()
            .map(|rule| RuleSummary { id: &rule.id, action: rule.action.as_str(), status: rule.status })
            .collect(),
    };
    serde_json::to_string_pretty(&summary)
        .map_err(|e| Error::new(ErrorKind::Io, format!("cannot encode the summary: {e}")))
}
