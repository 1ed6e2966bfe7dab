//! ES256 verification with fixed-base tables: one for the generator (per verifier) and one per configured key,
//! built when the bundle's keys are loaded.
//!
//! ECDSA verification computes u1·G + u2·Q. The generic path (`p256`'s `lincomb`) pays 256 point doublings and
//! about 100 additions per token; with a table of every j·64^i·P (j = 1..32, i = 0..42, affine) and the scalar
//! written in signed radix-64 digits (-32..=32, a negative digit subtracts), each product is at most 43 mixed
//! additions and no doubling. The arithmetic (points, scalars, field) is
//! `p256`'s; this file only chooses the order of additions. Every input is public (key, message, signature), so
//! variable time is fine, as in `p256`'s own `*_vartime` verification.
//!
//! A table is 43 × 32 affine points (about 100 KiB); the analysis builds one per P-256 key.

use std::sync::OnceLock;

use p256::elliptic_curve::group::Group as _;
use p256::elliptic_curve::ops::Reduce;
use p256::elliptic_curve::point::AffineCoordinates as _;
use p256::elliptic_curve::point::BatchNormalize;
use p256::{AffinePoint, FieldBytes, ProjectivePoint, Scalar};
use sha2::{Digest, Sha256};

/// Bits per window: the scalar is written in signed radix 2^WIDTH digits, each in -2^(WIDTH-1)..=2^(WIDTH-1).
const WIDTH: usize = 6;
/// Windows: enough for 257 bits, since the signed recoding of a 256-bit scalar may carry one bit past the top.
const WINDOWS: usize = 256 / WIDTH + 1;
/// Table points per window: the digit magnitudes 1 to 2^(WIDTH-1) (a negative digit subtracts the point).
const DIGITS: usize = 1 << (WIDTH - 1);

/// Every j·2^(WIDTH·i)·P (j = 1..=DIGITS) for one point P, affine: `points[i * DIGITS + j - 1]`.
pub(crate) struct FixedBaseTable {
    points: Vec<AffinePoint>,
}

impl FixedBaseTable {
    /// The table of `point` (about WINDOWS · (DIGITS + WIDTH) additions and doublings, one batched inversion).
    pub(crate) fn new(point: ProjectivePoint) -> FixedBaseTable {
        let mut projective = Vec::with_capacity(WINDOWS * DIGITS);
        let mut base = point;
        for _ in 0..WINDOWS {
            let mut multiple = base;
            for _ in 0..DIGITS {
                projective.push(multiple);
                multiple += base;
            }
            // The next window's base: 2^WIDTH·base.
            for _ in 0..WIDTH {
                base = base.double();
            }
        }
        FixedBaseTable { points: <ProjectivePoint as BatchNormalize<[ProjectivePoint]>>::batch_normalize(&projective) }
    }

    /// `scalar`·P, adding or subtracting one table point per nonzero signed digit.
    fn mul(&self, scalar: &Scalar, acc: &mut ProjectivePoint) {
        for (window, digit) in signed_digits(scalar).into_iter().enumerate() {
            let magnitude = usize::from(digit.unsigned_abs());
            if magnitude == 0 {
                continue;
            }
            let Some(point) = self.points.get(window * DIGITS + magnitude - 1) else { continue };
            if digit > 0 {
                *acc += point;
            } else {
                *acc -= point;
            }
        }
    }
}

/// The scalar's signed radix 2^WIDTH digits, least significant first: sum of digit_i·2^(WIDTH·i) is the scalar.
fn signed_digits(scalar: &Scalar) -> [i16; WINDOWS] {
    let mut little_endian: FieldBytes = scalar.to_bytes();
    little_endian.reverse();
    let bit_at = |bit: usize| little_endian.get(bit / 8).map_or(0, |byte| (byte >> (bit % 8)) & 1);
    let mut digits = [0i16; WINDOWS];
    let mut carry = 0i16;
    for (window, digit) in digits.iter_mut().enumerate() {
        let raw = (0..WIDTH).fold(0i16, |sum, k| sum | (i16::from(bit_at(window * WIDTH + k)) << k));
        let value = raw + carry;
        // Values from 2^(WIDTH-1) up become negative digits, borrowing 2^WIDTH from the next window.
        (*digit, carry) = if value >= 1 << (WIDTH - 1) { (value - (1 << WIDTH), 1) } else { (value, 0) };
    }
    digits
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
    use crate::token_analysis::test_rng::Rng;

    #[test]
    fn table_products_match_the_curve_arithmetic() {
        let g = ProjectivePoint::generator();
        let table = FixedBaseTable::new(g);
        // Digits at and around the signed-digit boundary (31, 32, 33 per window, and carries through them).
        for k in [1u64, 2, 15, 16, 17, 31, 32, 33, 63, 64, 65, 255, 256, 0x0820_8208_2082_0820, 0xDEAD_BEEF, u64::MAX] {
            let scalar = Scalar::from(k);
            let mut acc = ProjectivePoint::IDENTITY;
            table.mul(&scalar, &mut acc);
            assert_eq!(acc, g * scalar, "{k}");
        }
        let mut rng = Rng(0x7ab1e);
        let mut wide = vec![-Scalar::from(3u64), -Scalar::ONE, Scalar::ZERO, Scalar::from(u64::MAX).square().square()];
        wide.extend((0..20).map(|_| {
            let bytes = FieldBytes::try_from(rng.bytes(32).as_slice()).unwrap();
            <Scalar as Reduce<FieldBytes>>::reduce(&bytes)
        }));
        for big in wide {
            let mut acc = ProjectivePoint::IDENTITY;
            table.mul(&big, &mut acc);
            assert_eq!(acc, g * big, "{big:?}");
            let digits = signed_digits(&big);
            assert!(digits.iter().all(|d| d.unsigned_abs() as usize <= DIGITS), "{digits:?}");
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
