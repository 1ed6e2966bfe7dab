//! The verification keys of `tokens.jwt.keys`: an inline JWKS document (RFC 7517), checked key by key where the
//! YAML still has positions, then written to the bundle as JSON text.
//!
//! The checks here are structural and about what a key is for: a known `kty` with the members it needs, unpadded
//! base64url values of the right length for their curve, no private key material (a bundle goes to every Envoy),
//! an `alg` that fits the key, unique `kid`s, and a key for every allowed algorithm. They point at the offending
//! line. Whether jwt-simple can load a key (a point on its curve, ...) is then asked of
//! [`crate::token_analysis::JwtVerifier`], once the whole JWT policy is known.

use saphyr::{MarkedYaml, Scalar, YamlData};
use serde_json::{Map, Number, Value};

use crate::token::JwtPolicy;
use crate::token_analysis::{JwtVerifier, SUPPORTED_ALGS};

use super::policy::{field, kind, Compiler, PolicyError};

/// Keys of `tokens.jwt.keys`.
const KEYS_KEYS: &str = "jwks";
/// Members that only a private (or secret) JWK carries; `k` is the one secret a policy may hold (HMAC).
const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "oth"];
/// The smallest RSA modulus accepted, in bytes (2048 bits).
const MIN_RSA_MODULUS_BYTES: usize = 256;
/// Most keys in one JWKS.
const MAX_KEYS: usize = 64;

/// What a key can verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum KeyType {
    /// `kty: RSA`: RS* and PS*.
    Rsa,
    /// `kty: EC`, `crv: P-256`: ES256.
    P256,
    /// `kty: EC`, `crv: P-384`: ES384.
    P384,
    /// `kty: OKP`, `crv: Ed25519`: EdDSA.
    Ed25519,
    /// `kty: oct`: HS*.
    Oct,
}

impl KeyType {
    /// True when a key of this type verifies `alg` (one of [`SUPPORTED_ALGS`]).
    fn verifies(self, alg: &str) -> bool {
        match self {
            KeyType::Rsa => alg.starts_with("RS") || alg.starts_with("PS"),
            KeyType::P256 => alg == "ES256",
            KeyType::P384 => alg == "ES384",
            KeyType::Ed25519 => alg == "EdDSA",
            KeyType::Oct => alg.starts_with("HS"),
        }
    }

    /// The key an `alg` needs, for messages.
    fn needed_by(alg: &str) -> &'static str {
        match alg.get(..2) {
            Some("HS") => "an oct key",
            Some("RS" | "PS") => "an RSA key",
            _ if alg == "ES256" => "an EC P-256 key",
            _ if alg == "ES384" => "an EC P-384 key",
            _ => "an OKP Ed25519 key",
        }
    }

    /// The key type, for messages.
    fn name(self) -> &'static str {
        match self {
            KeyType::Rsa => "an RSA key",
            KeyType::P256 => "an EC P-256 key",
            KeyType::P384 => "an EC P-384 key",
            KeyType::Ed25519 => "an OKP Ed25519 key",
            KeyType::Oct => "an oct key",
        }
    }
}

/// One checked key.
#[derive(Clone, Debug)]
pub(super) struct KeyInfo {
    /// What it verifies.
    pub key_type: KeyType,
    /// Its `alg`, when it names one: it then verifies that algorithm only.
    pub alg: Option<String>,
    /// The secret of an `oct` key, decoded.
    pub secret: Option<Vec<u8>>,
    /// Where the secret (`k`) is written: line and column, for weak-key errors.
    pub secret_at: Option<(usize, usize)>,
    /// How messages name it: `key 'kid'`, or `key 2` (1-based) without a kid.
    pub name: String,
    /// False for a key marked for another use than verifying signatures.
    pub verifies: bool,
}

impl KeyInfo {
    /// True when this key can verify a token signed with `alg`.
    pub(super) fn verifies(&self, alg: &str) -> bool {
        self.verifies && self.key_type.verifies(alg) && self.alg.as_deref().is_none_or(|a| a == alg)
    }
}

/// The checked JWKS: the JSON text for the bundle and what each key is.
#[derive(Clone, Debug)]
pub(super) struct Jwks {
    /// The document as JSON, for [`crate::token::JwtPolicy::jwks`].
    pub json: String,
    /// The keys, in document order.
    pub keys: Vec<KeyInfo>,
}

/// The key a token signed with `alg` needs, for "no key verifies" messages.
pub(super) fn key_needed_by(alg: &str) -> &'static str {
    KeyType::needed_by(alg)
}

impl Compiler<'_> {
    /// `keys: { jwks: {...} }`: the JWKS, checked.
    pub(super) fn jwks(&self, node: &MarkedYaml<'_>) -> Result<Jwks, PolicyError> {
        let fields = self.fields(node, KEYS_KEYS, "keys")?;
        let document = self.required(&fields, "jwks", node, "keys")?;
        let YamlData::Mapping(members) = &document.data else {
            return Err(self.error(
                document,
                format!("'jwks' must be a JWKS document: a mapping with a 'keys' list, found {}", kind(document)),
            ));
        };
        let mut json = Map::new();
        let mut keys = Vec::new();
        for (name_node, value) in members {
            let name = self.member_name(name_node)?;
            if name == "keys" {
                let (items, infos) = self.jwk_list(value)?;
                json.insert(name, Value::Array(items));
                keys = infos;
            } else {
                json.insert(name, self.json(value)?);
            }
        }
        if !json.contains_key("keys") {
            return Err(self.error(document, "missing required field 'keys' in jwks"));
        }
        Ok(Jwks { json: Value::Object(json).to_string(), keys })
    }

    /// The `keys` member: each key checked, converted, and described.
    fn jwk_list(&self, node: &MarkedYaml<'_>) -> Result<(Vec<Value>, Vec<KeyInfo>), PolicyError> {
        let items = self.sequence("keys", node)?;
        if items.is_empty() {
            return Err(self.error(node, "a JWKS needs at least one key"));
        }
        let mut values = Vec::with_capacity(items.len());
        let mut infos: Vec<KeyInfo> = Vec::with_capacity(items.len());
        let mut kids: Vec<(String, usize)> = Vec::new();
        for (index, item) in items.iter().enumerate() {
            if index >= MAX_KEYS {
                return Err(self.error(item, format!("too many keys in the JWKS (at most {MAX_KEYS})")));
            }
            let (value, info, kid) = self.jwk(item, index)?;
            if info.verifies {
                load_key(&value)
                    .map_err(|reason| self.error(item, format!("{} cannot be loaded: {reason}", info.name)))?;
            }
            if let Some((kid, kid_node)) = kid {
                if let Some((_, line)) = kids.iter().find(|(seen, _)| *seen == kid) {
                    return Err(self.error(kid_node, format!("duplicate kid '{kid}' (first used at line {line})")));
                }
                kids.push((kid, kid_node.span.start.line()));
            }
            values.push(value);
            infos.push(info);
        }
        Ok((values, infos))
    }

    /// One JWK: its JSON, what it is, and its kid (with the node, for duplicate errors).
    #[allow(clippy::type_complexity)]
    fn jwk<'n, 'i>(
        &self,
        node: &'n MarkedYaml<'i>,
        index: usize,
    ) -> Result<(Value, KeyInfo, Option<(String, &'n MarkedYaml<'i>)>), PolicyError> {
        let YamlData::Mapping(members) = &node.data else {
            return Err(self.error(node, format!("a JWK must be a mapping with 'kty', found {}", kind(node))));
        };
        let mut fields = Vec::with_capacity(members.len());
        for (name_node, value) in members {
            fields.push((self.member_name(name_node)?, name_node, value));
        }
        let kid = match field(&fields, "kid") {
            Some(value) => Some((self.text("kid", value)?, value)),
            None => None,
        };
        let name = match &kid {
            Some((kid, _)) => format!("key '{kid}'"),
            None => format!("key {}", index + 1),
        };
        let kty_node = self.required(&fields, "kty", node, &name)?;
        let kty = self.text("kty", kty_node)?;
        // Members read as strings whatever YAML made of them (`kid: 1` is the string "1" in the document).
        let mut strings = vec!["kty", "kid", "alg", "use"];
        let key_type = match kty.as_str() {
            "RSA" => {
                let n = self.b64_member(&fields, "n", node, &name)?;
                self.b64_member(&fields, "e", node, &name)?;
                let bits = n.iter().skip_while(|&&b| b == 0).count() * 8;
                if bits < MIN_RSA_MODULUS_BYTES * 8 {
                    let at = field(&fields, "n").unwrap_or(node);
                    return Err(self.error(
                        at,
                        format!(
                            "the RSA modulus of {name} has {bits} bits; at least {} are needed",
                            MIN_RSA_MODULUS_BYTES * 8
                        ),
                    ));
                }
                strings.extend(["n", "e"]);
                KeyType::Rsa
            }
            "EC" => {
                let crv_node = self.required(&fields, "crv", node, &name)?;
                let (key_type, size) = match self.text("crv", crv_node)?.as_str() {
                    "P-256" => (KeyType::P256, 32),
                    "P-384" => (KeyType::P384, 48),
                    other => {
                        return Err(self.error(
                            crv_node,
                            format!("invalid crv '{other}' for an EC key (expected one of: P-256, P-384)"),
                        ));
                    }
                };
                self.coordinate(&fields, "x", size, node, &name)?;
                self.coordinate(&fields, "y", size, node, &name)?;
                strings.extend(["crv", "x", "y"]);
                key_type
            }
            "OKP" => {
                let crv_node = self.required(&fields, "crv", node, &name)?;
                let crv = self.text("crv", crv_node)?;
                if crv != "Ed25519" {
                    return Err(self.error(crv_node, format!("invalid crv '{crv}' for an OKP key (expected Ed25519)")));
                }
                self.coordinate(&fields, "x", 32, node, &name)?;
                strings.extend(["crv", "x"]);
                KeyType::Ed25519
            }
            "oct" => {
                // Its strength (length for the algorithm, weak list, entropy) is judged once the algorithms are
                // known: `Compiler::check_hmac_keys`.
                self.b64_member(&fields, "k", node, &name)?;
                strings.push("k");
                KeyType::Oct
            }
            other => {
                return Err(self.error(kty_node, format!("invalid kty '{other}' (expected one of: RSA, EC, OKP, oct)")));
            }
        };
        if key_type != KeyType::Oct {
            if let Some((member, member_node, _)) =
                fields.iter().find(|(n, _, _)| PRIVATE_MEMBERS.contains(&n.as_str()))
            {
                return Err(self.error(
                    member_node,
                    format!(
                        "{name} carries private key material ('{member}'): a policy goes to every proxy, give the \
                         public key only"
                    ),
                ));
            }
        }
        // A key marked for another use (`use: enc`, `key_ops` without `verify`) stays in the document but verifies
        // nothing, as in the analysis: a provider's whole JWKS can be pasted.
        let mut verifies = match field(&fields, "use") {
            Some(value) => self.text("use", value)? == "sig",
            None => true,
        };
        if let Some(value) = field(&fields, "key_ops") {
            let ops = self.sequence("key_ops", value)?;
            verifies &= ops.iter().any(|op| self.scalar_text(op).as_deref() == Some("verify"));
        }
        let alg = match field(&fields, "alg") {
            None => None,
            Some(value) => {
                let mut alg = self.text("alg", value)?;
                // RFC 9864's fully specified name for EdDSA over Ed25519, which the analysis accepts too.
                if alg == "Ed25519" {
                    alg = "EdDSA".to_owned();
                }
                self.check_alg(&alg, value)?;
                if !key_type.verifies(&alg) {
                    return Err(self.error(value, format!("alg '{alg}' does not fit {name}, {}", key_type.name())));
                }
                Some(alg)
            }
        };
        let secret = match key_type {
            KeyType::Oct => Some(self.b64_member(&fields, "k", node, &name)?),
            _ => None,
        };
        let secret_at = match key_type {
            KeyType::Oct => field(&fields, "k").map(|k| (k.span.start.line(), k.span.start.col())),
            _ => None,
        };

        let mut json = Map::new();
        for (member, _, value) in &fields {
            let value = if strings.contains(&member.as_str()) {
                Value::String(self.text(member, value)?)
            } else {
                self.json(value)?
            };
            json.insert(member.clone(), value);
        }
        let info = KeyInfo { key_type, alg, secret, secret_at, name, verifies };
        Ok((Value::Object(json), info, kid))
    }

    /// An alg name from [`SUPPORTED_ALGS`]; `none` in any case is refused outright.
    pub(super) fn check_alg(&self, alg: &str, node: &MarkedYaml<'_>) -> Result<(), PolicyError> {
        if alg.eq_ignore_ascii_case("none") {
            return Err(self.error(node, "alg none can never be allowed: it means an unsigned token"));
        }
        if !SUPPORTED_ALGS.contains(&alg) {
            return Err(self.error(node, format!("unknown alg '{alg}' (known: {})", SUPPORTED_ALGS.join(", "))));
        }
        Ok(())
    }

    /// A curve coordinate: base64url of exactly `size` bytes.
    fn coordinate(
        &self,
        fields: &super::policy::Fields<'_, '_>,
        member: &str,
        size: usize,
        node: &MarkedYaml<'_>,
        name: &str,
    ) -> Result<(), PolicyError> {
        let bytes = self.b64_member(fields, member, node, name)?;
        if bytes.len() != size {
            let at = field(fields, member).unwrap_or(node);
            return Err(self
                .error(at, format!("'{member}' of {name} must be {size} bytes for its curve, found {}", bytes.len())));
        }
        Ok(())
    }

    /// A required base64url member of a JWK, decoded; errors point at the offending character.
    fn b64_member(
        &self,
        fields: &super::policy::Fields<'_, '_>,
        member: &str,
        node: &MarkedYaml<'_>,
        name: &str,
    ) -> Result<Vec<u8>, PolicyError> {
        let value = self.required(fields, member, node, name)?;
        let text = self.text(member, value)?;
        decode_base64url(&text).map_err(|(offset, problem)| {
            self.error_in_scalar(value, &text, offset, format!("invalid base64url in '{member}' of {name}: {problem}"))
        })
    }

    /// A member name: a string.
    fn member_name(&self, node: &MarkedYaml<'_>) -> Result<String, PolicyError> {
        match &node.data {
            YamlData::Value(Scalar::String(s)) => Ok(s.to_string()),
            _ => Err(self.error(node, format!("a JWKS member name must be a string, found {}", kind(node)))),
        }
    }

    /// Any other YAML value as JSON.
    fn json(&self, node: &MarkedYaml<'_>) -> Result<Value, PolicyError> {
        Ok(match &node.data {
            YamlData::Value(Scalar::String(s)) => Value::String(s.to_string()),
            YamlData::Value(Scalar::Integer(i)) => Value::Number((*i).into()),
            YamlData::Value(Scalar::FloatingPoint(f)) => match Number::from_f64(f.into_inner()) {
                Some(n) => Value::Number(n),
                None => return Err(self.error(node, "a JWKS cannot hold infinite or NaN numbers")),
            },
            YamlData::Value(Scalar::Boolean(b)) => Value::Bool(*b),
            YamlData::Value(Scalar::Null) => Value::Null,
            YamlData::Sequence(items) => Value::Array(items.iter().map(|i| self.json(i)).collect::<Result<_, _>>()?),
            YamlData::Mapping(members) => {
                let mut map = Map::new();
                for (name, value) in members {
                    map.insert(self.member_name(name)?, self.json(value)?);
                }
                Value::Object(map)
            }
            _ => {
                return Err(self.error(node, format!("a JWKS holds plain JSON values, found {}", kind(node))));
            }
        })
    }
}

/// Loads one key as the analysis will, so a key jwt-simple refuses (a point off its curve, ...) is an error at
/// that key.
fn load_key(jwk: &Value) -> Result<(), String> {
    let policy = JwtPolicy {
        jwks: serde_json::json!({ "keys": [jwk] }).to_string(),
        allowed_algs: Vec::new(),
        issuers: Vec::new(),
        audiences: Vec::new(),
        max_lifetime_seconds: None,
        clock_skew_seconds: 0,
        require_exp: true,
        weak_secrets: Vec::new(),
    };
    JwtVerifier::new(&policy).map(drop).map_err(|e| {
        // The verifier names the key by its place in this one-key document; the caller names it better.
        let message = e.to_string();
        message
            .split_once("): ")
            .or_else(|| message.split_once("key 0: "))
            .map_or(message.clone(), |(_, reason)| reason.to_owned())
    })
}

/// Decodes unpadded base64url (RFC 7515 §2); the error is the byte offset of the problem and what it is.
pub(super) fn decode_base64url(text: &str) -> Result<Vec<u8>, (usize, String)> {
    if text.is_empty() {
        return Err((0, "the value is empty".to_owned()));
    }
    let mut sextets = Vec::with_capacity(text.len());
    for (offset, c) in text.char_indices() {
        let value = match c {
            'A'..='Z' => u32::from(c) - u32::from('A'),
            'a'..='z' => u32::from(c) - u32::from('a') + 26,
            '0'..='9' => u32::from(c) - u32::from('0') + 52,
            '-' => 62,
            '_' => 63,
            '=' => return Err((offset, "padding '=' is not used in JWKs".to_owned())),
            '+' | '/' => {
                return Err((
                    offset,
                    format!("'{c}' is standard base64, not base64url (use '-' for '+' and '_' for '/')"),
                ));
            }
            _ => return Err((offset, format!("unexpected {c:?} (use A-Z, a-z, 0-9, '-' and '_')"))),
        };
        sextets.push(value);
    }
    decode_sextets(&sextets).ok_or_else(|| (text.len().saturating_sub(1), "truncated value".to_owned()))
}

/// Decodes standard base64 (RFC 4648 §4), padded or not; `None` when malformed.
pub(super) fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let body = text.trim_end_matches('=');
    if text.len() - body.len() > 2 || (body.len() != text.len() && text.len() % 4 != 0) {
        return None;
    }
    let sextets: Option<Vec<u32>> = body
        .chars()
        .map(|c| match c {
            'A'..='Z' => Some(u32::from(c) - u32::from('A')),
            'a'..='z' => Some(u32::from(c) - u32::from('a') + 26),
            '0'..='9' => Some(u32::from(c) - u32::from('0') + 52),
            '+' => Some(62),
            '/' => Some(63),
            _ => None,
        })
        .collect();
    decode_sextets(&sextets?)
}

/// Six-bit groups to bytes; `None` for a lone trailing sextet or non-zero leftover bits (a non-canonical encoding).
fn decode_sextets(sextets: &[u32]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(sextets.len() * 3 / 4);
    for chunk in sextets.chunks(4) {
        let mut bits: u32 = 0;
        for &s in chunk {
            bits = (bits << 6) | s;
        }
        let (bytes, spare) = match chunk.len() {
            4 => (3, 0),
            3 => (2, 2),
            2 => (1, 4),
            _ => return None,
        };
        if bits & ((1 << spare) - 1) != 0 {
            return None;
        }
        let bits = bits >> spare;
        for i in (0..bytes).rev() {
            out.push(((bits >> (8 * i)) & 0xff) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url() {
        assert_eq!(decode_base64url("AQAB").unwrap(), [1, 0, 1]);
        assert_eq!(decode_base64url("_-8").unwrap(), [0xff, 0xef]);
        assert_eq!(decode_base64url("YQ").unwrap(), b"a");
        assert_eq!(decode_base64url("YWI").unwrap(), b"ab");
        assert_eq!(decode_base64url("YQ==").unwrap_err().0, 2);
        assert_eq!(decode_base64url("a+b").unwrap_err().0, 1);
        assert_eq!(decode_base64url("ab c").unwrap_err().0, 2);
        assert!(decode_base64url("").is_err());
        assert!(decode_base64url("A").is_err(), "a lone sextet is no byte");
        assert!(decode_base64url("YR").is_err(), "leftover bits must be zero");
    }

    #[test]
    fn base64() {
        assert_eq!(decode_base64("YWJj").unwrap(), b"abc");
        assert_eq!(decode_base64("YQ==").unwrap(), b"a");
        assert_eq!(decode_base64("YQ").unwrap(), b"a");
        assert_eq!(decode_base64("+/8=").unwrap(), [0xfb, 0xff]);
        assert_eq!(decode_base64("YQ="), None, "padding must complete a quantum");
        assert_eq!(decode_base64("Y==="), None);
        assert_eq!(decode_base64("Y-Q="), None);
    }

    #[test]
    fn algs_fit_key_types() {
        assert!(KeyType::Rsa.verifies("PS384"));
        assert!(!KeyType::Rsa.verifies("HS256"));
        assert!(KeyType::P256.verifies("ES256") && !KeyType::P256.verifies("ES384"));
        assert!(KeyType::Oct.verifies("HS512"));
        assert!(KeyType::Ed25519.verifies("EdDSA"));
        for &alg in SUPPORTED_ALGS {
            let fitting = [KeyType::Rsa, KeyType::P256, KeyType::P384, KeyType::Ed25519, KeyType::Oct]
                .into_iter()
                .filter(|k| k.verifies(alg))
                .map(KeyType::name)
                .collect::<Vec<_>>();
            assert_eq!(fitting, [KeyType::needed_by(alg)], "{alg}");
        }
    }
}
