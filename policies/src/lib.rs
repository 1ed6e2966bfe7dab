//! The Portcullis policy language, from YAML to a decision.
//!
//! # Overview
//!
//! A policy is a YAML file of rules whose conditions are [CEL] expressions. The life of a policy:
//!
//! 1. [`compiler`] (feature `compiler`, native only) parses the YAML and the CEL, checks names and types, builds a
//!    DFA for every regular expression, and emits a [`bundle`]: a versioned, hashed, postcard-encoded file.
//! 2. [`Bundle::from_bytes`] validates a bundle (header, SHA-256, structure, types, DFAs) and never panics on any
//!    input; what it returns is ready to evaluate.
//! 3. [`Bundle::evaluate`] runs the rules against a [`Request`] and returns a [`Verdict`]. It never parses
//!    expressions or compiles regexes: the filter in Envoy only deserializes and searches.
//!
//! # Contents
//!
//! - [`program`]: the evaluable form of a rule condition (a flat node arena, children before parents).
//! - [`detect`]: classifiers, detections, body inspection limits, dynamic and static lists, counters over time.
//! - [`scan`]: streaming inspection of bodies and values, built-in classifiers, findings per detection.
//! - [`signing`]: Ed25519 signatures over bundles, the envelope that carries them, key files.
//! - [`token`]: token sources, caller identity, JWT policy and the JWT findings rules can name.
//! - [`token_analysis`]: finding the token in a request, the caller's identity, JWT decoding, signature
//!   verification and forgery checks, and the per-VM cache of analyses.
//! - [`endpoint`]: endpoint templates (`GET host/users/{id}`), the key of endpoint lists.
//! - [`bundle`]: the wire format and its validating loader.
//! - [`engine`]: evaluation of a loaded bundle, the [`Request`] view it reads, and what an exchange adds to a
//!   counter.
//! - [`verdict`]: what the engine decided, as a small `Copy` value.
//!
//! [CEL]: https://cel.dev

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

pub mod attacks;
pub mod body_field;
pub mod bundle;
pub mod detect;
pub mod endpoint;
pub mod engine;
pub mod program;
pub mod scan;
pub mod signing;
pub mod token;
pub mod token_analysis;
pub mod verdict;

#[cfg(feature = "compiler")]
pub mod compiler;

pub use bundle::{Bundle, BundleError};
pub use detect::Location;
pub use engine::Request;
pub use program::{Action, Attribute, OnUninspectable, Phase};
pub use verdict::Verdict;
