//! The `tokens:` section: where a request's token is found, what identifies a caller, and how JWTs are judged.

use saphyr::MarkedYaml;

use crate::token::{JwtPolicy, TokenIdentity, TokenPolicy, TokenSource};
use crate::token_analysis::{JwtVerifier, BUILTIN_WEAK_SECRETS};

use super::jwks::{decode_base64, key_needed_by, Jwks};
use super::policy::{field, parse_duration, Compiler, PolicyError};
use super::weak_keys::weakness;

/// Keys of `tokens`.
const TOKENS_KEYS: &str = "sources, identity, hash_key, jwt";
/// Keys of a token source.
const SOURCE_KEYS: &str = "header, scheme, cookie, query";
/// Keys of `tokens.jwt`.
const JWT_KEYS: &str = "keys, allowed_algs, issuers, audiences, max_lifetime, clock_skew, require_exp, weak_secrets";
/// Most token sources: each is a lookup on every request.
const MAX_SOURCES: usize = 8;
/// Most claims in `identity: claims(...)`.
const MAX_IDENTITY_CLAIMS: usize = 8;
/// Shortest and longest `hash_key`, in bytes.
const HASH_KEY_BYTES: core::ops::RangeInclusive<usize> = 16..=64;
/// Clock skew when the policy does not say, in seconds.
const DEFAULT_CLOCK_SKEW: u64 = 60;
/// Largest clock skew: one hour.
const MAX_CLOCK_SKEW: u64 = 3_600;
/// Largest `max_lifetime`: one year.
const MAX_LIFETIME: u64 = 365 * 86_400;
/// Most entries in `issuers`, `audiences` or a `weak_secrets` list.
const MAX_JWT_LIST: usize = 1_024;

impl Compiler<'_> {
    /// The `tokens:` section.
    pub(super) fn tokens(&self, node: &MarkedYaml<'_>) -> Result<TokenPolicy, PolicyError> {
        let fields = self.fields(node, TOKENS_KEYS, "tokens")?;
        let sources_node = self.required(&fields, "sources", node, "tokens")?;
        let items = self.sequence("sources", sources_node)?;
        if items.is_empty() {
            return Err(self.error(sources_node, "'sources' must name at least one place to find the token"));
        }
        let mut sources = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            if index >= MAX_SOURCES {
                return Err(self.error(item, format!("too many token sources (at most {MAX_SOURCES})")));
            }
            sources.push(self.token_source(item)?);
        }
        let identity = match field(&fields, "identity") {
            None => TokenIdentity::Token,
            Some(value) => {
                let text = self.text("identity", value)?;
                parse_identity(&text)
                    .map_err(|(offset, message)| self.error_in_scalar(value, &text, offset, message))?
            }
        };
        let hash_key = match field(&fields, "hash_key") {
            None => None,
            Some(value) => Some(self.hash_key(value)?),
        };
        let jwt = match field(&fields, "jwt") {
            None => None,
            Some(value) => Some(self.jwt(value)?),
        };
        Ok(TokenPolicy { sources, identity, hash_key, jwt })
    }

    /// One source: exactly one of `header` (with an optional `scheme`), `cookie` or `query`.
    fn token_source(&self, node: &MarkedYaml<'_>) -> Result<TokenSource, PolicyError> {
        let fields = self.fields(node, SOURCE_KEYS, "token source")?;
        let places: Vec<_> = fields.iter().filter(|(name, _, _)| name != "scheme").collect();
        let (place, value) = match places.as_slice() {
            [] => {
                return Err(self.error(node, "a token source needs one of header, cookie or query"));
            }
            [(place, _, value)] => (place.as_str(), *value),
            [(first, _, _), (second, key, _), ..] => {
                return Err(self.error(
                    key,
                    format!(
                        "a token source names one place, found '{first}' and '{second}' (list them as two sources, \
                         tried in order)"
                    ),
                ));
            }
        };
        let name = self.text(place, value)?;
        let scheme = match field(&fields, "scheme") {
            None => None,
            Some(scheme_node) if place != "header" => {
                let key = fields.iter().find(|(n, _, _)| n == "scheme").map_or(scheme_node, |&(_, k, _)| k);
                return Err(self.error(key, format!("'scheme' applies to header sources, not to a {place}")));
            }
            Some(scheme_node) => {
                let scheme = self.text("scheme", scheme_node)?;
                if !is_http_token(&scheme) {
                    return Err(
                        self.error(scheme_node, format!("invalid scheme '{scheme}' (one word, such as Bearer)"))
                    );
                }
                Some(scheme)
            }
        };
        let valid = match place {
            "query" => !name.is_empty() && !name.contains(|c: char| c.is_whitespace() || matches!(c, '&' | '=' | '#')),
            _ => is_http_token(&name),
        };
        if !valid {
            return Err(self.error(value, format!("invalid {place} name '{name}'")));
        }
        Ok(match place {
            "header" => TokenSource::Header { name: name.to_ascii_lowercase(), scheme },
            "cookie" => TokenSource::Cookie { name },
            _ => TokenSource::Query { name },
        })
    }

    /// `hash_key: base64:…` or `hex:…`.
    fn hash_key(&self, node: &MarkedYaml<'_>) -> Result<Vec<u8>, PolicyError> {
        let text = self.text("hash_key", node)?;
        let expected =
            format!("expected base64:... or hex:... of {} to {} bytes", HASH_KEY_BYTES.start(), HASH_KEY_BYTES.end());
        let key = if let Some(b64) = text.strip_prefix("base64:") {
            decode_base64(b64)
        } else if let Some(hex) = text.strip_prefix("hex:") {
            decode_hex(hex)
        } else {
            return Err(self.error(node, format!("invalid hash_key ({expected})")));
        };
        let Some(key) = key else {
            let encoding = text.split(':').next().unwrap_or_default();
            return Err(self.error(node, format!("invalid hash_key: malformed {encoding} ({expected})")));
        };
        if !HASH_KEY_BYTES.contains(&key.len()) {
            return Err(self.error(node, format!("invalid hash_key: {} bytes ({expected})", key.len())));
        }
        Ok(key)
    }

    /// `tokens.jwt`.
    fn jwt(&self, node: &MarkedYaml<'_>) -> Result<JwtPolicy, PolicyError> {
        let fields = self.fields(node, JWT_KEYS, "jwt")?;
        let keys_node = self.required(&fields, "keys", node, "jwt")?;
        let jwks = self.jwks(keys_node)?;

        let algs_node = self.required(&fields, "allowed_algs", node, "jwt")?;
        let allowed_algs = self.allowed_algs(algs_node, &jwks)?;
        let issuers = match field(&fields, "issuers") {
            Some(value) => self.strings("issuers", value)?,
            None => Vec::new(),
        };
        let audiences = match field(&fields, "audiences") {
            Some(value) => self.strings("audiences", value)?,
            None => Vec::new(),
        };
        let max_lifetime_seconds = match field(&fields, "max_lifetime") {
            Some(value) => Some(self.duration("max_lifetime", value, 1, MAX_LIFETIME, "1s to 365d")?),
            None => None,
        };
        let clock_skew_seconds = match field(&fields, "clock_skew") {
            Some(value) => self.duration("clock_skew", value, 0, MAX_CLOCK_SKEW, "0s to 1h")?,
            None => DEFAULT_CLOCK_SKEW,
        };
        let require_exp = match field(&fields, "require_exp") {
            Some(value) => self.bool("require_exp", value)?,
            None => true,
        };
        let weak_secrets = match field(&fields, "weak_secrets") {
            Some(value) => self.weak_secrets(value)?,
            None => builtin_weak_secrets(),
        };
        self.check_hmac_keys(&jwks, &allowed_algs, &weak_secrets, keys_node)?;
        let policy = JwtPolicy {
            jwks: jwks.json,
            allowed_algs,
            issuers,
            audiences,
            max_lifetime_seconds,
            clock_skew_seconds,
            require_exp,
            weak_secrets,
        };
        verify_keys(&policy).map_err(|message| self.error(keys_node, message))?;
        Ok(policy)
    }

    /// Refuses an HMAC key that is too short for an algorithm it verifies (RFC 7518 §3.2: at least the hash output,
    /// 32/48/64 bytes for HS256/384/512), on the built-in weak list or the policy's, or low in entropy: any of these
    /// lets an attacker recover the key from one token and sign anything. The error points at the key's `k`.
    fn check_hmac_keys(
        &self,
        jwks: &Jwks,
        allowed_algs: &[String],
        weak_secrets: &[String],
        keys_node: &MarkedYaml<'_>,
    ) -> Result<(), PolicyError> {
        for key in &jwks.keys {
            let Some(secret) = key.secret.as_deref() else { continue };
            let error = |message: String| match key.secret_at {
                Some((line, col)) => self.error_at(line, col, message),
                None => self.error(keys_node, message),
            };
            if weak_secrets.iter().any(|w| w.as_bytes() == secret) {
                return Err(error(format!("the secret of {} is on the policy's weak_secrets list", key.name)));
            }
            // The strongest HMAC algorithm the key may verify sets the length it needs.
            let algs = ["HS512", "HS384", "HS256"];
            let alg = algs
                .iter()
                .find(|a| {
                    key.alg.as_deref() == Some(**a) || (key.alg.is_none() && allowed_algs.iter().any(|x| x == *a))
                })
                .copied()
                .unwrap_or("HS256");
            let hash_bytes = match alg {
                "HS512" => 64,
                "HS384" => 48,
                _ => 32,
            };
            if let Some(reason) = weakness(secret, hash_bytes, alg) {
                return Err(error(format!("the secret of {} {reason}", key.name)));
            }
        }
        Ok(())
    }

    /// `allowed_algs`: known names, no `none`, no repeats, each with a key that can verify it.
    fn allowed_algs(&self, node: &MarkedYaml<'_>, jwks: &Jwks) -> Result<Vec<String>, PolicyError> {
        let items = self.sequence("allowed_algs", node)?;
        if items.is_empty() {
            return Err(self.error(node, "'allowed_algs' must name at least one alg"));
        }
        let mut algs: Vec<String> = Vec::with_capacity(items.len());
        for item in items {
            let alg = self.text("allowed_algs", item)?;
            self.check_alg(&alg, item)?;
            if algs.contains(&alg) {
                return Err(self.error(item, format!("alg '{alg}' is listed twice")));
            }
            if !jwks.keys.iter().any(|k| k.verifies(&alg)) {
                return Err(self.error(
                    item,
                    format!(
                        "no key in the JWKS verifies {alg} (it needs {}): add one, or remove {alg}",
                        key_needed_by(&alg)
                    ),
                ));
            }
            algs.push(alg);
        }
        Ok(algs)
    }

    /// A list of non-empty strings (`issuers`, `audiences`, weak secrets).
    fn strings(&self, what: &str, node: &MarkedYaml<'_>) -> Result<Vec<String>, PolicyError> {
        let items = self.sequence(what, node)?;
        let mut out = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            if index >= MAX_JWT_LIST {
                return Err(self.error(item, format!("too many entries in '{what}' (at most {MAX_JWT_LIST})")));
            }
            let text = self.text(what, item)?;
            if text.is_empty() {
                return Err(self.error(item, format!("an entry of '{what}' must not be empty")));
            }
            out.push(text);
        }
        Ok(out)
    }

    /// A duration field in `min..=max` seconds (`range` says it in words).
    pub(super) fn duration(
        &self,
        what: &str,
        node: &MarkedYaml<'_>,
        min: u64,
        max: u64,
        range: &str,
    ) -> Result<u64, PolicyError> {
        let text = self.text(what, node)?;
        match parse_duration(&text) {
            None => Err(self.error(
                node,
                format!("invalid {what} '{text}' (expected a duration such as 90s, 15m, 24h, 7d or 1h30m)"),
            )),
            Some(seconds) if !(min..=max).contains(&seconds) => {
                Err(self.error(node, format!("{what} '{text}' is out of range (from {range})")))
            }
            Some(seconds) => Ok(seconds),
        }
    }

    /// `weak_secrets: builtin | none | [secret, ...]`.
    fn weak_secrets(&self, node: &MarkedYaml<'_>) -> Result<Vec<String>, PolicyError> {
        if matches!(node.data, saphyr::YamlData::Sequence(_)) {
            return self.strings("weak_secrets", node);
        }
        match self.scalar_text(node).as_deref() {
            Some("builtin") => Ok(builtin_weak_secrets()),
            Some("none") => Ok(Vec::new()),
            other => Err(self.error(
                node,
                format!(
                    "invalid weak_secrets{} (expected builtin, none or a list of secrets)",
                    other.map(|o| format!(" '{o}'")).unwrap_or_default()
                ),
            )),
        }
    }
}

/// The secrets `weak_secrets: builtin` stands for (also the default): the bundle carries them, so every proxy
/// judges with the list of the compiler that built it.
fn builtin_weak_secrets() -> Vec<String> {
    BUILTIN_WEAK_SECRETS.iter().map(|s| (*s).to_owned()).collect()
}

/// Asks the verifier whether it can load the keys: what the structural checks cannot see (a point off its curve,
/// a key jwt-simple refuses) is a compile error rather than a bundle every proxy refuses.
fn verify_keys(policy: &JwtPolicy) -> Result<(), String> {
    JwtVerifier::new(policy).map(drop).map_err(|e| e.to_string())
}

/// `token` or `claims(name, ...)`; the error is a byte offset in `text` and a message.
fn parse_identity(text: &str) -> Result<TokenIdentity, (usize, String)> {
    const EXPECTED: &str = "expected token or claims(name, ...)";
    let mut cursor = Cursor { text, at: 0 };
    cursor.skip_spaces();
    let word_at = cursor.at;
    let word = cursor.take_while(|c| c.is_ascii_alphanumeric() || c == '_');
    match word {
        "token" => {
            cursor.skip_spaces();
            return match cursor.peek() {
                None => Ok(TokenIdentity::Token),
                Some(_) => Err((cursor.at, format!("unexpected text after 'token' ({EXPECTED})"))),
            };
        }
        "claims" => {}
        "" => return Err((word_at, format!("invalid identity ({EXPECTED})"))),
        other => return Err((word_at, format!("invalid identity '{other}' ({EXPECTED})"))),
    }
    cursor.skip_spaces();
    if cursor.peek() != Some('(') {
        return Err((cursor.at, "expected '(' after claims: claims(name, ...)".to_owned()));
    }
    cursor.bump();
    let mut claims: Vec<String> = Vec::new();
    loop {
        cursor.skip_spaces();
        let name_at = cursor.at;
        let name = cursor.take_while(|c| !c.is_whitespace() && !matches!(c, ',' | '(' | ')' | '"' | '\''));
        if name.is_empty() {
            let message = match cursor.peek() {
                Some(')') if claims.is_empty() => "claims() needs at least one claim name".to_owned(),
                Some(c) => format!("expected a claim name, found '{c}'"),
                None => "expected a claim name, found the end".to_owned(),
            };
            return Err((name_at, message));
        }
        if claims.iter().any(|c| c == name) {
            return Err((name_at, format!("claim '{name}' is listed twice")));
        }
        if claims.len() >= MAX_IDENTITY_CLAIMS {
            return Err((name_at, format!("too many claims (at most {MAX_IDENTITY_CLAIMS})")));
        }
        claims.push(name.to_owned());
        cursor.skip_spaces();
        match cursor.peek() {
            Some(',') => cursor.bump(),
            Some(')') => {
                cursor.bump();
                break;
            }
            Some(c) => return Err((cursor.at, format!("expected ',' or ')' after a claim name, found '{c}'"))),
            None => return Err((cursor.at, "expected ')' to close claims(".to_owned())),
        }
    }
    cursor.skip_spaces();
    if cursor.peek().is_some() {
        return Err((cursor.at, "unexpected text after ')'".to_owned()));
    }
    Ok(TokenIdentity::Claims(claims))
}

/// A position in a short text being parsed.
struct Cursor<'t> {
    text: &'t str,
    at: usize,
}

impl<'t> Cursor<'t> {
    fn peek(&self) -> Option<char> {
        self.text.get(self.at..)?.chars().next()
    }

    fn bump(&mut self) {
        self.at += self.peek().map_or(0, char::len_utf8);
    }

    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> &'t str {
        let start = self.at;
        while self.peek().is_some_and(&keep) {
            self.bump();
        }
        self.text.get(start..self.at).unwrap_or_default()
    }

    fn skip_spaces(&mut self) {
        self.take_while(char::is_whitespace);
    }
}

/// An RFC 9110 token: header names, cookie names and auth schemes.
fn is_http_token(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
}

/// Hex, either case, an even number of digits; `None` when malformed.
fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    let digits: Option<Vec<u8>> = text.chars().map(|c| c.to_digit(16).and_then(|d| u8::try_from(d).ok())).collect();
    Some(digits?.chunks(2).map(|pair| pair.iter().fold(0, |acc, d| (acc << 4) | d)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities() {
        assert_eq!(parse_identity("token"), Ok(TokenIdentity::Token));
        assert_eq!(parse_identity("  token "), Ok(TokenIdentity::Token));
        assert_eq!(parse_identity("claims(iss, sub)"), Ok(TokenIdentity::Claims(vec!["iss".into(), "sub".into()])));
        assert_eq!(
            parse_identity("claims ( https://example.com/tenant,sub )"),
            Ok(TokenIdentity::Claims(vec!["https://example.com/tenant".into(), "sub".into()]))
        );
        let err = |text: &str| parse_identity(text).unwrap_err();
        assert_eq!(err("tokens"), (0, "invalid identity 'tokens' (expected token or claims(name, ...))".into()));
        assert_eq!(err("token x"), (6, "unexpected text after 'token' (expected token or claims(name, ...))".into()));
        assert_eq!(err("claims iss"), (7, "expected '(' after claims: claims(name, ...)".into()));
        assert_eq!(err("claims()"), (7, "claims() needs at least one claim name".into()));
        assert_eq!(err("claims(iss,)"), (11, "expected a claim name, found ')'".into()));
        assert_eq!(err("claims(iss sub)"), (11, "expected ',' or ')' after a claim name, found 's'".into()));
        assert_eq!(err("claims(iss, iss)"), (12, "claim 'iss' is listed twice".into()));
        assert_eq!(err("claims(iss"), (10, "expected ')' to close claims(".into()));
        assert_eq!(err("claims(iss) x"), (12, "unexpected text after ')'".into()));
        assert_eq!(err("claims(\"iss\")"), (7, "expected a claim name, found '\"'".into()));
        assert_eq!(err(""), (0, "invalid identity (expected token or claims(name, ...))".into()));
        assert_eq!(err("claims(a,b,c,d,e,f,g,h,i)").1, "too many claims (at most 8)");
    }

    #[test]
    fn hex_and_tokens() {
        assert_eq!(decode_hex("00ffA0"), Some(vec![0, 255, 160]));
        assert_eq!(decode_hex("0"), None);
        assert_eq!(decode_hex("zz"), None);
        assert!(is_http_token("x-api-key"));
        assert!(!is_http_token("x api"));
        assert!(!is_http_token(""));
    }
}
