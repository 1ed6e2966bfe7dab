//! Keeps every panicking proxy-wasm SDK call out of the filter: each trait method of the SDK that unwraps the
//! host's status, and each hostcall that panics on a status it did not expect, must be listed in `clippy.toml`'s
//! `disallowed-methods`, so `make lint` refuses a call to it. When the SDK is upgraded and gains such a function,
//! this test names it.

// Helpers outside #[test] functions fail loudly too; clippy.toml's test allowances only cover the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::path::PathBuf;
use std::process::Command;

/// The source directory of the proxy-wasm crate the filter builds against, from `cargo metadata`.
fn sdk_source() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    let packages = metadata["packages"].as_array().expect("packages");
    let sdk = packages.iter().find(|p| p["name"] == "proxy-wasm").expect("proxy-wasm is a dependency");
    let manifest = PathBuf::from(sdk["manifest_path"].as_str().expect("manifest_path"));
    manifest.parent().expect("crate directory").join("src")
}

/// `Trait::method` for every SDK trait method whose body unwraps.
fn panicking_methods(traits_rs: &str) -> Vec<String> {
    let (mut current_trait, mut current_fn) = (String::new(), String::new());
    let mut found = Vec::new();
    for line in traits_rs.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("pub trait ") {
            current_trait = rest.split([':', ' ', '{']).next().unwrap_or_default().to_owned();
        }
        if let Some(at) = line.find("fn ") {
            current_fn = line[at + 3..].split(['(', '<']).next().unwrap_or_default().to_owned();
        }
        if line.contains(".unwrap()") {
            found.push(format!("{current_trait}::{current_fn}"));
        }
    }
    found.sort();
    found.dedup();
    found
}

/// Every `pub fn` of the SDK's hostcalls whose body panics on an unexpected status.
fn panicking_hostcalls(hostcalls_rs: &str) -> Vec<String> {
    let mut current_fn = String::new();
    let mut found = Vec::new();
    for line in hostcalls_rs.lines() {
        if let Some(rest) = line.strip_prefix("pub fn ") {
            current_fn = rest.split(['(', '<']).next().unwrap_or_default().to_owned();
        }
        if line.contains("panic!(\"unexpected status") {
            found.push(current_fn.clone());
        }
    }
    found.sort();
    found.dedup();
    found
}

#[test]
fn every_panicking_hostcall_is_disallowed() {
    let hostcalls_rs = std::fs::read_to_string(sdk_source().join("hostcalls.rs")).expect("the SDK's hostcalls.rs");
    let functions = panicking_hostcalls(&hostcalls_rs);
    assert!(functions.len() > 30, "found only {} panicking hostcalls: is the parser still right?", functions.len());
    let clippy = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../clippy.toml")).expect("clippy.toml");
    let missing: Vec<&String> =
        functions.iter().filter(|f| !clippy.contains(&format!("\"proxy_wasm::hostcalls::{f}\""))).collect();
    assert!(missing.is_empty(), "add these panicking hostcalls to clippy.toml's disallowed-methods: {missing:?}");
    assert!(
        clippy.contains("\"proxy_wasm::traits::Context::dispatch_http_call\""),
        "dispatch_http_call's hostcall panics"
    );
}

#[test]
fn every_panicking_sdk_method_is_disallowed() {
    let traits_rs = std::fs::read_to_string(sdk_source().join("traits.rs")).expect("the SDK's traits.rs");
    let methods = panicking_methods(&traits_rs);
    assert!(methods.len() > 50, "found only {} panicking methods: is the parser still right?", methods.len());
    let clippy = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../clippy.toml")).expect("clippy.toml");
    let missing: Vec<&String> =
        methods.iter().filter(|m| !clippy.contains(&format!("\"proxy_wasm::traits::{m}\""))).collect();
    assert!(missing.is_empty(), "add these panicking SDK methods to clippy.toml's disallowed-methods: {missing:?}");
    for required in ["get_http_call_response_header_bytes", "get_http_call_response_body", "get_property"] {
        assert!(methods.iter().any(|m| m.ends_with(required)), "{required} should be found as panicking");
    }
}
