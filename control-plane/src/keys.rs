//! Signing keys: `portcullis keygen`, `portcullis sign`, and reading key files for `compile --sign`,
//! `inspect --trust`, `rollback --sign` and `serve --trust`.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use portcullis_policies::signing::{self, TrustedKey};
use portcullis_policies::{bundle, Bundle};

use crate::error::{Error, ErrorKind, Result};
use crate::store;

/// A secret key read from a key file.
pub struct SecretKey {
    /// The key id bundles signed with it carry.
    pub key_id: String,
    bytes: Vec<u8>,
}

impl SecretKey {
    /// Reads a `portcullis-ed25519-secret:<id>:<hex>` file.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Usage`] if the file cannot be read or is not a secret key file.
    pub fn load(path: &Path) -> Result<SecretKey> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::new(ErrorKind::Usage, format!("cannot read key file {}: {e}", path.display())))?;
        match signing::parse_key_text(&text) {
            Some(("secret", key_id, bytes)) => Ok(SecretKey { key_id: key_id.to_owned(), bytes }),
            Some(_) => Err(Error::new(
                ErrorKind::Usage,
                format!("{} is a public key; signing needs the secret key file (ID.key)", path.display()),
            )),
            None => {
                Err(Error::new(ErrorKind::Usage, format!("{} is not a Portcullis secret key file", path.display())))
            }
        }
    }

    /// Wraps the bundle bytes `bundle` in a signature envelope.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidBundle`] if `bundle` has no bundle header to sign.
    pub fn seal(&self, bundle: &[u8]) -> Result<Vec<u8>> {
        signing::seal(bundle, &self.key_id, &self.bytes)
            .map_err(|e| Error::new(ErrorKind::InvalidBundle, format!("cannot sign: {e}")))
    }
}

/// Reads `portcullis-ed25519-public:<id>:<hex>` files.
///
/// # Errors
///
/// [`ErrorKind::Usage`] if a file cannot be read or is not a public key file.
pub fn load_public(paths: &[PathBuf]) -> Result<Vec<TrustedKey>> {
    paths
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Error::new(ErrorKind::Usage, format!("cannot read key file {}: {e}", path.display())))?;
            match signing::parse_key_text(&text) {
                Some(("public", key_id, bytes)) => {
                    let public_key = <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
                        Error::new(ErrorKind::Usage, format!("{} is not a public key file", path.display()))
                    })?;
                    Ok(TrustedKey { key_id: key_id.to_owned(), public_key })
                }
                _ => Err(Error::new(
                    ErrorKind::Usage,
                    format!("{} is not a Portcullis public key file (ID.pub)", path.display()),
                )),
            }
        })
        .collect()
}

/// Creates a key pair from 32 bytes of the operating system's randomness: `DIR/ID.key` (secret, mode 0600) and
/// `DIR/ID.pub`. Returns what to print: the public key text and the plugin-configuration snippet.
///
/// # Errors
///
/// [`ErrorKind::Usage`] for an invalid key id or if either file exists (keys are never overwritten),
/// [`ErrorKind::Io`] if randomness or the files fail.
pub fn keygen(key_id: &str, out: &Path) -> Result<String> {
    if !signing::is_key_id(key_id) {
        return Err(Error::new(
            ErrorKind::Usage,
            format!("invalid key id '{key_id}': use 1 to 64 of A-Z a-z 0-9 . _ -"),
        ));
    }
    let secret_path = out.join(format!("{key_id}.key"));
    let public_path = out.join(format!("{key_id}.pub"));
    for path in [&secret_path, &public_path] {
        if path.exists() {
            return Err(Error::new(
                ErrorKind::Usage,
                format!("{} exists; refusing to overwrite a key", path.display()),
            ));
        }
    }
    std::fs::create_dir_all(out)
        .map_err(|e| Error::new(ErrorKind::Io, format!("cannot create {}: {e}", out.display())))?;
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed)
        .map_err(|e| Error::new(ErrorKind::Io, format!("cannot read randomness from the operating system: {e}")))?;
    let (public_key, secret_key) = signing::keypair_from_seed(seed);
    write_new(&secret_path, signing::secret_key_text(key_id, &secret_key).as_bytes(), 0o600)?;
    let public_text = signing::public_key_text(key_id, &public_key);
    write_new(&public_path, public_text.as_bytes(), 0o644)?;
    Ok(format!(
        "{public_text}\n\
         # wrote {} (secret, mode 0600) and {}\n\
         # plugin configuration:\n\
         \"trusted_keys\": {{\"{key_id}\": \"{}\"}}",
        secret_path.display(),
        public_path.display(),
        bundle::hex(&public_key)
    ))
}

/// Creates `path` (never replacing a file) with `mode`, writes `text` and a newline, and fsyncs.
fn write_new(path: &Path, text: &[u8], mode: u32) -> Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let io = |e: std::io::Error| Error::new(ErrorKind::Io, format!("cannot write {}: {e}", path.display()));
    let mut file = options.open(path).map_err(io)?;
    file.write_all(text).and_then(|()| file.write_all(b"\n")).and_then(|()| file.sync_all()).map_err(io)
}

/// Signs the bundle file `input` with the secret key in `key`, writing the signed bundle to `output`. A bundle
/// that is already signed is re-signed (its old signature is dropped). Returns the line to print.
///
/// # Errors
///
/// If the key cannot be read, the bundle is invalid (nothing is signed), or `output` cannot be written.
pub fn sign(input: &Path, key: &Path, output: &Path) -> Result<String> {
    let key = SecretKey::load(key)?;
    let bytes =
        std::fs::read(input).map_err(|e| Error::new(ErrorKind::Io, format!("cannot read {}: {e}", input.display())))?;
    let envelope = signing::open(&bytes)
        .map_err(|e| Error::new(ErrorKind::InvalidBundle, format!("invalid bundle {}: {e}", input.display())))?;
    let loaded = Bundle::from_bytes(envelope.bundle)
        .map_err(|e| Error::new(ErrorKind::InvalidBundle, format!("refusing to sign {}: {e}", input.display())))?;
    let sealed = key.seal(envelope.bundle)?;
    store::write_file(output, &sealed)?;
    let replaced = envelope.key_id.map(|old| format!(", replacing the signature by {old}")).unwrap_or_default();
    Ok(format!(
        "signed {} -> {} with key {} (revision {}, sha256 {}{replaced})",
        input.display(),
        output.display(),
        key.key_id,
        loaded.revision(),
        bundle::hex(loaded.digest())
    ))
}
