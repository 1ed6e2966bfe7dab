//! Variable-time modular exponentiation by Montgomery multiplication, for RSA verification.
//!
//! Verifying an RSA signature handles only public data (the signature, the modulus and the exponent), so nothing
//! here needs to run in constant time. Numbers are held in 28-bit limbs so that a whole column of 32×32→64-bit
//! products (wasm32 multiplies those natively) adds up in a `u64` with no carry to propagate per product: each
//! Montgomery product is one pass over the columns (product scanning, reduction interleaved), a square computes
//! each cross product once and doubles it, and nothing is allocated per product. The modulus' constants
//! (n0' = −n⁻¹ mod 2²⁸ and R² mod n, R = 2^(28·limbs)) are computed once, when a key is loaded.

use crypto_bigint::{BoxedUint, NonZero};

/// Bits per limb: products of two limbs are below 2⁵⁶, so a `u64` holds the sum of 255 of them.
const LIMB_BITS: u32 = 28;
const LIMB_MASK: u64 = (1 << LIMB_BITS) - 1;
/// The most limbs a modulus may have (7,140 bits), so that each of a column's two sums (operands' products,
/// reduction's products) has at most 255 products.
const MAX_LIMBS: usize = 255;

/// A public exponent e prepared for one modulus (see [`Modulus::prepare`]).
pub(crate) struct PreparedExponent {
    /// e, big-endian, without leading zeros.
    bits: Vec<u8>,
    /// R^e mod n in limbs: the one product that turns s^e·R^−(e−1) into s^e.
    correction: Vec<u32>,
}

/// An odd modulus prepared for Montgomery arithmetic.
pub(crate) struct Modulus {
    /// n in 28-bit limbs, least significant first, without leading zero limbs.
    n: Vec<u32>,
    /// −n⁻¹ mod 2²⁸: the factor that clears a column's low limb in a reduction step.
    n0: u32,
    /// R² mod n in 28-bit limbs: the Montgomery product with it enters Montgomery form.
    r2: Vec<u32>,
}

impl Modulus {
    /// Prepares `n` (big-endian): `None` unless it is odd, above 1 and at most 7,140 bits long.
    pub(crate) fn new(n: &[u8]) -> Option<Modulus> {
        let n = n.get(n.iter().take_while(|&&byte| byte == 0).count()..).unwrap_or_default();
        let limbs = limbs_from_be(n);
        let low = *limbs.first()?;
        if low & 1 == 0 || limbs == [1] || limbs.len() > MAX_LIMBS {
            return None;
        }
        // Newton's iteration doubles the correct low bits each step: 1 (n is odd) → 2 → 4 → 8 → 16 → 32.
        let inverse = (0..5).fold(1u32, |x, _| x.wrapping_mul(2u32.wrapping_sub(low.wrapping_mul(x))));
        let r2 = r_squared(n, limbs.len())?;
        Some(Modulus { n0: inverse.wrapping_neg() & LIMB_MASK as u32, n: limbs, r2 })
    }

    /// `base`^`exponent` mod n, both big-endian, as `len` big-endian bytes: `None` when `base` is not below n,
    /// `exponent` is zero or the result does not fit `len` bytes. The general path: enters and leaves Montgomery
    /// form (see [`Modulus::prepare`] for an exponent used many times). The tests' reference for the prepared path.
    #[cfg(test)]
    pub(crate) fn pow(&self, base: &[u8], exponent: &[u8], len: usize) -> Option<Vec<u8>> {
        limbs_to_be(&self.pow_limbs(base, exponent)?, len)
    }

    /// `base`^`exponent` mod n in limbs (`limbs` long), by the general path.
    fn pow_limbs(&self, base: &[u8], exponent: &[u8]) -> Option<Vec<u32>> {
        let limbs = self.n.len();
        let (mut power, bits) = self.start(base, exponent)?;
        // Scratch for the whole exponentiation: the base in Montgomery form and the reduction's factors.
        let mut scratch = vec![0u32; 2 * limbs];
        let (base, factors) = scratch.split_at_mut(limbs);
        // Into Montgomery form: base·R² ·R⁻¹ = base·R, which is also the power for the leading 1 bit.
        self.product(&mut power, factors, |x, lo, hi| dot(x, &self.r2, lo, hi));
        base.copy_from_slice(&power);
        for bit in bits {
            self.product(&mut power, factors, square_column);
            if bit {
                self.product(&mut power, factors, |x, lo, hi| dot(x, base, lo, hi));
            }
        }
        // Out of Montgomery form: the product with 1.
        self.product(&mut power, factors, product_with_one);
        Some(power)
    }

    /// Prepares `exponent` (big-endian) for many exponentiations modulo n: `None` if it is zero.
    ///
    /// With M(a, b) = a·b·R⁻¹, running the exponentiation's squares and multiplications on the plain base s
    /// (not s·R) gives s^e·R^−(e−1) (the power of R⁻¹ follows the same recurrence as the exponent, less one), and
    /// one product with R^e mod n makes it s^e mod n: no conversion into or out of Montgomery form per token.
    pub(crate) fn prepare(&self, exponent: &[u8]) -> Option<PreparedExponent> {
        let limbs = self.n.len();
        // R mod n = M(R², 1).
        let mut r = self.r2.clone();
        let mut factors = vec![0u32; limbs];
        self.product(&mut r, &mut factors, product_with_one);
        let r = limbs_to_be(&r, limbs * 4)?;
        let correction = self.pow_limbs(&r, exponent)?;
        let bits = exponent.get(exponent.iter().take_while(|&&byte| byte == 0).count()..).unwrap_or_default();
        Some(PreparedExponent { bits: bits.to_vec(), correction })
    }

    /// `base`^e mod n for a prepared exponent e, as `len` big-endian bytes: `None` when `base` is not below n or
    /// the result does not fit `len` bytes.
    pub(crate) fn pow_prepared(&self, base: &[u8], exponent: &PreparedExponent, len: usize) -> Option<Vec<u8>> {
        let limbs = self.n.len();
        if exponent.correction.len() != limbs {
            return None;
        }
        let (mut power, bits) = self.start(base, &exponent.bits)?;
        let mut scratch = vec![0u32; 2 * limbs];
        let (base, factors) = scratch.split_at_mut(limbs);
        // The plain base (below n) is the power for the leading 1 bit: s·R⁻⁰.
        base.copy_from_slice(&power);
        for bit in bits {
            self.product(&mut power, factors, square_column);
            if bit {
                self.product(&mut power, factors, |x, lo, hi| dot(x, base, lo, hi));
            }
        }
        // s^e·R^−(e−1) · R^e · R⁻¹ = s^e mod n, fully reduced (each product's result is below n).
        self.product(&mut power, factors, |x, lo, hi| dot(x, &exponent.correction, lo, hi));
        limbs_to_be(&power, len)
    }

    /// The base in limbs (`None` unless below n) and the exponent's bits after its leading 1 (`None` if it is 0).
    fn start<'e>(&self, base: &[u8], exponent: &'e [u8]) -> Option<(Vec<u32>, impl Iterator<Item = bool> + 'e)> {
        let limbs = self.n.len();
        let mut power = limbs_from_be(base);
        if power.len() > limbs {
            return None;
        }
        power.resize(limbs, 0);
        if !less_than(&power, &self.n) {
            return None;
        }
        // Left to right over the exponent's bits (public: variable time is fine), from the one after the leading 1.
        let mut bits = exponent.iter().flat_map(|byte| (0..8).rev().map(move |bit| byte >> bit & 1 == 1));
        bits.find(|&bit| bit)?;
        Some((power, bits))
    }

    /// A Montgomery product in place: `x` ← (x·y)·R⁻¹ mod n, for `x` and y below n, column by column.
    ///
    /// `column(x, lo, hi)` is the sum of xⱼ·y(lo+hi−j) for j in lo..=hi (column lo+hi of x·y). Column k ≥ limbs
    /// writes limb k − limbs of the result over x, whose last use was in column k − 1, so x can be both.
    /// `factors` (limbs long) receives the multiples of n that clear the low columns.
    #[inline(always)]
    fn product(&self, x: &mut [u32], factors: &mut [u32], column: impl Fn(&[u32], usize, usize) -> u64) {
        let len = self.n.len();
        let n_low = u64::from(self.n.first().copied().unwrap_or(1));
        let mut carry = 0u64;
        // The low columns choose each factor so that the column, plus the factor times n's lowest limb, ends in 28
        // zero bits: the product plus factors·n is then a multiple of R.
        for k in 0..len {
            let products = column(x, 0, k);
            let reduction = dot_reversed(factors.get(..k).unwrap_or_default(), self.n.get(1..=k).unwrap_or_default());
            let (low, high) = split_sum(carry, products, reduction);
            let factor = (low as u32).wrapping_mul(self.n0) & LIMB_MASK as u32;
            if let Some(slot) = factors.get_mut(k) {
                *slot = factor;
            }
            carry = high + ((low + u64::from(factor) * n_low) >> LIMB_BITS);
        }
        // The high columns are the result, divided by R.
        for (k, out) in (len..2 * len).zip(0..) {
            let lo = k + 1 - len;
            let products = column(x, lo, len - 1);
            let reduction = dot(factors, &self.n, lo, len - 1);
            let (low, high) = split_sum(carry, products, reduction);
            if let Some(limb) = x.get_mut(out) {
                *limb = (low & LIMB_MASK) as u32;
            }
            carry = high + (low >> LIMB_BITS);
        }
        // The result (plus carry·R) is below 2n: subtract n once if it is not below n.
        if carry != 0 || !less_than(x, &self.n) {
            let mut borrow = 0u32;
            for (limb, &m) in x.iter_mut().zip(&self.n) {
                let difference = limb.wrapping_sub(m).wrapping_sub(borrow);
                *limb = difference & LIMB_MASK as u32;
                borrow = difference >> 31;
            }
        }
    }
}

/// Column lo+hi of x·1: only x's own limbs, in the columns whose low index is 0.
#[inline(always)]
fn product_with_one(x: &[u32], lo: usize, hi: usize) -> u64 {
    if lo == 0 {
        x.get(hi).map_or(0, |&l| u64::from(l))
    } else {
        0
    }
}

/// carry + products + reduction, split as a low part (below 2³⁰) and a high part to add once shifted: the three
/// together can exceed a `u64`.
#[inline(always)]
fn split_sum(carry: u64, products: u64, reduction: u64) -> (u64, u64) {
    let low = (carry & LIMB_MASK) + (products & LIMB_MASK) + (reduction & LIMB_MASK);
    let high = (carry >> LIMB_BITS) + (products >> LIMB_BITS) + (reduction >> LIMB_BITS);
    (low, high)
}

/// Σ xⱼ·y(lo+hi−j) for j in lo..=hi: column lo+hi of x·y.
#[inline(always)]
fn dot(x: &[u32], y: &[u32], lo: usize, hi: usize) -> u64 {
    dot_reversed(x.get(lo..=hi).unwrap_or_default(), y.get(lo..=hi).unwrap_or_default())
}

/// Column lo+hi of x·x: each cross product once, doubled, plus the square on the diagonal if there is one.
#[inline(always)]
fn square_column(x: &[u32], lo: usize, hi: usize) -> u64 {
    let width = (hi + 1).saturating_sub(lo);
    let pairs = width / 2;
    let cross = dot_reversed(x.get(lo..lo + pairs).unwrap_or_default(), x.get(hi + 1 - pairs..=hi).unwrap_or_default());
    let diagonal = if width % 2 == 1 { x.get(lo + pairs).map_or(0, |&l| u64::from(l) * u64::from(l)) } else { 0 };
    2 * cross + diagonal
}

/// Σ xⱼ·y(len−1−j): x forwards against y backwards, eight products per step.
#[inline(always)]
fn dot_reversed(x: &[u32], y: &[u32]) -> u64 {
    let product = |a: u32, b: u32| u64::from(a) * u64::from(b);
    let x_eights = x.chunks_exact(8);
    let y_eights = y.rchunks_exact(8);
    let (x_rest, y_rest) = (x_eights.remainder(), y_eights.remainder());
    let mut sum = 0u64;
    for (x, y) in x_eights.zip(y_eights) {
        // Always eight limbs each: the conversions cannot fail (and compile to nothing).
        let (Ok(&[x0, x1, x2, x3, x4, x5, x6, x7]), Ok(&[y0, y1, y2, y3, y4, y5, y6, y7])) =
            (<&[u32; 8]>::try_from(x), <&[u32; 8]>::try_from(y))
        else {
            continue;
        };
        sum = sum
            + product(x0, y7)
            + product(x1, y6)
            + product(x2, y5)
            + product(x3, y4)
            + product(x4, y3)
            + product(x5, y2)
            + product(x6, y1)
            + product(x7, y0);
    }
    for (&a, &b) in x_rest.iter().zip(y_rest.iter().rev()) {
        sum += product(a, b);
    }
    sum
}

/// Whether `a` < `b`, for limbs of the same length (least significant first).
fn less_than(a: &[u32], b: &[u32]) -> bool {
    a.iter().rev().lt(b.iter().rev())
}

/// Big-endian bytes as 28-bit limbs, least significant first, without leading zero limbs.
fn limbs_from_be(bytes: &[u8]) -> Vec<u32> {
    let mut limbs = Vec::with_capacity(bytes.len() * 8 / LIMB_BITS as usize + 1);
    let (mut pending, mut pending_bits) = (0u64, 0);
    for &byte in bytes.iter().rev() {
        pending |= u64::from(byte) << pending_bits;
        pending_bits += 8;
        if pending_bits >= LIMB_BITS {
            limbs.push((pending & LIMB_MASK) as u32);
            pending >>= LIMB_BITS;
            pending_bits -= LIMB_BITS;
        }
    }
    limbs.push(pending as u32);
    while limbs.last() == Some(&0) {
        limbs.pop();
    }
    limbs
}

/// 28-bit limbs (least significant first) as `len` big-endian bytes: `None` if the value does not fit.
fn limbs_to_be(limbs: &[u32], len: usize) -> Option<Vec<u8>> {
    let mut bytes = vec![0u8; len];
    let (mut pending, mut pending_bits) = (0u64, 0);
    let mut limbs = limbs.iter();
    for byte in bytes.iter_mut().rev() {
        if pending_bits < 8 {
            pending |= u64::from(limbs.next().copied().unwrap_or(0)) << pending_bits;
            pending_bits += LIMB_BITS;
        }
        *byte = pending as u8;
        pending >>= 8;
        pending_bits -= 8;
    }
    (pending == 0 && limbs.all(|&l| l == 0)).then_some(bytes)
}

/// R² mod n for R = 2^(28·limbs), by crypto-bigint's division (once per key), in 28-bit limbs.
fn r_squared(n: &[u8], limbs: usize) -> Option<Vec<u32>> {
    let r2_bits = u32::try_from(2 * limbs).ok()?.checked_mul(LIMB_BITS)?;
    let precision = r2_bits.checked_add(64)?;
    let modulus = BoxedUint::from_be_slice(n, precision).ok()?;
    let modulus = Option::<NonZero<BoxedUint>>::from(NonZero::new(modulus))?;
    let r2 = BoxedUint::one_with_precision(precision).shl_vartime(r2_bits)?.rem_vartime(&modulus);
    let mut r2 = limbs_from_be(&r2.to_be_bytes());
    r2.resize(limbs, 0);
    Some(r2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token_analysis::test_rng::Rng;
    use crypto_bigint::modular::{BoxedMontyForm, BoxedMontyParams};
    use crypto_bigint::Odd;

    /// `base`^`exponent` mod `n` by crypto-bigint's constant-time Montgomery arithmetic, as `n.len()` bytes.
    fn reference(n: &[u8], base: &[u8], exponent: &[u8]) -> Vec<u8> {
        let bits = u32::try_from(n.len() * 8).unwrap();
        let params = BoxedMontyParams::new(Odd::new(BoxedUint::from_be_slice(n, bits).unwrap()).unwrap());
        let base = BoxedMontyForm::new(BoxedUint::from_be_slice(base, bits).unwrap(), &params);
        let exponent_bits = u32::try_from(exponent.len() * 8).unwrap();
        let exponent = BoxedUint::from_be_slice(exponent, exponent_bits).unwrap();
        let out = base.pow(&exponent).retrieve().to_be_bytes();
        out[out.len() - n.len()..].to_vec()
    }

    /// A random odd modulus of `len` bytes whose top byte is `top` (nonzero), and a random base below it.
    fn case(rng: &mut Rng, len: usize, top: u8) -> (Vec<u8>, Vec<u8>) {
        let mut n = rng.bytes(len);
        n[0] = top;
        n[len - 1] |= 1;
        let mut base = rng.bytes(len);
        // Below n: same length, a top byte below n's (or a shorter number when n's top byte is 1).
        base[0] = if top > 1 { base[0] % top } else { 0 };
        (n, base)
    }

    /// The general and the prepared exponentiation, which must agree (including on refusals).
    fn both(modulus: &Modulus, base: &[u8], exponent: &[u8], len: usize) -> Option<Vec<u8>> {
        let general = modulus.pow(base, exponent, len);
        let prepared = modulus.prepare(exponent).and_then(|e| modulus.pow_prepared(base, &e, len));
        assert_eq!(general, prepared, "base {base:02x?}, exponent {exponent:02x?}");
        general
    }

    fn check(n: &[u8], base: &[u8], exponent: &[u8]) {
        let modulus = Modulus::new(n).unwrap();
        let expected = reference(n, base, exponent);
        assert_eq!(modulus.pow(base, exponent, n.len()).unwrap(), expected, "n = {n:02x?}");
        let prepared = modulus.prepare(exponent).unwrap();
        assert_eq!(modulus.pow_prepared(base, &prepared, n.len()).unwrap(), expected, "prepared, n = {n:02x?}");
    }

    /// Random RSA-sized moduli (2048, 3072 and 4096 bits, full top byte) with e = 65537 and with random short
    /// exponents, against crypto-bigint.
    #[test]
    fn exponentiation_matches_crypto_bigint_on_random_moduli() {
        let mut rng = Rng(0x5eed_2048);
        let rounds = if cfg!(target_arch = "wasm32") { 12 } else { 300 };
        for round in 0..rounds {
            let len = [256, 384, 512][round % 3];
            let top = 0x80 | rng.next() as u8;
            let (n, base) = case(&mut rng, len, top);
            check(&n, &base, &[1, 0, 1]);
            if round % 4 == 0 {
                let exponent = rng.bytes(1 + round % 8);
                if exponent.iter().any(|&b| b != 0) {
                    check(&n, &base, &exponent);
                }
            }
        }
    }

    /// Moduli whose top limb is small (a bit or a byte past a limb boundary) and odd sizes, against crypto-bigint.
    #[test]
    fn exponentiation_matches_crypto_bigint_when_the_top_limb_is_small() {
        let mut rng = Rng(0x70b_11b);
        let rounds = if cfg!(target_arch = "wasm32") { 8 } else { 120 };
        for round in 0..rounds {
            // 257 bytes is 2049 bits at most: 2,056 bits = 73 limbs of 28 and 4 bits; 259 and 260 straddle too.
            let len = [257, 258, 259, 260, 255, 129, 33, 7, 4, 1][round % 10];
            let top = [1, 2, 3, 0x0f, 0x10, 0xff][round % 6];
            let (n, base) = case(&mut rng, len, top);
            if n.as_slice() == [1] {
                continue;
            }
            check(&n, &base, &[1, 0, 1]);
            check(&n, &base, &[3]);
        }
    }

    /// Bases 0, 1, 2 and n − 1, the exponent 1, and a base whose power needs the final subtraction.
    #[test]
    fn edge_cases() {
        let mut rng = Rng(0xed9e);
        for len in [256, 384, 512, 257] {
            let (n, _) = case(&mut rng, len, if len == 257 { 1 } else { 0xc3 });
            let mut n_minus_1 = n.clone();
            n_minus_1[len - 1] -= 1;
            let zero = vec![0u8; len];
            let mut one = zero.clone();
            one[len - 1] = 1;
            let mut two = zero.clone();
            two[len - 1] = 2;
            let modulus = Modulus::new(&n).unwrap();
            assert_eq!(both(&modulus, &zero, &[1, 0, 1], len).unwrap(), zero);
            assert_eq!(both(&modulus, &one, &[1, 0, 1], len).unwrap(), one);
            // (n − 1)^odd = n − 1, (n − 1)^even = 1.
            assert_eq!(both(&modulus, &n_minus_1, &[1, 0, 1], len).unwrap(), n_minus_1);
            assert_eq!(both(&modulus, &n_minus_1, &[2], len).unwrap(), one);
            assert_eq!(both(&modulus, &n_minus_1, &[1], len).unwrap(), n_minus_1);
            // The shortest inputs: a base without leading zeros, an exponent with them.
            assert_eq!(both(&modulus, &[2], &[0, 0, 1], len).unwrap(), two);
            check(&n, &two, &[1, 0, 1]);
            check(&n, &n_minus_1, &[0xff, 0xff, 0xff, 0xff]);
            // Not below n, or no exponent: refused.
            assert!(both(&modulus, &n, &[1, 0, 1], len).is_none());
            assert!(both(&modulus, &[0xff; 513], &[1, 0, 1], len).is_none());
            assert!(both(&modulus, &one, &[0, 0], len).is_none());
            assert!(both(&modulus, &one, &[], len).is_none());
        }
    }

    /// The textbook example, n0' and R² for a one-limb modulus, and moduli refused.
    #[test]
    fn small_moduli() {
        let modulus = Modulus::new(&3233u16.to_be_bytes()).unwrap();
        assert_eq!(both(&modulus, &65u16.to_be_bytes(), &[17], 2).unwrap(), 2790u16.to_be_bytes());
        assert_eq!(modulus.n0.wrapping_mul(3233) & LIMB_MASK as u32, LIMB_MASK as u32, "n·n0' = −1 mod 2²⁸");
        assert_eq!(modulus.r2, [(1u128 << 56) % 3233].map(|r| r as u32));
        assert_eq!(both(&modulus, &[5], &[2], 1), Some(vec![25]));
        assert_eq!(both(&modulus, &[100], &[2], 1), None, "10,000 mod 3233 = 301 does not fit one byte");
        assert!(Modulus::new(&[0x0c, 0xa0]).is_none(), "even");
        assert!(Modulus::new(&[0, 1]).is_none(), "one");
        assert!(Modulus::new(&[]).is_none(), "empty");
        assert!(Modulus::new(&[0xff; 894]).is_none(), "over 7,140 bits");
        assert!(Modulus::new(&[0xff; 892]).is_some());
        let padded = Modulus::new(&[[0; 600].as_slice(), &3233u16.to_be_bytes()].concat()).unwrap();
        assert_eq!(both(&padded, &65u16.to_be_bytes(), &[17], 2).unwrap(), 2790u16.to_be_bytes(), "leading zeros");
    }

    #[test]
    fn limbs_round_trip() {
        let mut rng = Rng(0x11b5);
        for len in 0..80 {
            let bytes = rng.bytes(len);
            let limbs = limbs_from_be(&bytes);
            assert!(limbs.iter().all(|&l| l <= LIMB_MASK as u32));
            assert_eq!(limbs_to_be(&limbs, len).unwrap(), bytes);
            assert_eq!(limbs_to_be(&limbs, len + 3).unwrap()[3..], bytes[..]);
            if bytes.first().is_some_and(|&b| b != 0) {
                assert_eq!(limbs_to_be(&limbs, len - 1), None, "does not fit");
            }
        }
    }
}
