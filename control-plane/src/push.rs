//! `portcullis push`: upload a bundle file to a control plane.

use std::path::Path;

use portcullis_policies::{signing, Bundle};

use crate::client::Client;
use crate::error::{Error, ErrorKind, Result};
use crate::names;

/// Validates the bundle at `path` locally, then PUTs it to `server` as `name`. Returns the line to print.
///
/// `actor` is sent as `X-Portcullis-Actor` and recorded in the history. `force_rollback` sends
/// `?rollback=true`, which lets the server accept a revision that is not newer than its current one.
///
/// # Errors
///
/// If the name or the bundle is invalid (nothing is sent), the server cannot be reached, or it refuses the
/// upload (the message is the server's JSON `error`).
pub fn push(
    server: &str,
    name: &str,
    path: &Path,
    token: &str,
    actor: Option<&str>,
    force_rollback: bool,
) -> Result<String> {
    if !names::is_valid(name) {
        return Err(Error::new(ErrorKind::Usage, names::invalid_message(name)));
    }
    let bytes =
        std::fs::read(path).map_err(|e| Error::new(ErrorKind::Io, format!("cannot read {}: {e}", path.display())))?;
    // Refuse locally: the server would too, but an operator should not need a round trip to learn it.
    let refuse = |e: &dyn std::fmt::Display| {
        Error::new(ErrorKind::InvalidBundle, format!("refusing to push {}: invalid bundle: {e}", path.display()))
    };
    let envelope = signing::open(&bytes).map_err(|e| refuse(&e))?;
    Bundle::from_bytes(envelope.bundle).map_err(|e| refuse(&e))?;
    let query = if force_rollback { "?rollback=true" } else { "" };
    let stored = Client::new(server).put_bundle(&format!("/v1/bundles/{name}{query}"), token, actor, &bytes)?;
    let signed = stored.signed_by.map(|id| format!(", signed by {id}")).unwrap_or_default();
    let unchanged = if stored.unchanged { ", already current" } else { "" };
    let rollback = stored.rollback_of.map(|r| format!(", rollback to revision {r}")).unwrap_or_default();
    Ok(format!(
        "pushed {} as {name} (revision {}, sha256 {}{signed}{rollback}{unchanged})",
        path.display(),
        stored.revision,
        stored.sha256
    ))
}
