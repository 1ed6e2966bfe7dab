//! ES256 verification with fixed-base tables: one for the generator (per verifier) and one per configured key,
//! built when the bundle's keys are loaded.
//!
//! ECDSA verification computes u1·G + u2·Q. The generic path (`p256`'s `lincomb`) pays 256 point doublings and
//! about 100 additions per token; with a table of every j·16^i·P (j = 1..15, i = 0..63, affine) each product is at
//! most 64 mixed additions and no doubling, about a third of the work. The arithmetic (points, scalars, field) is
//! `p256`'s; this file only chooses the order of additions. Every input is public (key, message, signature), so
//! variable time is fine, as in `p256`'s own `*_vartime` verification.
//!
//! A table is 64 × 15 affine points (about 70 KiB); the analysis builds one per P-256 key.

use std::sync::OnceLock;

use p256::elliptic_curve::group::Group as _;
use p256::elliptic_curve::ops::Reduce;
use p256::elliptic_curve::point::AffineCoordinates as _;
use p256::elliptic_curve::point::BatchNormalize;
use p256::{AffinePoint, FieldBytes, ProjectivePoint, Scalar};
use sha2::{Digest, Sha256};

/// Radix-16 digits of a 256-bit scalar.
const WINDOWS: usize = 64;
/// Nonzero digit values: 1 to 15.
const DIGITS: usize = 15;

/// Every j·16^i·P for one point P, affine: `points[i * DIGITS + j - 1]`.
pub(crate) struct FixedBaseTable {
    points: Vec<AffinePoint>,
}

impl FixedBaseTable {
    /// The table of `point` (about 1,000 additions and one batched inversion).
    pub(crate) fn new(point: ProjectivePoint) -> FixedBaseTable {
        let mut projective = Vec::with_capacity(WINDOWS * DIGITS);
        let mut base = point;
        for _ in 0..WINDOWS {
            let mut multiple = base;
            for _ in 0..DIGITS {
                projective.push(multiple);
                multiple += base;
            }
            // `multiple` is now 16·base: the next window's base.
            base = multiple;
        }
        FixedBaseTable { points: <ProjectivePoint as BatchNormalize<[ProjectivePoint]>>::batch_normalize(&projective) }
    }

    /// `scalar`·P, adding one table point per nonzero radix-16 digit.
    fn mul(&self, scalar: &Scalar, acc: &mut ProjectivePoint) {
        let bytes: FieldBytes = scalar.to_bytes();
        // Big-endian bytes; window i is the i-th least significant nibble.
        for (byte_index, byte) in bytes.iter().rev().enumerate() {
            for (half, digit) in [(0, byte & 0x0F), (1, byte >> 4)] {
                let window = byte_index * 2 + half;
                if digit != 0 {
                    if let Some(point) = self.points.get(window * DIGITS + usize::from(digit) - 1) {
                        *acc += point;
                    }
                }
            }
        }
    }
}

/// The generator's table, built on first use in this VM.
fn generator_table() -> &'static FixedBaseTable {
    static TABLE: OnceLock<FixedBaseTable> = OnceLock::new();
    TABLE.get_or_init(|| FixedBaseTable::new(ProjectivePoint::generator()))
}

/// A P-256 public key with its fixed-base table.
pub(crate) struct P256Key {
    table: FixedBaseTable,
}

impl P256Key {
    /// Builds the key's table (and the generator's, once per VM). `point` is a validated public key.
    pub(crate) fn new(point: ProjectivePoint) -> P256Key {
        generator_table();
        P256Key { table: FixedBaseTable::new(point) }
    }

    /// ECDSA P-256 with SHA-256 over `message`; `signature` is `r || s` (RFC 7518 §3.4), each below the order and
    /// not zero.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(signature) = p256::ecdsa::Signature::from_slice(signature) else { return false };
        let (r, s) = signature.split_scalars();
        let Ok(digest) = FieldBytes::try_from(Sha256::digest(message).as_slice()) else { return false };
        let z = <Scalar as Reduce<FieldBytes>>::reduce(&digest);
        let Some(s_inv) = Option::<Scalar>::from(s.invert_vartime()) else { return false };
        let (u1, u2) = (z * s_inv, *r * s_inv);
        let mut point = ProjectivePoint::IDENTITY;
        generator_table().mul(&u1, &mut point);
        self.table.mul(&u2, &mut point);
        if bool::from(point.is_identity()) {
            return false;
        }
        let x = point.to_affine().x();
        *r == <Scalar as Reduce<FieldBytes>>::reduce(&x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_products_match_the_curve_arithmetic() {
        let g = ProjectivePoint::generator();
        let table = FixedBaseTable::new(g);
        for k in [1u64, 2, 15, 16, 17, 255, 256, 0xDEAD_BEEF, u64::MAX] {
            let scalar = Scalar::from(k);
            let mut acc = ProjectivePoint::IDENTITY;
            table.mul(&scalar, &mut acc);
            assert_eq!(acc, g * scalar, "{k}");
        }
        let big = -Scalar::from(3u64);
        let mut acc = ProjectivePoint::IDENTITY;
        table.mul(&big, &mut acc);
        assert_eq!(acc, g * big);
    }

    /// A small deterministic generator (xorshift64*), enough for test inputs.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn bytes(&mut self, len: usize) -> Vec<u8> {
            (0..len).map(|_| self.next() as u8).collect()
        }
    }

    /// `p256`'s own verdict on `signature` (`r || s`) over `message`.
    fn reference(key: &p256::ecdsa::VerifyingKey, message: &[u8], signature: &[u8]) -> bool {
        use p256::ecdsa::signature::Verifier as _;
        p256::ecdsa::Signature::from_slice(signature).is_ok_and(|sig| key.verify(message, &sig).is_ok())
    }

    /// Random keys, messages and signatures against `p256`'s verification: genuine signatures pass, and every
    /// altered signature or message gets the same verdict as `p256` gives it (a refusal, in practice).
    #[test]
    fn verification_matches_p256_on_random_keys_and_signatures() {
        use p256::ecdsa::signature::Signer as _;
        let mut rng = Rng(0x5eed_0256);
        let rounds = if cfg!(target_arch = "wasm32") { 3 } else { 24 };
        for round in 0..rounds {
            let Ok(signing) = p256::ecdsa::SigningKey::from_slice(&rng.bytes(32)) else { continue };
            let verifying = *signing.verifying_key();
            let key = P256Key::new(ProjectivePoint::from(*verifying.as_affine()));
            for _ in 0..4 {
                let message = rng.bytes(round % 50);
                let signature: p256::ecdsa::Signature = signing.sign(&message);
                let bytes = signature.to_bytes();
                assert!(key.verify(&message, &bytes), "round {round}");
                // The same signature with s replaced by n - s (also valid ECDSA).
                let (r, s) = signature.split_scalars();
                let high = p256::ecdsa::Signature::from_scalars(*r, -*s).map(|sig| sig.to_bytes());
                if let Ok(high) = high {
                    assert_eq!(key.verify(&message, &high), reference(&verifying, &message, &high));
                }
                let mut altered = bytes.to_vec();
                let bit = (rng.next() % 512) as usize;
                altered[bit / 8] ^= 1 << (bit % 8);
                assert_eq!(key.verify(&message, &altered), reference(&verifying, &message, &altered));
                assert!(!key.verify(&message, &altered), "round {round}, bit {bit}");
                let mut other = message.clone();
                other.push(rng.next() as u8);
                assert!(!key.verify(&other, &bytes), "round {round}");
                let noise = rng.bytes(64);
                assert_eq!(key.verify(&message, &noise), reference(&verifying, &message, &noise));
                assert!(!key.verify(&message, &[bytes.as_slice(), &[0]].concat()));
            }
        }
    }
}
