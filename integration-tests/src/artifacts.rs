//! Where the binaries under test are, and the message that says how to build each one that is missing.
//!
//! A missing artifact panics: an end-to-end suite that skips itself when Envoy is absent passes on every machine
//! where it never ran.

use std::path::{Path, PathBuf};

/// Overrides the Envoy binary (default `<repo>/.venv/bin/envoy`).
pub const ENVOY_ENV: &str = "PORTCULLIS_ENVOY";
/// Overrides the `portcullis` binary (default `<repo>/target/debug/portcullis`).
pub const PORTCULLIS_BIN_ENV: &str = "PORTCULLIS_BIN";
/// Overrides the filter (default `<repo>/dist/portcullis.wasm`).
pub const WASM_ENV: &str = "PORTCULLIS_WASM";
/// Overrides the no-op baseline filter (default `<repo>/dist/noop.wasm`).
pub const NOOP_WASM_ENV: &str = "PORTCULLIS_NOOP_WASM";

/// The workspace root (the parent of this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("integration-tests lives inside the workspace").to_path_buf()
}

/// The Envoy binary: `$PORTCULLIS_ENVOY`, else `<repo>/.venv/bin/envoy`.
///
/// # Panics
///
/// If the file does not exist, naming the path and how to install it.
pub fn envoy_binary() -> PathBuf {
    let path = from_env_or(ENVOY_ENV, repo_root().join(".venv/bin/envoy"));
    require(&path, "Envoy", &format!("run `make setup` or set {ENVOY_ENV}"));
    path
}

/// The Portcullis filter: `$PORTCULLIS_WASM`, else `<repo>/dist/portcullis.wasm`.
///
/// # Panics
///
/// If the file does not exist, naming the path and how to build it.
pub fn filter_wasm() -> PathBuf {
    let path = from_env_or(WASM_ENV, repo_root().join("dist/portcullis.wasm"));
    require(&path, "The Portcullis filter", "run `make build`");
    path
}

/// The no-op baseline filter a benchmark compares against: `$PORTCULLIS_NOOP_WASM`, else `<repo>/dist/noop.wasm`.
///
/// # Panics
///
/// If the file does not exist, naming the path and how to build it.
pub fn noop_wasm() -> PathBuf {
    let path = from_env_or(NOOP_WASM_ENV, repo_root().join("dist/noop.wasm"));
    require(&path, "The no-op filter", "run `make build`");
    path
}

/// The `portcullis` control-plane binary: `$PORTCULLIS_BIN`, else `<repo>/target/debug/portcullis`.
///
/// # Panics
///
/// If the file does not exist, naming the path and how to build it.
pub fn portcullis_binary() -> PathBuf {
    let path = from_env_or(PORTCULLIS_BIN_ENV, repo_root().join("target/debug/portcullis"));
    require(
        &path,
        "The portcullis binary",
        &format!("run `cargo build -p portcullis-control-plane` or set {PORTCULLIS_BIN_ENV}"),
    );
    path
}

fn from_env_or(var: &str, default: PathBuf) -> PathBuf {
    match std::env::var_os(var) {
        Some(value) if !value.is_empty() => PathBuf::from(value),
        _ => default,
    }
}

fn require(path: &Path, what: &str, how: &str) {
    assert!(path.is_file(), "{what} not found at {}: {how}", path.display());
}
