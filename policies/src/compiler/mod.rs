//! The policy compiler: YAML + CEL in, a [`BundleContent`] out (feature `compiler`, native only).
//!
//! # Overview
//!
//! [`compile`] reads a policy file, checks every key, parses each rule's `when` condition (and each list's
//! `add_when`) as a [CEL] expression, resolves attribute, detection and list names, type-checks, builds a dense DFA
//! for every `matches` pattern and one multi-pattern scan-set DFA for every location a detection looks in, computes
//! the phase each rule is decided in, and emits the flat node arenas of [`crate::program`] and the tables of
//! [`crate::detect`]. The first problem found stops compilation and is reported as a [`CompileError`] that points at
//! the offending key, value or token: `file:line:col: message`.
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
//!      request.useragent, request.referer, request.protocol, source.address, destination.address, endpoint, \
//!      source.ip, request.headers, response.code, response.bytes"));
//!
//! let content = compile(&policy.replace("pathz", "method"), &options).unwrap();
//! assert_eq!(content.rules.len(), 1);
//! ```
//!
//! # The language
//!
//! Top-level keys: `version` (required, `1`), `rules` (required, a list), and the optional `inspection`, `tokens`,
//! `classifiers`, `detections` and `lists`. Unknown keys are errors at every level. Ids everywhere are
//! `[a-z0-9][a-z0-9._-]*`, at most 64 characters, unique within their section.
//!
//! ```yaml
//! version: 1
//! inspection:
//!   max_body_bytes: 262144          # per direction; 1 to 16 MiB, default 256 KiB
//!   inspect_binary: false           # default false
//! tokens:
//!   sources:                        # required; tried in order, the first one present wins
//!     - { header: authorization, scheme: Bearer }
//!     - { cookie: session }
//!   identity: claims(iss, sub)      # token (default) | claims(name, ...)
//!   jwt:
//!     keys: { jwks: { keys: [ { kty: EC, crv: P-256, x: "...", y: "...", kid: k1, alg: ES256 } ] } }
//!     allowed_algs: [ES256]
//!     issuers: [https://auth.example.com]
//!     max_lifetime: 24h
//! classifiers:
//!   - id: employee-id               # must not be a built-in id
//!     pattern: "EMP-[0-9]{6}"
//!     validator: none               # none | luhn | mod97
//!     context: [employee, staff]    # optional keywords, looked for before a match
//! detections:
//!   - id: cards-out
//!     classifier: credit_card       # a built-in or a custom classifier
//!     in: response.body             # request.query | request.body | response.body
//!   - id: expiry-out
//!     classifier: card_expiry
//!     in: response.body
//!     requires: cards-out           # counts only where cards-out also fired
//! lists:
//!   - id: sensitive-endpoints
//!     key: endpoint                 # endpoint | source_ip | token
//!     add_when: detected("cards-out")
//!     ttl: 24h
//!   - id: abusive-tokens
//!     key: token                    # token.id; needs the tokens section
//!     add_when: detected("jwt.bad_signature")
//!     ttl: 1h
//! rules:
//!   - id: cards-in-query
//!     when: detected("credit_card", "request.query")
//!     action: block
//!   - id: watch-sensitive
//!     when: endpoint in lists["sensitive-endpoints"]
//!     action: monitor
//!   - id: forged-token
//!     when: detected("jwt.alg_none") || detected("jwt.bad_signature") || token.id in lists["abusive-tokens"]
//!     action: block
//!     status: 401
//! ```
//!
//! **Rules**: `id` (required), `when` (required, CEL), `action` (required, `block` or `monitor`) and `status`
//! (optional, 100 to 599, default 403; used by `block` only).
//!
//! **Inspection**: `max_body_bytes` (1 to 16 MiB, default 256 KiB, per direction) and `inspect_binary` (default
//! `false`).
//!
//! **Classifiers** (custom): `id` (required, not a built-in id), `pattern` (required; regex syntax as for `matches`,
//! except that a match may be any bytes, e.g. `(?-u:[^0-9])`; it must not match the empty string), `validator`
//! (`none`, `luhn` or `mod97`; default `none`), `context` (a list of keywords, lower-cased; one must appear shortly
//! before a match), `context_window` (1 to 1024 bytes, default 64; only with `context`), `confidence` (0 to 100,
//! default 80) and `max_length` (1 to 256 bytes; defaults to the longest match of the pattern, and is required when
//! the pattern can match unbounded text).
//!
//! **Detections**: `id`, `classifier` (a built-in from [`crate::scan::builtin::BUILTINS`] or a custom classifier)
//! and `in` (`request.query`, `request.body` or `response.body`) are required. `requires` names an *earlier*
//! detection in the *same* location: the detection then counts only where that one also fired. A built-in layered on
//! another (`card_expiry` on `credit_card`) must be declared with `requires` naming a detection of that classifier.
//!
//! **Tokens**: where the caller's token is found, what identifies a caller, and how JWTs are judged.
//! - `sources` (required, 1 to 8): each names one place, `header` (lower-cased; with an optional `scheme` such as
//!   `Bearer`, matched case-insensitively and stripped), `cookie` or `query`. The first source present wins.
//! - `identity`: `token` (default: a keyed hash of the token, so a refreshed token is a new caller) or
//!   `claims(name, ...)` (a keyed hash of those JWT claims, so a caller keeps its identity across refreshes; at most
//!   8 names, any characters but spaces, commas, parentheses and quotes).
//! - `hash_key`: the key of those hashes, `base64:...` or `hex:...`, 16 to 64 bytes. Usually left to the plugin
//!   configuration; without either, each proxy makes a random one.
//! - `jwt` (optional; without it tokens are identified but not judged): `keys` and `allowed_algs` are required.
//!   - `keys: { jwks: {...} }`: an inline JWKS document (RFC 7517) written as YAML, carried in the bundle as JSON.
//!     Each key needs `kty` (`RSA`, `EC`, `OKP` or `oct`) and its members, unpadded base64url: `n` and `e` (RSA, at
//!     least 2048 bits), `crv` (`P-256` or `P-384`), `x` and `y` (EC), `crv: Ed25519` and `x` (OKP), `k` (oct, at
//!     least 32 bytes). Private members (`d`, `p`, ...) are refused: a bundle goes to every proxy. `kid`s are
//!     unique; a key's `alg` must fit it; a key with `use` other than `sig` (or `key_ops` without `verify`)
//!     verifies nothing. Every key is then loaded as the filter will load it, so a key it cannot use (a point off
//!     its curve) is a compile error.
//!   - `allowed_algs`: from `HS256`, `HS384`, `HS512`, `RS256`, `RS384`, `RS512`, `PS256`, `PS384`, `PS512`,
//!     `ES256`, `ES384`, `EdDSA`, each verifiable by some key. `none` can never be allowed.
//!   - `issuers`, `audiences`: accepted `iss` and `aud` values (empty or absent: any).
//!   - `max_lifetime` (1s to 365d), `clock_skew` (0s to 1h, default `60s`): durations as for list ttls.
//!   - `require_exp` (default `true`).
//!   - `weak_secrets`: `builtin` (default: the filter's list of well-known HMAC secrets, copied into the bundle),
//!     `none`, or a list of secrets. An `oct` key that is itself one of them is a compile error.
//!
//! **Lists**: `id`, `key` (`endpoint`, `source_ip` or `token`; `token` needs a `tokens` section) and `ttl` (a
//! duration: `90s`, `15m`, `24h`, `7d`, or combinations in that order such as `1h30m`; 1s to 30d) are required.
//! `max_entries` is 1 to 1048576 (default 10000). `add_when` (optional) is a condition evaluated when the exchange
//! is complete: when it holds, the exchange's key is added to the list (an exchange without a token has no `token`
//! key). It is compiled like `when`, and may use everything `when` may.
//!
//! Sections are resolved in that order whatever their order in the file, so rules and `add_when` may name any
//! detection or list.
//!
//! # Conditions
//!
//! `when` and `add_when` are the subset of CEL the engine evaluates: string, int and bool literals (`"..."`, `'...'`,
//! triple-quoted and `r"..."` raw strings, with CEL escapes), `!`, `&&`, `||`, `==`, `!=`, `<`, `<=`, `>`, `>=`,
//! `"name" in request.headers`, `request.headers["name"]` (the name is lower-cased, as Envoy lower-cases header
//! names), `s.startsWith(t)`, `s.endsWith(t)`, `s.contains(t)`, `s.matches("re")`, `size(s)` and `s.size()`.
//! Chains of `&&` / `||` are compiled as balanced trees, so long lists of alternatives stay shallow.
//!
//! Attributes are Envoy's names (`request.path`, `source.address`, ...) plus `endpoint`, the endpoint template
//! (`METHOD host/path` with identifiers folded). Beyond them:
//! - `detected("id")` is true when the declared detection `id` found something in this exchange;
//! - `detected("classifier", "location")` does the same without a declaration: it adds the implicit detection
//!   `classifier@location` (one per pair, however often it is used). A layered built-in cannot be used this way;
//! - `key in lists["id"]` is true when the string `key` is a live entry of list `id`;
//! - with a `tokens` section: `token.present` (bool), `token.id` (the caller's identity, a keyed hash in hex) and
//!   `token.kind` (`"jwt"` or `"opaque"`), `token.claims["name"]` and `token.header["name"]` (a JWT claim or JOSE
//!   header field as a string, numbers in decimal, other JSON as JSON text; names are case-sensitive; also
//!   `token.claims.name`). All but `token.present` are errors without a token, and an absent claim or field is an
//!   error, so a rule reading one does not match;
//! - with `tokens.jwt`: `detected("jwt.alg_none")` and the other findings of [`crate::token::JwtFinding`]
//!   (`jwt.malformed`, `jwt.bad_signature`, `jwt.key_confusion`, `jwt.expired`, ...), true when the analysis of the
//!   request's JWT found it. Detection ids starting with `jwt.` are reserved for them.
//!
//! # Phases
//!
//! A rule is decided as soon as what it reads exists: with the request headers (attributes, headers, lists, token
//! attributes, JWT findings and `request.query` detections), after the request body (`request.body` detections),
//! or after the response body (`response.body` detections). A rule decided on the response can only `monitor`,
//! since the response has already reached the client: `action: block` there is a compile error. To act on what a
//! response revealed, add the request's key to a list with `add_when`, and block later requests with
//! `key in lists["id"]`.
//!
//! # Regular expressions
//!
//! `matches` patterns use `regex-automata` syntax with Unicode enabled (`(?i)` folds case). Each distinct pattern
//! becomes one dense DFA built for unanchored search, capped at 2 MiB. Unicode word boundaries (`\b`, `\B` in
//! Unicode mode) are refused, because a DFA cannot search them; `(?-u:\b)` is the ASCII word boundary and works.
//!
//! Classifier patterns follow the same rules. The patterns of all classifiers a location looks for are compiled
//! together into that location's scan set: one overlapping DFA, so a body is read once whatever their number.
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
mod counters;
mod detections;
mod jwks;
mod lexer;
mod parser;
mod policy;
mod regex;
mod scan_set;
mod source;
mod tokens;
mod weak_keys;

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
    let content = policy::compile_policy(source).map_err(|e| CompileError {
        file: options.file_name.clone(),
        line: e.line,
        column: e.column,
        message: e.message,
    })?;
    Ok(BundleContent {
        policy_name: options.policy_name.clone(),
        revision: options.revision,
        compiler_version: COMPILER_VERSION.to_owned(),
        ..content
    })
}

/// Compiles a policy file to bundle bytes, ready for [`crate::Bundle::from_bytes`].
///
/// # Errors
///
/// As [`compile`]; also when the bundle would exceed [`bundle::MAX_BUNDLE_BYTES`] (reported at line 1, column 1).
pub fn compile_to_bytes(source: &str, options: &CompileOptions) -> Result<Vec<u8>, CompileError> {
    let content = compile(source, options)?;
    let whole_file = |message: String| CompileError { file: options.file_name.clone(), line: 1, column: 1, message };
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
        ExprError { offset, message: message.into() }
    }
}
