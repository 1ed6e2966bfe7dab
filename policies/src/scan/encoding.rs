//! Content codings removed before a body is scanned: the ones Envoy's decompressor filter would have removed.
//!
//! `gzip` (one or more members), `deflate` (zlib-wrapped, or raw as some clients send it) and `br`. Decoding
//! streams through a fixed output buffer allocated with the decoder, and stops at a hard cap on decoded bytes (the
//! inspection cap: [`Halt::Full`], a truncated body like an identity body longer than the cap), so a decompression
//! bomb costs no more than an identity body of the cap. What cannot be decoded (an unknown coding such as
//! `x-anything`, stacked codings, `zstd`, corrupt or cut data, a Brotli window over 4 MiB) is reported as
//! [`Halt::Undecodable`]: the inspector turns that into the `inspection=encoded` finding that rules decide on
//! (`on_uninspectable`), never a silent pass.
//!
//! Crates: `miniz_oxide` (pure-Rust inflate, the backend of `flate2`) and `brotli-decompressor` (pure-Rust
//! Brotli decoder, no C), both build for wasm32-wasip1.

use brotli_decompressor::{BrotliDecompressStream, BrotliResult, BrotliState, StandardAlloc};
use miniz_oxide::inflate::stream::{inflate, InflateState};
use miniz_oxide::{DataFormat, MZError, MZFlush, MZStatus};

/// Decoded bytes produced per inflate step.
const OUT: usize = 8 * 1024;
/// Largest Brotli window accepted (log2): 4 MiB, the encoders' default. The decoder's ring buffer is as large as
/// the window, so a hostile 16 MiB window is refused rather than allocated.
const MAX_BROTLI_WINDOW_BITS: u8 = 22;

/// A coding the inspector can remove.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Coding {
    Gzip,
    Deflate,
    Brotli,
}

/// What a `content-encoding` header means to the inspector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// Absent, empty or `identity`: the body is scanned as it is.
    Identity,
    /// One coding the inspector decodes.
    Decode(Coding),
    /// Anything else: unknown, `zstd`, or more than one coding stacked.
    Unsupported,
}

/// Reads a `content-encoding` value (`None`: absent). `identity` entries in a list are ignored.
pub(crate) fn parse(content_encoding: Option<&[u8]>) -> Encoding {
    let Some(value) = content_encoding else {
        return Encoding::Identity;
    };
    let mut found = Encoding::Identity;
    for token in value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
        if token.is_empty() || token.eq_ignore_ascii_case(b"identity") {
            continue;
        }
        let coding = if token.eq_ignore_ascii_case(b"gzip") || token.eq_ignore_ascii_case(b"x-gzip") {
            Coding::Gzip
        } else if token.eq_ignore_ascii_case(b"deflate") {
            Coding::Deflate
        } else if token.eq_ignore_ascii_case(b"br") {
            Coding::Brotli
        } else {
            return Encoding::Unsupported;
        };
        if found != Encoding::Identity {
            // Stacked codings: decoding one would only reveal the next.
            return Encoding::Unsupported;
        }
        found = Encoding::Decode(coding);
    }
    found
}

/// Why decoding stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Halt {
    /// The body cannot be decoded (corrupt, cut, trailing garbage, a window too large).
    Undecodable,
    /// The decoded body reached the cap: what was decoded up to it was scanned, the rest is not (as with an
    /// identity body longer than the cap).
    Full,
}
use Halt::Undecodable;

/// Where a gzip member's header parsing stands (RFC 1952, 2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GzipStage {
    /// Byte `n` of the fixed 10-byte header.
    Fixed(u8),
    /// The two bytes of `XLEN` (how many seen, the low byte).
    ExtraLength(u8, u8),
    /// Bytes of the extra field still to skip.
    Extra(u16),
    /// Inside the zero-terminated file name.
    Name,
    /// Inside the zero-terminated comment.
    Comment,
    /// Header CRC bytes still to skip.
    HeaderCrc(u8),
    /// The deflate data.
    Body,
    /// Trailer bytes (CRC-32, ISIZE) still to skip; another member may follow.
    Trailer(u8),
}

const FEXTRA: u8 = 4;
const FNAME: u8 = 8;
const FCOMMENT: u8 = 16;
const FHCRC: u8 = 2;

enum State {
    Gzip {
        stage: GzipStage,
        flags: u8,
        inflate: Box<InflateState>,
    },
    /// `format` is decided by the first byte: a zlib header, else raw deflate.
    Deflate {
        sniffed: bool,
        ended: bool,
        inflate: Box<InflateState>,
    },
    Brotli {
        started: bool,
        ended: bool,
        state: Box<BrotliState<StandardAlloc, StandardAlloc, StandardAlloc>>,
    },
}

/// A streaming decoder of one body.
pub(crate) struct Decompressor {
    state: State,
    out: Box<[u8; OUT]>,
    produced: u64,
    cap: u64,
}

impl Decompressor {
    /// A decoder for `coding` that refuses to produce more than `cap` bytes.
    pub(crate) fn new(coding: Coding, cap: u64) -> Decompressor {
        let state = match coding {
            Coding::Gzip => {
                State::Gzip { stage: GzipStage::Fixed(0), flags: 0, inflate: InflateState::new_boxed(DataFormat::Raw) }
            }
            Coding::Deflate => {
                State::Deflate { sniffed: false, ended: false, inflate: InflateState::new_boxed(DataFormat::Raw) }
            }
            Coding::Brotli => State::Brotli {
                started: false,
                ended: false,
                state: Box::new(BrotliState::new(
                    StandardAlloc::default(),
                    StandardAlloc::default(),
                    StandardAlloc::default(),
                )),
            },
        };
        Decompressor { state, out: Box::new([0; OUT]), produced: 0, cap }
    }

    /// Decodes the next compressed bytes, handing what they decode to (in runs of at most 8 KiB) to `emit`.
    pub(crate) fn feed(&mut self, mut input: &[u8], emit: &mut impl FnMut(&[u8])) -> Result<(), Halt> {
        let Decompressor { state, out, produced, cap } = self;
        let mut deliver = |bytes: &[u8]| -> Result<(), Halt> {
            let room = usize::try_from(cap.saturating_sub(*produced)).unwrap_or(usize::MAX);
            let take = bytes.get(..room).unwrap_or(bytes);
            *produced += take.len() as u64;
            if !take.is_empty() {
                emit(take);
            }
            if take.len() < bytes.len() {
                return Err(Halt::Full);
            }
            Ok(())
        };
        match state {
            State::Gzip { stage, flags, inflate: st } => {
                while let Some((&b, rest)) = input.split_first() {
                    if *stage == GzipStage::Body {
                        let (consumed, ended) = inflate_some(st, input, out.as_mut_slice(), &mut deliver)?;
                        input = input.get(consumed..).unwrap_or_default();
                        if ended {
                            *stage = GzipStage::Trailer(8);
                        } else if input.is_empty() {
                            break;
                        }
                        continue;
                    }
                    input = rest;
                    *stage = gzip_header_step(*stage, flags, b)?;
                    if *stage == GzipStage::Body {
                        st.reset(DataFormat::Raw);
                    }
                }
                Ok(())
            }
            State::Deflate { sniffed, ended, inflate: st } => {
                if input.is_empty() {
                    return Ok(());
                }
                if *ended {
                    return Err(Undecodable);
                }
                if !*sniffed {
                    *sniffed = true;
                    // A zlib header: compression method 8, a window of at most 32 KiB.
                    if input.first().is_some_and(|b| b & 0x0f == 8 && b >> 4 <= 7) {
                        st.reset(DataFormat::Zlib);
                    }
                }
                while !input.is_empty() {
                    let (consumed, done) = inflate_some(st, input, out.as_mut_slice(), &mut deliver)?;
                    input = input.get(consumed..).unwrap_or_default();
                    if done {
                        *ended = true;
                        // Bytes after the end of the stream are not what an upstream would read: refuse them.
                        return if input.is_empty() { Ok(()) } else { Err(Undecodable) };
                    }
                    if consumed == 0 {
                        break;
                    }
                }
                Ok(())
            }
            State::Brotli { started, ended, state: st } => {
                if input.is_empty() {
                    return Ok(());
                }
                if *ended {
                    return Err(Undecodable);
                }
                if !*started {
                    *started = true;
                    if input.first().is_none_or(|b| brotli_window_bits(*b) > MAX_BROTLI_WINDOW_BITS) {
                        return Err(Undecodable);
                    }
                }
                loop {
                    let (mut available_in, mut input_offset) = (input.len(), 0usize);
                    let (mut available_out, mut output_offset, mut total_out) = (OUT, 0usize, 0usize);
                    let result = BrotliDecompressStream(
                        &mut available_in,
                        &mut input_offset,
                        input,
                        &mut available_out,
                        &mut output_offset,
                        out.as_mut_slice(),
                        &mut total_out,
                        st,
                    );
                    deliver(out.get(..output_offset).unwrap_or_default())?;
                    input = input.get(input_offset..).unwrap_or_default();
                    match result {
                        BrotliResult::NeedsMoreOutput => continue,
                        BrotliResult::NeedsMoreInput => return Ok(()),
                        BrotliResult::ResultSuccess => {
                            *ended = true;
                            return if input.is_empty() { Ok(()) } else { Err(Undecodable) };
                        }
                        BrotliResult::ResultFailure => return Err(Undecodable),
                    }
                }
            }
        }
    }

    /// The body ended: a stream that is not complete was cut or is corrupt.
    pub(crate) fn finish(&self) -> Result<(), Halt> {
        let complete = match &self.state {
            // Between members (after a trailer) is the only place a gzip body may end.
            State::Gzip { stage, .. } => *stage == GzipStage::Trailer(0) || *stage == GzipStage::Fixed(0),
            State::Deflate { ended, sniffed, .. } => *ended || !*sniffed,
            State::Brotli { ended, started, .. } => *ended || !*started,
        };
        if complete {
            Ok(())
        } else {
            Err(Undecodable)
        }
    }
}

/// One byte of a gzip member's header (or trailer); returns the next stage.
fn gzip_header_step(stage: GzipStage, flags: &mut u8, b: u8) -> Result<GzipStage, Halt> {
    let after_extra = |flags: u8| {
        if flags & FNAME != 0 {
            GzipStage::Name
        } else {
            after_name(flags)
        }
    };
    Ok(match stage {
        GzipStage::Fixed(n) => {
            match (n, b) {
                (0, 0x1f) | (1, 0x8b) | (2, 8) => {}
                (3, f) if f & 0xe0 == 0 => *flags = f,
                (0..=3, _) => return Err(Undecodable),
                _ => {}
            }
            if n < 9 {
                GzipStage::Fixed(n + 1)
            } else if *flags & FEXTRA != 0 {
                GzipStage::ExtraLength(0, 0)
            } else {
                after_extra(*flags)
            }
        }
        GzipStage::ExtraLength(0, _) => GzipStage::ExtraLength(1, b),
        GzipStage::ExtraLength(_, low) => match u16::from_le_bytes([low, b]) {
            0 => after_extra(*flags),
            n => GzipStage::Extra(n),
        },
        GzipStage::Extra(n) if n > 1 => GzipStage::Extra(n - 1),
        GzipStage::Extra(_) => after_extra(*flags),
        GzipStage::Name if b == 0 => after_name(*flags),
        GzipStage::Comment if b == 0 => after_comment(*flags),
        GzipStage::Name | GzipStage::Comment => stage,
        GzipStage::HeaderCrc(n) if n > 1 => GzipStage::HeaderCrc(n - 1),
        GzipStage::HeaderCrc(_) => GzipStage::Body,
        GzipStage::Trailer(n) if n > 1 => GzipStage::Trailer(n - 1),
        GzipStage::Trailer(1) => GzipStage::Trailer(0),
        // A byte after a complete member starts the next member.
        GzipStage::Trailer(_) => return gzip_header_step(GzipStage::Fixed(0), flags, b),
        GzipStage::Body => GzipStage::Body,
    })
}

fn after_name(flags: u8) -> GzipStage {
    if flags & FCOMMENT != 0 {
        GzipStage::Comment
    } else {
        after_comment(flags)
    }
}

fn after_comment(flags: u8) -> GzipStage {
    if flags & FHCRC != 0 {
        GzipStage::HeaderCrc(2)
    } else {
        GzipStage::Body
    }
}

/// Inflates from `input` until it is used up or the stream ends: `(bytes consumed, stream ended)`.
fn inflate_some(
    state: &mut InflateState,
    mut input: &[u8],
    out: &mut [u8],
    deliver: &mut impl FnMut(&[u8]) -> Result<(), Halt>,
) -> Result<(usize, bool), Halt> {
    let mut consumed = 0usize;
    loop {
        let result = inflate(state, input, out, MZFlush::None);
        deliver(out.get(..result.bytes_written).unwrap_or_default())?;
        consumed += result.bytes_consumed;
        input = input.get(result.bytes_consumed..).unwrap_or_default();
        match result.status {
            Ok(MZStatus::StreamEnd) => return Ok((consumed, true)),
            Ok(MZStatus::Ok) | Err(MZError::Buf) => {
                let progress = result.bytes_consumed > 0 || result.bytes_written > 0;
                // More output may be pending while the buffer came back full; otherwise wait for more input.
                if !progress || (input.is_empty() && result.bytes_written < out.len()) {
                    return Ok((consumed, false));
                }
            }
            Ok(MZStatus::NeedDict) | Err(_) => return Err(Undecodable),
        }
    }
}

/// The window size (log2) a Brotli stream declares in its first byte (RFC 7932, 9.1); 0 when it is invalid.
fn brotli_window_bits(first: u8) -> u8 {
    if first & 1 == 0 {
        return 16;
    }
    match (first >> 1) & 7 {
        0 => match (first >> 4) & 7 {
            0 => 17,
            1 => u8::MAX, // large-window Brotli, which HTTP does not use
            m => 8 + m,
        },
        n => 17 + n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_codings() {
        assert_eq!(parse(None), Encoding::Identity);
        assert_eq!(parse(Some(b" identity ")), Encoding::Identity);
        assert_eq!(parse(Some(b"GZIP")), Encoding::Decode(Coding::Gzip));
        assert_eq!(parse(Some(b"identity, br")), Encoding::Decode(Coding::Brotli));
        assert_eq!(parse(Some(b"deflate")), Encoding::Decode(Coding::Deflate));
        assert_eq!(parse(Some(b"x-anything")), Encoding::Unsupported);
        assert_eq!(parse(Some(b"zstd")), Encoding::Unsupported);
        assert_eq!(parse(Some(b"gzip, br")), Encoding::Unsupported);
    }

    /// Decodes `data` in `chunk`-byte pieces: the output, and whether it stopped and why.
    fn decode(coding: Coding, data: &[u8], chunk: usize, cap: u64) -> (Vec<u8>, Result<(), Halt>) {
        let mut d = Decompressor::new(coding, cap);
        let mut out = Vec::new();
        for piece in data.chunks(chunk) {
            if let Err(halt) = d.feed(piece, &mut |bytes| out.extend_from_slice(bytes)) {
                return (out, Err(halt));
            }
        }
        let end = d.finish();
        (out, end)
    }

    #[test]
    fn round_trips_in_any_chunking() {
        use std::io::Write;
        let body: Vec<u8> = (0..50_000u32).flat_map(|i| format!("{i},").into_bytes()).collect();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&body).unwrap();
        let gz = gz.finish().unwrap();
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        zlib.write_all(&body).unwrap();
        let zlib = zlib.finish().unwrap();
        let mut br = Vec::new();
        brotli::BrotliCompress(&mut &body[..], &mut br, &brotli::enc::BrotliEncoderParams::default()).unwrap();
        for (coding, data) in [(Coding::Gzip, &gz), (Coding::Deflate, &zlib), (Coding::Brotli, &br)] {
            for chunk in [1, 13, 4096, data.len()] {
                let (out, end) = decode(coding, data, chunk, u64::MAX);
                assert_eq!((out.len(), end), (body.len(), Ok(())), "{coding:?} in {chunk}-byte chunks");
                assert!(out == body);
            }
            // Capped: exactly the cap comes out, then it stops.
            let (out, end) = decode(coding, data, 1000, 10_000);
            assert_eq!((out.len(), end), (10_000, Err(Halt::Full)), "{coding:?}");
            // Cut short: not complete.
            let (_, end) = decode(coding, data.get(..data.len() / 2).unwrap(), 1000, u64::MAX);
            assert_eq!(end, Err(Halt::Undecodable), "{coding:?} cut");
        }
        // A gzip header with every optional field.
        let mut fancy = vec![0x1f, 0x8b, 8, FEXTRA | FNAME | FCOMMENT | FHCRC, 0, 0, 0, 0, 0, 3, 2, 0, b'x', b'y'];
        fancy.extend_from_slice(b"name\0comment\0\0\0");
        fancy.extend_from_slice(gz.get(10..).unwrap());
        assert_eq!(decode(Coding::Gzip, &fancy, 3, u64::MAX).0.len(), body.len());
    }

    #[test]
    fn hostile_streams_never_panic() {
        use std::io::Write;
        let body = br#"{"card":"4111 1111 1111 1111","note":"a note that repeats, a note that repeats"}"#;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(body).unwrap();
        let gz = gz.finish().unwrap();
        let mut br = Vec::new();
        brotli::BrotliCompress(&mut &body[..], &mut br, &brotli::enc::BrotliEncoderParams::default()).unwrap();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for (coding, data) in [(Coding::Gzip, &gz), (Coding::Deflate, &gz[10..].to_vec()), (Coding::Brotli, &br)] {
            // Every single-byte flip, and random multi-byte damage; whatever comes out stays under the cap.
            for at in 0..data.len() {
                for flip in [0x01u8, 0x80, 0xff] {
                    let mut bad = data.clone();
                    bad[at] ^= flip;
                    let (out, _) = decode(coding, &bad, 7, 4096);
                    assert!(out.len() <= 4096);
                }
            }
            for _ in 0..2000 {
                let mut bad = data.clone();
                for _ in 0..1 + next() % 8 {
                    let at = (next() % bad.len() as u64) as usize;
                    bad[at] = next() as u8;
                }
                let (out, _) = decode(coding, &bad, 1 + (next() % 64) as usize, 4096);
                assert!(out.len() <= 4096);
            }
            let random: Vec<u8> = (0..4096).map(|_| next() as u8).collect();
            let (out, _) = decode(coding, &random, 100, 4096);
            assert!(out.len() <= 4096);
        }
    }

    #[test]
    fn window_bits() {
        assert_eq!(brotli_window_bits(0), 16);
        assert_eq!(brotli_window_bits(0b1011), 22);
        assert_eq!(brotli_window_bits(0b1111), 24);
        assert_eq!(brotli_window_bits(0b0000_0001), 17);
        assert_eq!(brotli_window_bits(0b0010_0001), 10);
    }
}
