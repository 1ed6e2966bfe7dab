//! RSASSA-PKCS1-v1_5 verification (RS256/384/512) on Montgomery arithmetic prepared once per key.
//!
//! Verifying is one modular exponentiation by the public exponent (17 Montgomery products for e = 65537, on the
//! plain signature, and one product with a per-key constant that removes the powers of R⁻¹) and a byte
//! comparison with the expected encoding (RFC 8017 §8.2.2: encode, then compare; nothing is parsed out of the
//! signature). The modulus' Montgomery parameters are computed when the bundle's keys are loaded, not per token,
//! and the exponentiation is variable-time (see [`super::montgomery`]): everything it handles is public.

use sha2::{Digest, Sha256, Sha384, Sha512};

use super::keys::Alg;
use super::montgomery::{Modulus, PreparedExponent};

/// The DER `DigestInfo` prefixes of RFC 8017 §9.2 (note 1), before the hash.
const SHA256_PREFIX: &[u8] =
    &[0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20];
const SHA384_PREFIX: &[u8] =
    &[0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30];
const SHA512_PREFIX: &[u8] =
    &[0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40];

/// An RSA public key ready to verify: the modulus' Montgomery parameters and the exponent.
pub(crate) struct RsaKey {
    /// The modulus, big-endian, without leading zeros: its length is the signature length k.
    modulus: Vec<u8>,
    /// The modulus prepared for Montgomery arithmetic (n0' and R² mod n).
    prepared: Modulus,
    /// The public exponent, prepared for this modulus (no Montgomery conversions per signature).
    exponent: PreparedExponent,
}

impl RsaKey {
    /// Prepares `n` and `e` (big-endian). The caller has already checked their sizes (jwt-simple's key checks).
    pub(crate) fn new(n: &[u8], e: &[u8]) -> Option<RsaKey> {
        let modulus: Vec<u8> = n.iter().copied().skip_while(|&b| b == 0).collect();
        let exponent: Vec<u8> = e.iter().copied().skip_while(|&b| b == 0).collect();
        if modulus.is_empty() || exponent.is_empty() {
            return None;
        }
        let prepared = Modulus::new(&modulus)?;
        let exponent = prepared.prepare(&exponent)?;
        Some(RsaKey { modulus, prepared, exponent })
    }

    /// `signature`^e mod n as k bytes, or `None` for a signature that is not k bytes or not below n.
    fn open(&self, signature: &[u8]) -> Option<Vec<u8>> {
        let k = self.modulus.len();
        // RFC 8017 §8.2.2 step 1 and RSAVP1 step 1: exactly k bytes, and below the modulus.
        if signature.len() != k || signature >= self.modulus.as_slice() {
            return None;
        }
        self.prepared.pow_prepared(signature, &self.exponent, k)
    }

    /// RSASSA-PKCS1-v1_5 verification of `signature` over `message` with the hash of `alg` (RS256/384/512).
    pub(crate) fn verify_pkcs1(&self, alg: Alg, message: &[u8], signature: &[u8]) -> bool {
        let (prefix, digest): (&[u8], Vec<u8>) = match alg {
            Alg::RS256 => (SHA256_PREFIX, Sha256::digest(message).to_vec()),
            Alg::RS384 => (SHA384_PREFIX, Sha384::digest(message).to_vec()),
            Alg::RS512 => (SHA512_PREFIX, Sha512::digest(message).to_vec()),
            _ => return false,
        };
        let Some(opened) = self.open(signature) else { return false };
        let k = self.modulus.len();
        let t_len = prefix.len() + digest.len();
        // EM = 0x00 || 0x01 || PS (at least 8 bytes of 0xFF) || 0x00 || DigestInfo.
        let Some(padding) = k.checked_sub(t_len + 3).filter(|&p| p >= 8) else { return false };
        let mut expected = Vec::with_capacity(k);
        expected.extend_from_slice(&[0x00, 0x01]);
        expected.resize(2 + padding, 0xFF);
        expected.push(0x00);
        expected.extend_from_slice(prefix);
        expected.extend_from_slice(&digest);
        opened == expected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy modulus (61 × 53 = 3233, e = 17): the exponentiation, checked by hand.
    #[test]
    fn exponentiation_matches_a_small_example() {
        let key = RsaKey::new(&3233u16.to_be_bytes(), &[17]).unwrap();
        // 65^17 mod 3233 = 2790 (the textbook RSA example).
        assert_eq!(key.open(&65u16.to_be_bytes()).unwrap(), 2790u16.to_be_bytes());
        assert!(key.open(&3233u16.to_be_bytes()).is_none(), "not below n");
        assert!(key.open(&[65]).is_none(), "not k bytes");
        assert!(RsaKey::new(&[0x0c, 0xa0], &[17]).is_none(), "an even modulus");
        assert!(RsaKey::new(&3233u16.to_be_bytes(), &[0, 0]).is_none(), "a zero exponent");
        // e = 1 and e = 3, and every base of the toy modulus, against plain arithmetic.
        for e in [1u64, 3, 17, 65537] {
            let key = RsaKey::new(&3233u16.to_be_bytes(), &e.to_be_bytes()).unwrap();
            for s in 0..3233u64 {
                let expected = (0..64).rev().fold(1u64, |acc, bit| {
                    let squared = acc * acc % 3233;
                    if e >> bit & 1 == 1 {
                        squared * s % 3233
                    } else {
                        squared
                    }
                });
                let opened = key.open(&(s as u16).to_be_bytes()).unwrap();
                assert_eq!(u16::from_be_bytes([opened[0], opened[1]]) as u64, expected, "{s}^{e}");
            }
        }
    }
}
