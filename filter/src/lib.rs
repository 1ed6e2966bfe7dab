//! Portcullis, the proxy-wasm filter Envoy loads.
//!
//! This is the only crate that knows proxy-wasm. It wires Envoy to plain-Rust parts:
//! [`portcullis_policies`] evaluates bundles, [`portcullis_shared_state`] coordinates worker VMs.
//!
//! - [`root`]: configuration, the fetch loop (one VM per Envoy, under a lease), bundle swaps in every VM.
//! - [`http`]: per request, evaluate and block, throttle, monitor or pass; the verdict goes to filter state.
//! - [`over_time`]: the bundle's counters over shared data, per-VM batching (flushed every tick, one VM at a
//!   time), the sweep that measures shared data, request-body fields.
//! - [`token`]: the caller's token: extraction, keyed identity, JWT analysis through a bounded per-VM cache.
//! - [`config`], [`schedule`], [`evidence`], [`headers`]: pure logic, unit-tested natively.
//!
//! Nothing on the request path may panic: a panic kills the worker's VM. Clippy denies `unwrap`, `expect`,
//! `panic!` and indexing, and the `String` header getters are disallowed (see `clippy.toml`).

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

pub mod active;
pub mod attacks;
pub mod config;
pub mod evidence;
pub mod hashed;
pub mod headers;
pub mod host;
pub mod hostcall;
pub mod http;
pub mod metrics;
pub mod over_time;
pub mod root;
pub mod schedule;
pub mod token;

use proxy_wasm::traits::RootContext;
use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(root::PortcullisRoot::new()) });
}}
