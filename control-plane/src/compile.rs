//! `portcullis compile`: policy YAML to a bundle file.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use portcullis_policies::bundle;
use portcullis_policies::compiler::{compile_to_bytes, CompileOptions};
use portcullis_policies::Bundle;

use crate::error::{Error, ErrorKind, Result};
use crate::store;

/// Compiles the policy at `policy` into the bundle file `output`.
///
/// `name` defaults to the policy file's stem, `revision` to the current Unix time in seconds. Returns the line
/// to print on success.
///
/// # Errors
///
/// [`ErrorKind::Compile`] with the compiler's `file:line:col: message`, or an I/O error.
pub fn compile(policy: &Path, output: &Path, name: Option<String>, revision: Option<u64>) -> Result<String> {
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
    write_output(output, &bytes)?;
    Ok(format!(
        "compiled {} -> {} ({} rules, revision {}, sha256 {})",
        policy.display(),
        output.display(),
        loaded.rules().len(),
        loaded.revision(),
        bundle::hex(loaded.digest())
    ))
}

/// Writes the bundle atomically, so a watcher of `output` never sees half a bundle.
fn write_output(output: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match output.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let stem = output.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "bundle".to_owned());
    store::write_atomically(output, &store::temp_path(dir, &stem), bytes)
        .map_err(|e| Error::new(ErrorKind::Io, format!("cannot write {}: {e}", output.display())))
}
