//! The policy compiler: YAML + CEL in, a [`BundleContent`] out (feature `compiler`, native only).
//!
//! # Overview
//!
//! [`compile`] reads a policy file, checks every key, parses each rule's `when` condition as a [CEL] expression,
//! resolves attribute names, type-checks, builds a dense DFA for every `matches` pattern and emits the flat node
//! arena of [`crate::program`]. The first problem found stops compilation and is reported as a [`CompileError`]
//! that points at the offending key, value or token: `file:line:col: message`.
//!
//! ```
//! use portcullis_policies::compiler::{compile, CompileOptions};
//!
//! let options = CompileOptions { policy_name: "demo".into(), revision: 1, file_name: "demo.yaml".into() };
//! let policy = r#"
//! version: 1
//! rules:
//!   - id: admin
//!     when: request.path.startsWith("/admin") && request.pathz == "/"
//!     action: block
//! "#;
//! let error = compile(policy, &options).unwrap_err();
//! assert_eq!(error.to_string(), format!("demo.yaml:5:48: unknown attribute 'request.pathz' (known: {})",
//!     "request.path, request.url_path, request.host, request.scheme, request.method, request.query, request.id, \
//!      request.useragent, request.referer, request.protocol, source.address, destination.address, endpoint, request.headers"));
//!
//! let content = compile(&policy.replace("pathz", "method"), &options).unwrap();
//! assert_eq!(content.rules.len(), 1);
//! ```
//!
//! # The language
//!
//! Top-level keys: `version` (required, `1`) and `rules` (required, a list). Rule keys: `id` (required,
//! `[a-z0-9][a-z0-9._-]*`, at most 64 characters, unique), `when` (required, CEL), `action` (required, `block` or
//! `monitor`) and `status` (optional, 100 to 599, default 403; used by `block` only).
//!
//! `when` is the subset of CEL the engine evaluates: string, int and bool literals (`"..."`, `'...'`, triple-quoted
//! and `r"..."` raw strings, with CEL escapes), `!`, `&&`, `||`, `==`, `!=`, `<`, `<=`, `>`, `>=`,
//! `"name" in request.headers`, `request.headers["name"]` (the name is lower-cased, as Envoy lower-cases header
//! names), `s.startsWith(t)`, `s.endsWith(t)`, `s.contains(t)`, `s.matches("re")`, `size(s)` and `s.size()`.
//! Chains of `&&` / `||` are compiled as balanced trees, so long lists of alternatives stay shallow.
//!
//! # Regular expressions
//!
//! `matches` patterns use `regex-automata` syntax with Unicode enabled (`(?i)` folds case). Each distinct pattern
//! becomes one dense DFA built for unanchored search, capped at 2 MiB. Unicode word boundaries (`\b`, `\B` in
//! Unicode mode) are refused, because a DFA cannot search them; `(?-u:\b)` is the ASCII word boundary and works.
//!
//! # Positions
//!
//! Lines and columns are 1-based, columns count characters. Errors inside a `when` expression point at the
//! offending token in the file for plain, single-quoted and double-quoted scalars, on one line or folded over
//! several, and for block scalars (`|`, `>`) whose lines keep their indentation; in the rare cases the mapping
//! back to the file cannot follow the scalar (e.g. tabs mixed into folded indentation), the position is the
//! nearest one it could follow, at worst the start of the scalar.
//!
//! [CEL]: https://github.com/google/cel-spec/blob/master/doc/langdef.md

use core::fmt;

use crate::bundle::{self, BundleContent};

mod check;
mod lexer;
mod parser;
mod policy;
mod regex;
mod scan_set;
mod source;

/// The version of this compiler, written into every bundle it builds.
pub const COMPILER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What to compile into the bundle besides the policy itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompileOptions {
    /// The policy's name (the bundle name it is published under).
    pub policy_name: String,
    /// The revision id recorded in the bundle.
    pub revision: u64,
    /// The file name used in error positions, as the user should see it.
    pub file_name: String,
}

/// Why a policy did not compile, and where: `file:line:col: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompileError {
    /// The file name from [`CompileOptions::file_name`].
    pub file: String,
    /// 1-based line of the offending key, value or token.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong, lower-case, without a trailing period.
    pub message: String,
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)
    }
}

impl std::error::Error for CompileError {}

/// Compiles a policy file to the content of a bundle.
///
/// Deterministic: the same source and options always give the same content (and so the same bundle bytes).
///
/// # Errors
///
/// The first problem found in the policy, with its position.
pub fn compile(source: &str, options: &CompileOptions) -> Result<BundleContent, CompileError> {
    let (rules, dfas) = policy::compile_policy(source).map_err(|e| CompileError {
        file: options.file_name.clone(),
        line: e.line,
        column: e.column,
        message: e.message,
    })?;
    Ok(BundleContent {
        policy_name: options.policy_name.clone(),
        revision: options.revision,
        compiler_version: COMPILER_VERSION.to_owned(),
        rules,
        dfas,
        ..BundleContent::default()
    })
}

/// Compiles a policy file to bundle bytes, ready for [`crate::Bundle::from_bytes`].
///
/// # Errors
///
/// As [`compile`]; also when the bundle would exceed [`bundle::MAX_BUNDLE_BYTES`] (reported at line 1, column 1).
pub fn compile_to_bytes(source: &str, options: &CompileOptions) -> Result<Vec<u8>, CompileError> {
    let content = compile(source, options)?;
    let whole_file = |message: String| CompileError {
        file: options.file_name.clone(),
        line: 1,
        column: 1,
        message,
    };
    let bytes = bundle::encode(&content).map_err(|e| whole_file(format!("cannot encode the bundle: {e}")))?;
    if bytes.len() > bundle::MAX_BUNDLE_BYTES {
        return Err(whole_file(format!(
            "compiled bundle is {} bytes, over the limit of {} bytes (fewer or simpler regexes would help)",
            bytes.len(),
            bundle::MAX_BUNDLE_BYTES
        )));
    }
    Ok(bytes)
}

/// An error inside one `when` expression, at a byte offset of the expression text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ExprError {
    /// Byte offset in the expression of the offending token.
    pub offset: usize,
    /// The message, as it will be shown.
    pub message: String,
}

impl ExprError {
    /// An error at `offset`.
    pub(crate) fn new(offset: usize, message: impl Into<String>) -> ExprError {
        ExprError {
            offset,
            message: message.into(),
        }
    }
}
