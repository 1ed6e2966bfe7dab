//! `portcullis inspect`: what a bundle file holds, as JSON.

use std::path::Path;

use portcullis_policies::{bundle, Bundle};
use serde::Serialize;

use crate::error::{Error, ErrorKind, Result};

/// The JSON printed by `inspect`.
#[derive(Serialize)]
struct Summary<'a> {
    policy: &'a str,
    revision: u64,
    sha256: String,
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
/// # Errors
///
/// [`ErrorKind::InvalidBundle`] with the loader's message, or an I/O error.
pub fn inspect(path: &Path) -> Result<String> {
    let bytes =
        std::fs::read(path).map_err(|e| Error::new(ErrorKind::Io, format!("cannot read {}: {e}", path.display())))?;
    let loaded = Bundle::from_bytes(&bytes)
        .map_err(|e| Error::new(ErrorKind::InvalidBundle, format!("invalid bundle {}: {e}", path.display())))?;
    let summary = Summary {
        policy: loaded.policy_name(),
        revision: loaded.revision(),
        sha256: bundle::hex(loaded.digest()),
        rules: loaded
            .rules()
            .iter()
            .map(|rule| RuleSummary { id: &rule.id, action: rule.action.as_str(), status: rule.status })
            .collect(),
    };
    serde_json::to_string_pretty(&summary)
        .map_err(|e| Error::new(ErrorKind::Io, format!("cannot encode the summary: {e}")))
}
