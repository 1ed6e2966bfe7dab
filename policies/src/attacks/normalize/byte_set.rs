//! The kinds of bytes a text holds ([`ByteSet`]): found by the normaliser in the pass it makes anyway, read by the
//! detectors to return early.

use super::{AMPERSAND, BACKSLASH, FOLD, PERCENT, PLUS, UPPER};

/// Which kinds of bytes a text holds, one bit each, found in the pass the normaliser makes anyway: a detector that
/// needs a byte the value lacks returns at once instead of scanning it. One bit per ASCII punctuation character, per
/// letter (either case; `w`, `x`, `y` and `z` share one), and for digits, space, CR, LF, tab, other control bytes,
/// NUL, non-ASCII bytes and ASCII capitals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteSet(u64);

/// ASCII punctuation, one bit each in this order.
const PUNCTUATION: &[u8; 32] = b"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
const DIGIT_BIT: u32 = 32;
const SPACE_BIT: u32 = 33;
const CR_BIT: u32 = 34;
const LF_BIT: u32 = 35;
const TAB_BIT: u32 = 36;
const CONTROL_BIT: u32 = 37;
const NUL_BIT: u32 = 38;
const HIGH_BIT: u32 = 39;
const UPPER_BIT: u32 = 40;
const LETTER_BITS: u32 = 41;

/// The bit of one byte (a capital has its letter's bit and [`UPPER_BIT`]).
const fn byte_bits(b: u8) -> u64 {
    let mut rest: &[u8] = PUNCTUATION;
    let mut bit = 0;
    while let [first, tail @ ..] = rest {
        if *first == b {
            return 1 << bit;
        }
        bit += 1;
        rest = tail;
    }
    match b {
        b'0'..=b'9' => 1 << DIGIT_BIT,
        b' ' => 1 << SPACE_BIT,
        b'\r' => 1 << CR_BIT,
        b'\n' => 1 << LF_BIT,
        b'\t' => 1 << TAB_BIT,
        0 => 1 << NUL_BIT,
        1..=0x1f | 0x7f => 1 << CONTROL_BIT,
        0x80..=0xff => 1 << HIGH_BIT,
        b'a'..=b'z' => letter_bit(b),
        b'A'..=b'Z' => letter_bit(b.to_ascii_lowercase()) | 1 << UPPER_BIT,
        _ => 0,
    }
}

/// The bit of a small letter.
const fn letter_bit(l: u8) -> u64 {
    let index = l.saturating_sub(b'a') as u32;
    1 << (LETTER_BITS + if index < 22 { index } else { 22 })
}

/// [`byte_bits`] of every byte.
#[allow(clippy::indexing_slicing)] // Evaluated by the compiler, which rejects an index out of bounds.
static BYTE_BITS: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = byte_bits(b as u8);
        b += 1;
    }
    table
};

impl ByteSet {
    /// Every bit set: a text whose bytes are not known (a detector can never return early on it).
    pub const ALL: ByteSet = ByteSet(u64::MAX);

    /// The kinds of bytes `text` holds.
    pub fn of(text: &[u8]) -> ByteSet {
        ByteSet(text.iter().fold(0, |bits, &b| bits | BYTE_BITS.get(usize::from(b)).copied().unwrap_or(0)))
    }

    /// The set of the bytes in `bytes` (for a detector's constant: `ByteSet::bytes(b"${")`).
    pub const fn bytes(bytes: &[u8]) -> ByteSet {
        let mut bits = 0;
        let mut rest = bytes;
        while let [first, tail @ ..] = rest {
            bits |= byte_bits(*first);
            rest = tail;
        }
        ByteSet(bits)
    }

    /// Whether the text holds some byte of `other` (of its kind: a letter's bit may stand for `w`…`z`).
    pub fn any_of(self, other: ByteSet) -> bool {
        self.0 & other.0 != 0
    }

    /// Whether the text holds a byte of the kind of every byte in `other`.
    pub fn all_of(self, other: ByteSet) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the text holds a byte of the kind of `b`.
    pub fn has(self, b: u8) -> bool {
        self.any_of(ByteSet(byte_bits(b)))
    }

    /// Whether the text holds no CR, LF, tab, other control byte, NUL or non-ASCII byte.
    pub fn is_printable_ascii(self) -> bool {
        self.0 & (1 << CR_BIT | 1 << LF_BIT | 1 << TAB_BIT | 1 << CONTROL_BIT | 1 << NUL_BIT | 1 << HIGH_BIT) == 0
    }

    /// The set without the capitals' bit: the set of the text in lower case.
    pub(super) fn lowered(self) -> ByteSet {
        ByteSet(self.0 & !(1 << UPPER_BIT))
    }

    /// The normaliser's flags of a text with this set.
    pub(super) fn flags(self) -> u8 {
        let has = |b: u8| self.has(b);
        let mut flags = 0;
        if has(b'%') {
            flags |= PERCENT;
        }
        if has(b'&') {
            flags |= AMPERSAND;
        }
        if has(b'\\') {
            flags |= BACKSLASH;
        }
        if self.0 & (1 << NUL_BIT | 1 << HIGH_BIT) != 0 {
            flags |= FOLD;
        }
        if has(b'+') {
            flags |= PLUS;
        }
        if self.0 & 1 << UPPER_BIT != 0 {
            flags |= UPPER;
        }
        flags
    }
}
