//! Signed bundles: keys made by `portcullis keygen`, bundles signed by `portcullis sign` (or
//! [`crate::compile_signed`]), the filter's `trusted_keys`, and the byte surgery the refusal tests need.
//!
//! A signed bundle is an envelope around the bundle bytes (`policies/src/signing.rs`):
//!
//! | bytes | what |
//! |---|---|
//! | 8 | magic `PCLSSIGN` |
//! | 1 | length n of the key id |
//! | n | key id |
//! | 64 | Ed25519 signature over the bundle's SHA-256 |
//! | rest | the bundle: magic (8), format version (2), SHA-256 of the payload (32), payload |

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::artifacts::{portcullis_binary, repo_root};
use crate::process::unique_number;

/// The first bytes of a signed bundle.
pub const ENVELOPE_MAGIC: &[u8; 8] = b"PCLSSIGN";

/// The prefix of a public key file: `portcullis-ed25519-public:<key id>:<64 hex>`.
pub const PUBLIC_KEY_PREFIX: &str = "portcullis-ed25519-public:";

/// Bytes of a bundle before its payload: magic, format version, SHA-256.
const BUNDLE_HEADER: usize = 8 + 2 + 32;

/// A key pair made by `portcullis keygen --key-id ID --out DIR`: `DIR/ID.key` (secret) and `DIR/ID.pub`.
///
/// Files go to `<repo>/target/portcullis-it/keys/`, beside compiled bundles, so they outlive any one process.
#[derive(Clone, Debug)]
pub struct SigningKey {
    key_id: String,
    dir: PathBuf,
}

impl SigningKey {
    /// Runs `portcullis keygen --key-id KEY_ID --out DIR` in a fresh directory.
    ///
    /// # Panics
    ///
    /// If keygen fails or does not write both files, with its output.
    pub fn generate(key_id: &str) -> Self {
        let dir =
            repo_root().join("target/portcullis-it/keys").join(format!("{}-{}", std::process::id(), unique_number()));
        std::fs::create_dir_all(&dir).expect("create the key directory");
        let output = Command::new(portcullis_binary())
            .args(["keygen", "--key-id", key_id, "--out"])
            .arg(&dir)
            .stdin(Stdio::null())
            .output()
            .expect("run `portcullis keygen`");
        let key = Self { key_id: key_id.to_string(), dir };
        assert!(
            output.status.success() && key.secret_path().is_file() && key.public_path().is_file(),
            "`portcullis keygen --key-id {key_id} --out {}` failed or did not write {} and {} ({}):\nstdout: {}\n\
             stderr: {}",
            key.dir.display(),
            key.secret_path().display(),
            key.public_path().display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
        key
    }

    /// The key id bundles signed with it carry.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// `DIR/ID.key`: what `--sign` and `--key` take.
    pub fn secret_path(&self) -> PathBuf {
        self.dir.join(format!("{}.key", self.key_id))
    }

    /// `DIR/ID.pub`.
    pub fn public_path(&self) -> PathBuf {
        self.dir.join(format!("{}.pub", self.key_id))
    }

    /// The public key in 64 hex digits, read from [`SigningKey::public_path`]: what `trusted_keys` holds.
    ///
    /// # Panics
    ///
    /// If the file is not `portcullis-ed25519-public:<this key id>:<64 hex>`.
    pub fn public_hex(&self) -> String {
        let text = std::fs::read_to_string(self.public_path()).expect("read the public key file");
        let expected = format!("{PUBLIC_KEY_PREFIX}{}:", self.key_id);
        let hex = text
            .trim()
            .strip_prefix(&expected)
            .unwrap_or_else(|| panic!("{} should start with `{expected}`: {text:?}", self.public_path().display()));
        assert!(
            hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
            "{} should end in 64 hex digits: {text:?}",
            self.public_path().display()
        );
        hex.to_string()
    }

    /// Runs `portcullis sign BUNDLE --key SECRET -o OUT` and returns OUT (beside `bundle`, named after the key).
    ///
    /// # Panics
    ///
    /// If signing fails, with its output.
    pub fn sign(&self, bundle: &Path) -> PathBuf {
        let stem = bundle.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "bundle".into());
        let out = bundle.with_file_name(format!("{stem}.signed-{}-{}.bundle", self.key_id, unique_number()));
        let output = Command::new(portcullis_binary())
            .arg("sign")
            .arg(bundle)
            .arg("--key")
            .arg(self.secret_path())
            .arg("-o")
            .arg(&out)
            .stdin(Stdio::null())
            .output()
            .expect("run `portcullis sign`");
        assert!(
            output.status.success() && out.is_file(),
            "`portcullis sign {} --key {} -o {}` failed ({}):\nstdout: {}\nstderr: {}",
            bundle.display(),
            self.secret_path().display(),
            out.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
        out
    }
}

/// The plugin configuration's `trusted_keys` object: key id to public key hex, for each of `keys`.
pub fn trusted_keys(keys: &[&SigningKey]) -> serde_json::Value {
    keys.iter().map(|k| (k.key_id().to_string(), serde_json::Value::from(k.public_hex()))).collect()
}

/// The key id in a signed bundle's envelope, or `None` for bytes without one (an unsigned bundle).
pub fn envelope_key_id(bytes: &[u8]) -> Option<String> {
    let rest = bytes.strip_prefix(ENVELOPE_MAGIC)?;
    let (&len, rest) = rest.split_first()?;
    rest.get(..usize::from(len)).map(|id| String::from_utf8_lossy(id).into_owned())
}

/// Where the bundle starts inside `bytes`: after the envelope of a signed bundle, else 0.
///
/// # Panics
///
/// If the envelope is truncated.
pub fn bundle_offset(bytes: &[u8]) -> usize {
    match envelope_key_id(bytes) {
        Some(id) => {
            let offset = ENVELOPE_MAGIC.len() + 1 + id.len() + 64;
            assert!(bytes.len() > offset + BUNDLE_HEADER, "truncated signed bundle ({} bytes)", bytes.len());
            offset
        }
        None => 0,
    }
}

/// A signed bundle with one payload byte flipped *and* the SHA-256 in the bundle's header recomputed to match, as
/// an attacker who knows the format would do: only the signature can tell it apart from the original.
///
/// # Panics
///
/// If `signed` is not a signed bundle.
pub fn tamper_payload_fixing_digest(signed: &[u8]) -> Vec<u8> {
    assert!(envelope_key_id(signed).is_some(), "not a signed bundle");
    let start = bundle_offset(signed);
    let mut bytes = signed.to_vec();
    let payload_start = start + BUNDLE_HEADER;
    // The last byte: a rule's data rather than the postcard framing the loader would refuse before hashing.
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    let digest = hmac_sha256::Hash::hash(&bytes[payload_start..]);
    bytes[start + 10..payload_start].copy_from_slice(&digest);
    bytes
}

/// Standard base64 with padding (what the plugin configuration's `bundle_base64` takes).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Replaces the file a control plane serves with `bytes`, written beside it and renamed over it so the server never
/// reads a half-written file: how tests serve bundles `portcullis push` would refuse (older revisions, for one).
///
/// # Panics
///
/// On an I/O error.
pub fn replace_served_file(served: &Path, bytes: &[u8]) {
    let staging = served.with_extension(format!("staging-{}", unique_number()));
    std::fs::write(&staging, bytes).unwrap_or_else(|e| panic!("write {}: {e}", staging.display()));
    std::fs::rename(&staging, served).unwrap_or_else(|e| panic!("rename over {}: {e}", served.display()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
        assert_eq!(base64(&[0xfb, 0xff]), "+/8=");
    }

    #[test]
    fn envelopes_are_recognised_and_tampering_keeps_the_digest_consistent() {
        let payload = b"payload bytes".to_vec();
        let mut bundle = b"PCLSBNDL\x01\x00".to_vec();
        bundle.extend_from_slice(&hmac_sha256::Hash::hash(&payload));
        bundle.extend_from_slice(&payload);
        let mut signed = ENVELOPE_MAGIC.to_vec();
        signed.push(2);
        signed.extend_from_slice(b"k1");
        signed.extend_from_slice(&[7u8; 64]);
        signed.extend_from_slice(&bundle);

        assert_eq!(envelope_key_id(&signed).as_deref(), Some("k1"));
        assert_eq!(envelope_key_id(&bundle), None);
        assert_eq!(bundle_offset(&signed), 8 + 1 + 2 + 64);
        assert_eq!(bundle_offset(&bundle), 0);

        let tampered = tamper_payload_fixing_digest(&signed);
        assert_eq!(tampered.len(), signed.len());
        let start = bundle_offset(&tampered);
        assert_eq!(tampered[..start], signed[..start], "envelope untouched");
        let (header, payload) = tampered[start..].split_at(BUNDLE_HEADER);
        assert_ne!(payload, &bundle[BUNDLE_HEADER..]);
        assert_eq!(&header[10..], &hmac_sha256::Hash::hash(payload)[..], "digest matches the tampered payload");
    }
}
