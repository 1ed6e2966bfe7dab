//! `portcullis compile`: policy YAML to a bundle file.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use portcullis_policies::bundle;
use portcullis_policies::compiler::{compile_to_bytes, CompileOptions};
use portcullis_policies::Bundle;

use crate::error::{Error, ErrorKind, Result};
use crate::keys::SecretKey;
use crate::store;

/// Compiles the policy at `policy` into the bundle file `output`.
///
/// `name` defaults to the policy file's stem, `revision` to the current Unix time in seconds. With `sign`, the
/// bundle is wrapped in a signature made with that secret key file. Returns the line to print on success.
///
/// # Errors
///
/// [`ErrorKind::Compile`] with the compiler's `file:line:col: message`, a key file that cannot be used, or an
/// I/O error.
pub fn compile(
    policy: &Path,
    output: &Path,
    name: Option<String>,
    revision: Option<u64>,
    sign: Option<&Path>,
) -> Result<String> {
    // Read the key first: a bad key path should not cost a compile.
    let key = sign.map(SecretKey::load).transpose()?;
    let name = match name {
        Some(name) => name,
        None => policy.file_stem().and_then(|s| s.to_str()).map(str::to_owned).ok_or_else(|| {
            Error::new(ErrorKind::Usage, format!("cannot derive a policy name from {}; pass --name", policy.display()))
        })?,
    };
    let revision = match revision {
        Some(revision) => revision,
        None => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| Error::new(ErrorKind::Usage, format!("system clock before 1970 ({e}); pass --revision")))?
            .as_secs(),
    };
    let source = std::fs::read_to_string(policy)
        .map_err(|e| Error::new(ErrorKind::Io, format!("cannot read {}: {e}", policy.display())))?;
    let options = CompileOptions { policy_name: name, revision, file_name: policy.display().to_string() };
    let bytes = compile_to_bytes(&source, &options).map_err(|e| Error::new(ErrorKind::Compile, e.to_string()))?;
    // Load what was just built: the rule count comes from it, and a compiler bug is caught here, not in Envoy.
    let loaded = Bundle::from_bytes(&bytes).map_err(|e| {
        Error::new(ErrorKind::InvalidBundle, format!("internal error: the compiler produced an invalid bundle: {e}"))
    })?;
    let (bytes, signed) = match &key {
        Some(key) => (key.seal(&bytes)?, format!(", signed by {}", key.key_id)),
        None => (bytes, String::new()),
    };
    store::write_file(output, &bytes)?;
    Ok(format!(
        "compiled {} -> {} ({} rules, revision {}, sha256 {}{signed})",
        policy.display(),
        output.display(),
        loaded.rules().len(),
        loaded.revision(),
        bundle::hex(loaded.digest())
    ))
}
