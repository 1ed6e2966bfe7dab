//! Bodies too large to hold comfortably: generated on the fly, and compared by a running checksum.
//!
//! A 50 MiB body is produced chunk by chunk by [`fill_generated`] (deterministic, random access, so the sender and
//! the test computing what should arrive agree without either keeping the body), and whoever receives it folds
//! it into a [`Checksum`]. Two [`BodyDigest`]s are equal when the same bytes arrived in the same order, however
//! the stream was split into reads.
//!
//! ```
//! use portcullis_integration_tests::body::{digest, fill_generated, Checksum};
//!
//! let mut whole = vec![0; 1000];
//! fill_generated(7, 0, &mut whole);
//! let mut checksum = Checksum::new();
//! for chunk in whole.chunks(333) {
//!     checksum.update(chunk);
//! }
//! assert_eq!(checksum.finish(), digest(&whole));
//! assert_eq!(checksum.finish().len, 1000);
//! ```

use std::cell::RefCell;
use std::rc::Rc;

/// The length and checksum of a body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BodyDigest {
    /// Bytes in the body.
    pub len: u64,
    /// The [`Checksum`] of its bytes.
    pub checksum: u64,
}

/// A running 64-bit checksum of a byte stream; the result does not depend on how the stream was split into chunks.
///
/// Bytes are gathered into blocks of [`CHECKSUM_BLOCK`] bytes; each block is mixed as little-endian 64-bit words
/// into four independent lanes (multiply-xorshift, every step a bijection of the lane for a given word, so a
/// single changed word always changes the result), and the lanes, the block count and the length are mixed at
/// the end. Four lanes over aligned words keep 50 MiB at a few tens of milliseconds even in a debug build. Not
/// for adversaries: a checksum, to catch truncation, corruption, loss and reordering.
#[derive(Clone, Debug)]
pub struct Checksum {
    lanes: [u64; 4],
    len: u64,
    block: Vec<u8>,
}

/// The block size [`Checksum`] mixes in (a multiple of the 32 bytes one round of the four lanes takes).
pub const CHECKSUM_BLOCK: usize = 64 * 1024;

const LANE_MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;

impl Default for Checksum {
    fn default() -> Self {
        Self::new()
    }
}

impl Checksum {
    /// The checksum of nothing yet.
    pub fn new() -> Self {
        Self {
            lanes: [0x6a09_e667_f3bc_c908, 0xbb67_ae85_84ca_a73b, 0x3c6e_f372_fe94_f82b, 0xa54f_f53a_5f1d_36f1],
            len: 0,
            block: Vec::with_capacity(CHECKSUM_BLOCK),
        }
    }

    /// Folds in the next bytes of the stream.
    pub fn update(&mut self, mut bytes: &[u8]) {
        self.len += bytes.len() as u64;
        while !bytes.is_empty() {
            let take = (CHECKSUM_BLOCK - self.block.len()).min(bytes.len());
            self.block.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.block.len() == CHECKSUM_BLOCK {
                mix_block(&mut self.lanes, &self.block);
                self.block.clear();
            }
        }
    }

    /// The digest of everything folded in so far (the checksum can keep going afterwards).
    pub fn finish(&self) -> BodyDigest {
        let mut lanes = self.lanes;
        // The partial last block, zero-padded to a whole round; the length below tells the padding apart.
        let mut last = self.block.clone();
        last.resize(last.len().div_ceil(32) * 32, 0);
        mix_block(&mut lanes, &last);
        let mut state = self.len;
        for lane in lanes {
            state = mix(state ^ lane);
        }
        BodyDigest { len: self.len, checksum: mix(state) }
    }
}

/// Mixes a block whose length is a multiple of 32 into the four lanes, word `i` into lane `i % 4`.
fn mix_block(lanes: &mut [u64; 4], block: &[u8]) {
    #[cfg(target_endian = "little")]
    {
        // SAFETY: every bit pattern is a valid `u64`; `align_to` reinterprets only the aligned middle part.
        let (head, words, _) = unsafe { block.align_to::<[u64; 4]>() };
        if head.is_empty() {
            for word in words {
                lanes[0] = mix(lanes[0] ^ word[0]);
                lanes[1] = mix(lanes[1] ^ word[1]);
                lanes[2] = mix(lanes[2] ^ word[2]);
                lanes[3] = mix(lanes[3] ^ word[3]);
            }
            // A block is whole rounds, so an aligned start leaves no tail.
            return;
        }
    }
    // Unaligned (or big-endian): the same words, the slow way.
    for round in block.chunks_exact(32) {
        for (lane, word) in lanes.iter_mut().zip(round.chunks_exact(8)) {
            let mut bytes = [0; 8];
            bytes.copy_from_slice(word);
            *lane = mix(*lane ^ u64::from_le_bytes(bytes));
        }
    }
}

fn mix(x: u64) -> u64 {
    let x = x.wrapping_mul(LANE_MULTIPLIER);
    x ^ (x >> 29)
}

/// The digest of `bytes` in one go.
pub fn digest(bytes: &[u8]) -> BodyDigest {
    let mut checksum = Checksum::new();
    checksum.update(bytes);
    checksum.finish()
}

/// The 32 bytes generated bodies are made of: letters and punctuation, never a digit, so a generated body never
/// contains anything that looks like a card number, a token or an id by accident.
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz ,.;-\n";

/// Generated bodies repeat a block of this many bytes (a prime, so the repetition never lines up with the power
/// of two sizes proxies buffer in)...
const PERIOD: usize = 65_521;

/// ...except for the first bytes of every repetition, which are different each time: the body never repeats.
const BLOCK_HEADER: usize = 16;

thread_local! {
    /// The repeated block of the last few seeds, so generating is mostly copying.
    static BLOCKS: RefCell<Vec<(u64, Rc<[u8]>)>> = const { RefCell::new(Vec::new()) };
}

/// Fills `buf` with bytes `offset..offset + buf.len()` of the generated body number `seed`.
///
/// The body is text (letters and punctuation, no digits), the same for the same seed, and addressable at any
/// offset, so a sender can produce it chunk by chunk and a test can compute its [`BodyDigest`] without holding it.
/// It is fast even in a debug build: mostly copies of a cached block.
pub fn fill_generated(seed: u64, offset: u64, buf: &mut [u8]) {
    let block = block_for(seed);
    let mut position = offset;
    let mut out = 0;
    while out < buf.len() {
        let repetition = position / PERIOD as u64;
        let within = (position % PERIOD as u64) as usize;
        let take = (PERIOD - within).min(buf.len() - out);
        buf[out..out + take].copy_from_slice(&block[within..within + take]);
        if within < BLOCK_HEADER {
            let header = header(seed, repetition);
            let end = BLOCK_HEADER.min(within + take);
            buf[out..out + end - within].copy_from_slice(&header[within..end]);
        }
        out += take;
        position += take as u64;
    }
}

/// The digest of the first `len` bytes of generated body `seed`, computed in chunks.
pub fn generated_digest(seed: u64, len: u64) -> BodyDigest {
    let mut checksum = Checksum::new();
    let mut buf = vec![0; 1 << 20];
    let mut offset = 0;
    while offset < len {
        let n = (len - offset).min(buf.len() as u64) as usize;
        fill_generated(seed, offset, &mut buf[..n]);
        checksum.update(&buf[..n]);
        offset += n as u64;
    }
    checksum.finish()
}

fn block_for(seed: u64) -> Rc<[u8]> {
    BLOCKS.with(|blocks| {
        let mut blocks = blocks.borrow_mut();
        if let Some((_, block)) = blocks.iter().find(|(s, _)| *s == seed) {
            return Rc::clone(block);
        }
        let block: Rc<[u8]> = (0..PERIOD as u64)
            .map(|i| letter(splitmix64(seed ^ 0xa076_1d64_78bd_642f ^ i.wrapping_mul(0xd6e8_feb8_6659_fd93))))
            .collect();
        if blocks.len() >= 4 {
            blocks.remove(0);
        }
        blocks.push((seed, Rc::clone(&block)));
        block
    })
}

fn header(seed: u64, repetition: u64) -> [u8; BLOCK_HEADER] {
    let mut header = [0; BLOCK_HEADER];
    let words = [
        splitmix64(seed ^ repetition.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        splitmix64(!seed ^ repetition.wrapping_mul(0xc2b2_ae3d_27d4_eb4f)),
    ];
    for (i, b) in header.iter_mut().enumerate() {
        *b = letter(words[i / 8] >> ((i % 8) * 8));
    }
    header
}

fn letter(random: u64) -> u8 {
    ALPHABET[(random & 31) as usize]
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_do_not_depend_on_chunking() {
        let mut body = vec![0; 10_007];
        fill_generated(3, 0, &mut body);
        let whole = digest(&body);
        for size in [1, 3, 7, 8, 9, 64, 4096] {
            let mut checksum = Checksum::new();
            for chunk in body.chunks(size) {
                checksum.update(chunk);
            }
            assert_eq!(checksum.finish(), whole, "chunks of {size}");
        }
        assert_eq!(generated_digest(3, 10_007), whole);
    }

    #[test]
    fn checksums_catch_changes_truncation_and_swaps() {
        let mut body = vec![0; 4096];
        fill_generated(1, 0, &mut body);
        let original = digest(&body);
        assert_ne!(digest(&body[..4095]), original);
        let mut changed = body.clone();
        changed[2000] ^= 1;
        assert_ne!(digest(&changed), original);
        let mut swapped = body.clone();
        swapped.swap(0, 8);
        if swapped != body {
            assert_ne!(digest(&swapped), original);
        }
        assert_ne!(digest(b"ab"), digest(b"ab\0"));
        // Whole blocks swapped or lost are caught too.
        let mut long = vec![0; 5 * CHECKSUM_BLOCK];
        fill_generated(2, 0, &mut long);
        let (a, b) = long.split_at(CHECKSUM_BLOCK);
        assert_ne!(digest(&[b, a].concat()), digest(&long));
        assert_ne!(digest(&long[CHECKSUM_BLOCK..]), digest(&long));
        // The aligned and the unaligned paths agree.
        let mut lanes = ([1, 2, 3, 4], [1, 2, 3, 4]);
        let shifted = [&[0][..], &long[..CHECKSUM_BLOCK]].concat();
        mix_block(&mut lanes.0, &long[..CHECKSUM_BLOCK]);
        mix_block(&mut lanes.1, &shifted[1..]);
        assert_eq!(lanes.0, lanes.1);
    }

    #[test]
    fn generated_bodies_are_addressable_text_without_digits() {
        let mut whole = vec![0; 1000];
        fill_generated(9, 0, &mut whole);
        let mut part = vec![0; 100];
        fill_generated(9, 333, &mut part);
        assert_eq!(&whole[333..433], &part[..]);
        assert!(whole.iter().all(|b| ALPHABET.contains(b) && !b.is_ascii_digit()));
        let mut other = vec![0; 1000];
        fill_generated(10, 0, &mut other);
        assert_ne!(whole, other);
        // The repeated block never makes the body repeat.
        let mut long = vec![0; 3 * PERIOD + 100];
        fill_generated(9, 0, &mut long);
        assert_ne!(&long[..PERIOD], &long[PERIOD..2 * PERIOD]);
        assert_eq!(&long[BLOCK_HEADER..PERIOD], &long[PERIOD + BLOCK_HEADER..2 * PERIOD]);
        let mut tail = vec![0; 300];
        fill_generated(9, 2 * PERIOD as u64 - 100, &mut tail);
        assert_eq!(&long[2 * PERIOD - 100..2 * PERIOD + 200], &tail[..]);
    }
}
