//! Telling text from binary by the first bytes of a body labelled binary.
//!
//! The sender chooses a request's `content-type`, and many upstream parsers ignore it: JSON sent as
//! `application/octet-stream` is still JSON to them. So a body labelled binary whose first [`SNIFF_BYTES`] bytes are
//! text (valid UTF-8 without NUL or other C0 controls besides tab, CR and LF) is inspected as text; a real binary
//! body (an image, an archive, protobuf) shows a control byte or invalid UTF-8 within its first bytes and stays
//! skipped. The check runs on the bytes as they stream, with no buffer.

/// Bytes at the start of a body that decide whether it is text.
pub const SNIFF_BYTES: u64 = 512;

/// Where the sniff of one body stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Sniff {
    /// Bytes looked at so far (at most [`SNIFF_BYTES`]).
    seen: u64,
    /// Continuation bytes the current UTF-8 sequence still needs.
    pending: u8,
    /// The range the next continuation byte must fall in (narrower after `E0`, `ED`, `F0`, `F4`).
    next_low: u8,
    next_high: u8,
    /// A byte showed the body is binary.
    binary: bool,
}

impl Sniff {
    /// True once a byte showed the body is binary.
    pub(super) fn is_binary(&self) -> bool {
        self.binary
    }

    /// Looks at the part of `bytes` that falls in the sniff window; false when it shows the body is binary (then for
    /// good).
    pub(super) fn text(&mut self, bytes: &[u8]) -> bool {
        if self.binary {
            return false;
        }
        let room = usize::try_from(SNIFF_BYTES.saturating_sub(self.seen)).unwrap_or(0);
        let window = bytes.get(..room.min(bytes.len())).unwrap_or(&[]);
        self.seen += window.len() as u64;
        for &b in window {
            if !self.step(b) {
                self.binary = true;
                return false;
            }
        }
        true
    }

    /// One byte of the window: false when it cannot be text.
    fn step(&mut self, b: u8) -> bool {
        if self.pending > 0 {
            if !(self.next_low..=self.next_high).contains(&b) {
                return false;
            }
            self.pending -= 1;
            (self.next_low, self.next_high) = (0x80, 0xbf);
            return true;
        }
        let (pending, low, high) = match b {
            b'\t' | b'\n' | b'\r' | 0x20..=0x7e => return true,
            0xc2..=0xdf => (1, 0x80, 0xbf),
            0xe0 => (2, 0xa0, 0xbf),
            0xed => (2, 0x80, 0x9f),
            0xe1..=0xef => (2, 0x80, 0xbf),
            0xf0 => (3, 0x90, 0xbf),
            0xf1..=0xf3 => (3, 0x80, 0xbf),
            0xf4 => (3, 0x80, 0x8f),
            // NUL and the other C0 controls, DEL, a stray continuation byte, an overlong or out-of-range lead.
            _ => return false,
        };
        (self.pending, self.next_low, self.next_high) = (pending, low, high);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sniff(chunks: &[&[u8]]) -> bool {
        let mut s = Sniff::default();
        chunks.iter().all(|c| s.text(c))
    }

    #[test]
    fn text_and_binary() {
        assert!(sniff(&[br#"{"card": "4111 1111 1111 1111"}"#]));
        assert!(sniff(&["\u{feff}naïve café, 東京, 🦀\r\n\ttab".as_bytes()]));
        // A sequence split across chunks is still valid.
        let crab = "🦀".as_bytes();
        assert!(sniff(&[&crab[..1], &crab[1..3], &crab[3..]]));
        assert!(!sniff(&[b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"]));
        assert!(!sniff(&[b"{\"a\":1}\0"]));
        assert!(!sniff(&[b"PK\x03\x04"]));
        assert!(!sniff(&[b"text", b"\x7f"]));
        assert!(!sniff(&[b"\xc0\xaf"])); // overlong
        assert!(!sniff(&[b"\xed\xa0\x80"])); // surrogate
        assert!(!sniff(&[b"abc\x80"])); // stray continuation
        assert!(!sniff(&[b"\x08\x96\x01"])); // protobuf
    }

    #[test]
    fn only_the_window_counts() {
        let mut body = vec![b'a'; SNIFF_BYTES as usize];
        body.push(0);
        assert!(sniff(&[&body]));
        let mut s = Sniff::default();
        assert!(s.text(&body[..100]));
        assert!(s.text(&body[100..]));
        assert!(s.text(b"\0\0\0"));
        assert!(!s.is_binary());
        body[SNIFF_BYTES as usize - 1] = 0;
        assert!(!sniff(&[&body]));
    }
}
