//! `portcullis push`: upload a bundle file to a control plane.

use std::path::Path;
use std::time::Duration;

use portcullis_policies::Bundle;
use serde::Deserialize;

use crate::error::{Error, ErrorKind, Result};
use crate::names;

/// The server's answer to a successful upload.
#[derive(Deserialize)]
struct Stored {
    revision: u64,
    sha256: String,
}

/// The server's answer to a refused request.
#[derive(Deserialize)]
struct ErrorBody {
    error: String,
}

/// Validates the bundle at `path` locally, then PUTs it to `server` as `name`. Returns the line to print.
///
/// # Errors
///
/// If the name or the bundle is invalid (nothing is sent), the server cannot be reached, or it refuses the
/// upload (the message is the server's JSON `error`).
pub fn push(server: &str, name: &str, path: &Path, token: &str) -> Result<String> {
    if !names::is_valid(name) {
        return Err(Error::new(ErrorKind::Usage, names::invalid_message(name)));
    }
    let bytes =
        std::fs::read(path).map_err(|e| Error::new(ErrorKind::Io, format!("cannot read {}: {e}", path.display())))?;
    // Refuse locally: the server would too, but an operator should not need a round trip to learn it.
    Bundle::from_bytes(&bytes).map_err(|e| {
        Error::new(ErrorKind::InvalidBundle, format!("refusing to push {}: invalid bundle: {e}", path.display()))
    })?;
    let url = format!("{}/v1/bundles/{name}", server.trim_end_matches('/'));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut response = agent
        .put(&url)
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/octet-stream")
        .send(&bytes[..])
        .map_err(|e| Error::new(ErrorKind::Http, format!("cannot reach {url}: {e}")))?;
    let status = response.status();
    let body = response
        .body_mut()
        .read_to_string()
        .map_err(|e| Error::new(ErrorKind::Http, format!("cannot read the response from {url}: {e}")))?;
    if !status.is_success() {
        let message = serde_json::from_str::<ErrorBody>(&body)
            .map(|b| b.error)
            .unwrap_or_else(|_| status.canonical_reason().unwrap_or("unexpected response").to_owned());
        return Err(Error::new(ErrorKind::Http, format!("push to {url} failed (HTTP {}): {message}", status.as_u16())));
    }
    let stored: Stored = serde_json::from_str(&body)
        .map_err(|e| Error::new(ErrorKind::Http, format!("unexpected response from {url}: {e}")))?;
    Ok(format!("pushed {} as {name} (revision {}, sha256 {})", path.display(), stored.revision, stored.sha256))
}
