//! Strict decoders for what a token is made of: base64url segments, JSON objects, percent-encoded query values.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;

/// Decodes unpadded base64url (RFC 7515 §2) strictly: only the URL-safe alphabet, no `=`, no whitespace, no
/// length of the form 4n+1, and zero unused trailing bits, so each byte string has exactly one encoding.
/// Lenient decoders are how a token that one party reads differently from another slips through.
pub(crate) fn base64url_decode(input: &[u8]) -> Option<Vec<u8>> {
    if input.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(input.len() / 4 * 3 + 2);
    let mut acc: u32 = 0;
    let mut bits: u32 = 0;
    for &c in input {
        acc = (acc << 6) | u32::from(sextet(c)?);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // Whatever is left over must be zero padding bits.
    (acc == 0).then_some(out)
}

fn sextet(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'-' => Some(62),
        b'_' => Some(63),
        _ => None,
    }
}

/// Encodes bytes as unpadded base64url (tests and the evaluation mint tokens with it).
#[cfg(test)]
pub(crate) fn base64url_encode(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// The members of a JSON object in document order, rejecting duplicate names (RFC 7515 §4 lets a parser reject
/// them; taking the first or the last one would let the filter and the upstream read different claims).
pub(crate) struct Members(pub(crate) Vec<(String, Value)>);

impl Members {
    /// Parses `bytes` as one JSON object; `None` for anything else (not JSON, not an object, duplicate names).
    pub(crate) fn parse(bytes: &[u8]) -> Option<Members> {
        serde_json::from_slice::<Members>(bytes).ok()
    }

    /// The value of member `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }
}

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;

        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut members: Vec<(String, Value)> = Vec::new();
                while let Some((name, value)) = map.next_entry::<String, Value>()? {
                    if members.iter().any(|(k, _)| *k == name) {
                        return Err(serde::de::Error::custom("duplicate member"));
                    }
                    members.push((name, value));
                }
                Ok(Members(members))
            }
        }

        deserializer.deserialize_map(MembersVisitor)
    }
}

/// Percent-decodes a query-string component (`%41` → `A`). Malformed escapes stay as they are; `+` stays `+`
/// (RFC 3986 gives it no meaning, and a base64 token may carry it literally).
pub(crate) fn percent_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&c) = input.get(i) {
        if c == b'%' {
            let hi = input.get(i + 1).and_then(|&h| hex_value(h));
            let lo = input.get(i + 2).and_then(|&l| hex_value(l));
            if let (Some(hi), Some(lo)) = (hi, lo) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_round_trips_and_is_strict() {
        for len in 0..40 {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let enc = base64url_encode(&data);
            assert_eq!(base64url_decode(enc.as_bytes()).unwrap(), data);
        }
        assert_eq!(base64url_decode(b"Zm9v").unwrap(), b"foo");
        assert!(base64url_decode(b"Zm9v=").is_none(), "padding");
        assert!(base64url_decode(b"Zm 9v").is_none(), "space");
        assert!(base64url_decode(b"Zm+v").is_none(), "standard alphabet");
        assert!(base64url_decode(b"A").is_none(), "4n+1 length");
        assert!(base64url_decode(b"AB").is_none(), "non-zero unused bits");
        assert_eq!(base64url_decode(b"AA").unwrap(), [0]);
    }

    #[test]
    fn members_reject_duplicates_and_non_objects() {
        assert!(Members::parse(br#"{"a":1,"b":"x"}"#).is_some());
        assert!(Members::parse(br#"{"a":1,"a":2}"#).is_none());
        assert!(Members::parse(b"[1]").is_none());
        assert!(Members::parse(b"foo").is_none());
        assert!(Members::parse(br#"{"a":1} x"#).is_none());
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode(b"a%2Eb%2e%zz%4"), b"a.b.%zz%4");
        assert_eq!(percent_decode(b"a+b"), b"a+b");
    }
}
