//! The plugin configuration: the JSON in the Envoy Wasm filter's `configuration` field.
//!
//! ```json
//! {
//!   "control_plane": {
//!     "cluster": "portcullis_control_plane",
//!     "bundle": "demo",
//!     "poll_interval_ms": 5000,
//!     "timeout_ms": 5000,
//!     "max_backoff_ms": 60000
//!   },
//!   "failure_mode": "open",
//!   "token_hash_key": "a secret of at least 16 bytes"
//! }
//! ```
//!
//! It is validated whole in `on_configure`; an invalid one fails configuration with a message naming the field.

use portcullis_policies::signing::{decode_hex, is_key_id, TrustedKey};
use serde::Deserialize;

/// What the filter does with requests before it has any bundle to enforce.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureMode {
    /// Let requests through (the default: a missing control plane never takes traffic down).
    #[default]
    Open,
    /// Answer 503: nothing passes that was not checked.
    Closed,
}

/// Where and how often to fetch bundles.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlPlaneConfig {
    /// The Envoy cluster that reaches the control plane.
    pub cluster: String,
    /// The bundle name: the filter fetches `GET /v1/bundles/{bundle}`.
    pub bundle: String,
    /// The `:authority` of fetches (default: the cluster name).
    #[serde(default)]
    pub authority: Option<String>,
    /// Time between polls when the control plane answers.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// Time a fetch may take before it counts as failed.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Longest wait between fetches while the control plane fails (backoff doubles up to it, with jitter).
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
    /// How long the control plane may hold a fetch until a newer bundle exists (long polling); 0 polls plainly.
    #[serde(default = "default_long_poll_seconds")]
    pub long_poll_seconds: u64,
    /// How often this Envoy reports its status (`POST /v1/status`); 0 never reports.
    #[serde(default = "default_status_interval_ms")]
    pub status_interval_ms: u64,
    /// How far (in seconds) a bundle's revision may be ahead of this Envoy's clock. Revisions are Unix seconds by
    /// default, and a newer revision can never be replaced by an older one: a far-future revision pushed by
    /// mistake would freeze every gateway on it until restart, so it is refused instead. Default one day.
    #[serde(default = "default_max_revision_ahead_seconds")]
    pub max_revision_ahead_seconds: u64,
}

/// The whole plugin configuration.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// Where bundles come from.
    pub control_plane: ControlPlaneConfig,
    /// Behaviour before the first bundle.
    #[serde(default)]
    pub failure_mode: FailureMode,
    /// Public keys trusted to sign bundles, by key id (64 hex digits each, as `portcullis keygen` prints them).
    /// With any key configured, unsigned bundles and bundles signed by other keys are refused.
    #[serde(default)]
    pub trusted_keys: std::collections::BTreeMap<String, String>,
    /// A bundle to enforce from the start (base64), for gateways that start while the control plane is down.
    #[serde(default)]
    pub bundle_base64: Option<String>,
    /// This Envoy's name in fleet status (default: Envoy's node id).
    #[serde(default)]
    pub node: Option<String>,
    /// Secret key for token identities (`token.id` is a keyed hash of the token): at least 16 bytes. Give every
    /// Envoy of a fleet the same key so a caller has one identity everywhere. Without it the bundle's key is used,
    /// and without that each Envoy makes a random one.
    #[serde(default)]
    pub token_hash_key: Option<String>,
    /// The most bytes of Envoy shared data a bundle's dynamic lists and counters may use together (each sized by
    /// its `max_entries` / `max_keys`). A bundle that needs more is refused, so a policy cannot make every Envoy
    /// hold more memory than the operator allowed. Default 64 MiB.
    #[serde(default = "default_shared_data_budget_bytes")]
    pub shared_data_budget_bytes: u64,
    /// Time body inspection with the host's clock and publish it as `inspection_ns` / `inspected_bytes` (two
    /// clock readings per body chunk, about 3 µs: for benchmarks and diagnosis, off by default).
    #[serde(default)]
    pub time_inspection: bool,
    /// The most JWT signature verifications each VM (worker) runs per second, in bursts of at most one second's
    /// worth. A new token that would need one more is judged `jwt.unverified` instead (not cached, so it is
    /// verified once the budget allows): a flood of distinct forged tokens costs at most this many verifications
    /// per second and worker. Default 200; 1 to 1000000.
    #[serde(default = "default_jwt_verifications_per_second")]
    pub jwt_verifications_per_second: u32,
}

fn default_jwt_verifications_per_second() -> u32 {
    portcullis_policies::token_analysis::DEFAULT_VERIFICATIONS_PER_SECOND
}

fn default_shared_data_budget_bytes() -> u64 {
    64 * 1024 * 1024
}

fn default_poll_interval_ms() -> u64 {
    5_000
}

fn default_timeout_ms() -> u64 {
    5_000
}

fn default_max_backoff_ms() -> u64 {
    60_000
}

fn default_long_poll_seconds() -> u64 {
    30
}

fn default_status_interval_ms() -> u64 {
    5_000
}

fn default_max_revision_ahead_seconds() -> u64 {
    86_400
}

/// A configuration that cannot be used; the message names the field (e.g. `control_plane.cluster: ...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl PluginConfig {
    /// Parses and validates the plugin configuration.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] that names the offending field.
    pub fn parse(json: &[u8]) -> Result<PluginConfig, ConfigError> {
        if json.iter().all(u8::is_ascii_whitespace) {
            return Err(ConfigError(
                "configuration is empty: it needs at least control_plane.cluster and control_plane.bundle".into(),
            ));
        }
        let de = &mut serde_json::Deserializer::from_slice(json);
        let config: PluginConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." || path == "?" || path.is_empty() {
                ConfigError(format!("configuration: {inner}"))
            } else {
                ConfigError(format!("{path}: {inner}"))
            }
        })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let cp = &self.control_plane;
        let field = |name: &str, why: &str| Err(ConfigError(format!("control_plane.{name}: {why}")));
        if cp.cluster.trim().is_empty() {
            return field("cluster", "must name an Envoy cluster");
        }
        if !is_bundle_name(&cp.bundle) {
            return field("bundle", "must match [a-z0-9][a-z0-9._-]{0,63}");
        }
        if cp.authority.as_deref().is_some_and(|a| a.trim().is_empty()) {
            return field("authority", "must not be empty when set");
        }
        if !(100..=3_600_000).contains(&cp.poll_interval_ms) {
            return field("poll_interval_ms", "must be between 100 and 3600000");
        }
        if !(100..=600_000).contains(&cp.timeout_ms) {
            return field("timeout_ms", "must be between 100 and 600000");
        }
        if cp.max_backoff_ms < cp.poll_interval_ms || cp.max_backoff_ms > 3_600_000 {
            return field("max_backoff_ms", "must be at least poll_interval_ms and at most 3600000");
        }
        if cp.long_poll_seconds > 60 {
            return field("long_poll_seconds", "must be at most 60");
        }
        if cp.status_interval_ms != 0 && !(1_000..=3_600_000).contains(&cp.status_interval_ms) {
            return field("status_interval_ms", "must be 0 (no reports) or between 1000 and 3600000");
        }
        if self.token_hash_key.as_deref().is_some_and(|k| k.len() < 16) {
            return Err(ConfigError("token_hash_key: must be at least 16 bytes".into()));
        }
        self.trusted_keys()?;
        if let Some(b64) = &self.bundle_base64 {
            decode_base64(b64).ok_or_else(|| ConfigError("bundle_base64: not valid base64".into()))?;
        }
        if !(65_536..=(1 << 34)).contains(&self.shared_data_budget_bytes) {
            return Err(ConfigError("shared_data_budget_bytes: must be between 65536 and 17179869184".into()));
        }
        if !(1..=1_000_000).contains(&self.jwt_verifications_per_second) {
            return Err(ConfigError("jwt_verifications_per_second: must be between 1 and 1000000".into()));
        }
        if self.node.as_deref().is_some_and(|n| n.is_empty() || n.len() > 128) {
            return Err(ConfigError("node: must be 1 to 128 characters".into()));
        }
        Ok(())
    }

    /// The trusted signing keys, decoded.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the key whose id or value is invalid.
    pub fn trusted_keys(&self) -> Result<Vec<TrustedKey>, ConfigError> {
        self.trusted_keys
            .iter()
            .map(|(key_id, hex)| {
                let bad =
                    || ConfigError(format!("trusted_keys.{key_id}: must be an Ed25519 public key in 64 hex digits"));
                if !is_key_id(key_id) {
                    return Err(ConfigError(format!("trusted_keys.{key_id}: key ids are 1 to 64 of [A-Za-z0-9._-]")));
                }
                let bytes = decode_hex(hex.trim()).ok_or_else(bad)?;
                let public_key: [u8; 32] = bytes.try_into().map_err(|_| bad())?;
                Ok(TrustedKey { key_id: key_id.clone(), public_key })
            })
            .collect()
    }

    /// The inline bundle's bytes, if the configuration carries one.
    pub fn inline_bundle(&self) -> Option<Vec<u8>> {
        self.bundle_base64.as_deref().and_then(decode_base64)
    }

    /// The `:authority` to send fetches with.
    pub fn authority(&self) -> &str {
        self.control_plane.authority.as_deref().unwrap_or(&self.control_plane.cluster)
    }
}

/// Standard or URL-safe base64, padding optional, whitespace ignored (configuration files wrap long values).
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|c| !c.is_ascii_whitespace()) {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).ok()?);
        }
    }
    Some(out)
}

/// Bundle names are path segments: a strict charset keeps them from escaping `/v1/bundles/`.
fn is_bundle_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    first_ok
        && name.len() <= 64
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_in_both_alphabets_with_or_without_padding() {
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("aGVsbG8").unwrap(), b"hello");
        assert_eq!(decode_base64("-_8=").unwrap(), decode_base64("+/8=").unwrap());
        assert_eq!(decode_base64("aGVs\nbG8=").unwrap(), b"hello");
        assert!(decode_base64("a*b").is_none());
    }

    #[test]
    fn minimal_configuration_gets_defaults() {
        let c = PluginConfig::parse(br#"{"control_plane":{"cluster":"cp","bundle":"demo"}}"#).unwrap();
        assert_eq!(c.failure_mode, FailureMode::Open);
        assert_eq!(c.control_plane.poll_interval_ms, 5_000);
        assert_eq!(c.authority(), "cp");
        assert_eq!(c.jwt_verifications_per_second, 200);
    }

    #[test]
    fn the_verification_budget_is_bounded() {
        let parse = |n: &str| {
            let json =
                format!(r#"{{"control_plane":{{"cluster":"cp","bundle":"d"}},"jwt_verifications_per_second":{n}}}"#);
            PluginConfig::parse(json.as_bytes()).map(|c| c.jwt_verifications_per_second).map_err(|e| e.0)
        };
        assert_eq!(parse("5"), Ok(5));
        assert_eq!(parse("0"), Err("jwt_verifications_per_second: must be between 1 and 1000000".into()));
        assert!(parse("1000001").is_err());
        assert!(parse("-1").is_err());
    }

    #[test]
    fn errors_name_the_field() {
        let err = |json: &str| PluginConfig::parse(json.as_bytes()).unwrap_err().0;
        assert!(err(r#"{"control_plane":{"bundle":"demo"}}"#).starts_with("control_plane: missing field `cluster`"));
        assert!(err(r#"{"control_plane":{"cluster":"cp","bundle":"demo","pol_interval_ms":1}}"#)
            .starts_with("control_plane.pol_interval_ms: unknown field `pol_interval_ms`"));
        assert!(err(r#"{"control_plane":{"cluster":"cp","bundle":"demo"},"failure_mode":"shut"}"#)
            .starts_with("failure_mode: unknown variant `shut`"));
        assert!(err(r#"{"control_plane":{"cluster":"cp","bundle":"../etc"}}"#).starts_with("control_plane.bundle:"));
        assert!(err(r#"{"control_plane":{"cluster":"cp","bundle":"d","poll_interval_ms":5}}"#)
            .starts_with("control_plane.poll_interval_ms:"));
        assert!(err("").starts_with("configuration is empty"));
        assert_eq!(
            err(r#"{"control_plane":{"cluster":"cp","bundle":"d"},"trusted_keys":{"k1":"abcd"}}"#),
            "trusted_keys.k1: must be an Ed25519 public key in 64 hex digits"
        );
        assert_eq!(
            err(r#"{"control_plane":{"cluster":"cp","bundle":"d"},"bundle_base64":"***"}"#),
            "bundle_base64: not valid base64"
        );
        assert_eq!(
            err(r#"{"control_plane":{"cluster":"cp","bundle":"d","long_poll_seconds":90}}"#),
            "control_plane.long_poll_seconds: must be at most 60"
        );
        assert_eq!(
            err(r#"{"control_plane":{"cluster":"cp","bundle":"d"},"token_hash_key":"short"}"#),
            "token_hash_key: must be at least 16 bytes"
        );
        assert!(err("{").starts_with("configuration: EOF while parsing"), "{}", err("{"));
    }
}
