//! Caller identity: a keyed hash of the token, or of chosen claims of a verified JWT.

use sha2::{Digest, Sha256};

use crate::token::{TokenIdentity, TokenPolicy};

use super::{TokenAnalysis, TokenKind};

/// Domain separation: these hashes never collide with any other use of the same key.
const DOMAIN: &[u8] = b"portcullis token identity v1\0";

/// The identity of the caller presenting `token` (`token.id`), as a 128-bit HMAC-SHA256 under `key`.
///
/// With [`TokenIdentity::Claims`], the identity is the hash of those claims' names and values, so a caller keeps
/// it across token refreshes. Only for a JWT whose signature verified with a configured key
/// ([`TokenAnalysis::is_authentic`]): otherwise anyone could mint a token with someone else's `sub` and act (or get
/// blocked) under their identity. Without an analysis, for an opaque or unverified token, or when a claim is
/// missing, the identity is the hash of the token itself. Each part is length-prefixed, so no two different claim
/// lists hash alike.
pub fn identity(policy: &TokenPolicy, key: &[u8], token: &[u8], analysis: Option<&TokenAnalysis>) -> [u8; 16] {
    if let TokenIdentity::Claims(names) = &policy.identity {
        let verified = analysis.filter(|a| a.kind == TokenKind::Jwt && a.is_authentic());
        if let (false, Some(a)) = (names.is_empty(), verified) {
            let values: Option<Vec<&str>> = names.iter().map(|n| a.claim(n)).collect();
            if let Some(values) = values {
                let mut parts: Vec<&[u8]> = vec![b"claims"];
                for (name, value) in names.iter().zip(&values) {
                    parts.push(name.as_bytes());
                    parts.push(value.as_bytes());
                }
                return truncate(hmac_sha256(key, &parts));
            }
        }
    }
    truncate(hmac_sha256(key, &[b"token", token]))
}

/// `id` as 32 lower-case hex digits, the form `token.id` takes in rules and lists.
pub fn identity_hex(id: &[u8; 16]) -> String {
    crate::bundle::hex(id)
}

fn truncate(mac: [u8; 32]) -> [u8; 16] {
    let mut id = [0; 16];
    for (d, s) in id.iter_mut().zip(mac) {
        *d = s;
    }
    id
}

/// HMAC-SHA256 (RFC 2104) of [`DOMAIN`] followed by each part, length-prefixed.
fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        for (d, s) in block.iter_mut().zip(Sha256::digest(key)) {
            *d = s;
        }
    } else {
        for (d, s) in block.iter_mut().zip(key) {
            *d = *s;
        }
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(DOMAIN);
    for part in parts {
        inner.update((part.len() as u64).to_be_bytes());
        inner.update(part);
    }
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_shape() {
        // RFC 4231 test case 2, with our domain and framing removed from the comparison: check the primitive by
        // recomputing it the long way.
        let key = b"Jefe";
        let mut block = [0u8; 64];
        block[..4].copy_from_slice(key);
        let mut msg = DOMAIN.to_vec();
        msg.extend_from_slice(&3u64.to_be_bytes());
        msg.extend_from_slice(b"abc");
        let inner = Sha256::new().chain_update(block.map(|b| b ^ 0x36)).chain_update(&msg).finalize();
        let outer: [u8; 32] = Sha256::new().chain_update(block.map(|b| b ^ 0x5c)).chain_update(inner).finalize().into();
        assert_eq!(hmac_sha256(key, &[b"abc"]), outer);
    }

    #[test]
    fn hex_is_lower_case_and_32_digits() {
        let id = [0xab; 16];
        assert_eq!(identity_hex(&id), "ab".repeat(16));
    }
}
