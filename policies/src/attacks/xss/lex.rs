//! Byte helpers shared by the XSS lexers: bounds-checked reads, character classes, case-insensitive matching.

/// The byte at `i`, or 0 past the end (0 is never a meaningful byte to these lexers).
pub(super) fn at(s: &[u8], i: usize) -> u8 {
    s.get(i).copied().unwrap_or(0)
}

/// The byte before `i`, or 0 at the start.
pub(super) fn before(s: &[u8], i: usize) -> u8 {
    i.checked_sub(1).map_or(0, |j| at(s, j))
}

/// HTML whitespace, plus the vertical tab that old browsers also skipped.
pub(super) fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// A character of a JavaScript identifier (ASCII part).
pub(super) fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$'
}

/// Whether `s` holds `pat` (lower-case ASCII) at `i`, in any case.
pub(super) fn starts_ci(s: &[u8], i: usize, pat: &[u8]) -> bool {
    s.get(i..i.saturating_add(pat.len())).is_some_and(|w| w.eq_ignore_ascii_case(pat))
}

/// The end of the run of `class` bytes starting at `i`, looking at most `limit` bytes ahead.
pub(super) fn run_end(s: &[u8], i: usize, limit: usize, class: impl Fn(u8) -> bool) -> usize {
    let mut j = i;
    let stop = i.saturating_add(limit).min(s.len());
    while j < stop && class(at(s, j)) {
        j += 1;
    }
    j
}

/// Skips whitespace and `/* ... */` comments from `i`, at most `limit` bytes: what JavaScript (and CSS) ignore
/// between tokens.
pub(super) fn skip_blank(s: &[u8], i: usize, limit: usize) -> usize {
    let stop = i.saturating_add(limit).min(s.len());
    let mut j = i;
    while j < stop {
        let b = at(s, j);
        if is_space(b) {
            j += 1;
        } else if b == b'/' && at(s, j + 1) == b'*' {
            let mut k = j + 2;
            while k < stop && !(at(s, k) == b'*' && at(s, k + 1) == b'/') {
                k += 1;
            }
            j = k + 2;
        } else {
            break;
        }
    }
    j.min(s.len())
}

/// Matches `word` (lower case) at `i` in any case, letting bytes that a browser drops or ignores inside it (tab,
/// newline, carriage return, NUL, and `/**/` for CSS) sit between its letters; returns the end of the match.
pub(super) fn match_loose(s: &[u8], i: usize, word: &[u8], css: bool) -> Option<usize> {
    let mut j = i;
    let budget = i.saturating_add(word.len().saturating_mul(12)).saturating_add(16);
    for (n, &want) in word.iter().enumerate() {
        if n > 0 {
            loop {
                let b = at(s, j);
                if matches!(b, b'\t' | b'\n' | b'\r' | 0) && j < s.len() {
                    j += 1;
                } else if let Some(len) = dropped_entity(s, j) {
                    j += len;
                } else if css && b == b'/' && at(s, j + 1) == b'*' {
                    j = skip_blank(s, j, 64);
                } else if css && b == b'\\' && at(s, j + 1).eq_ignore_ascii_case(&want) {
                    j += 1;
                } else {
                    break;
                }
                if j > budget {
                    return None;
                }
            }
        }
        // `&colon;` in any case for the scheme's colon (the decoder knows only the exact spelling).
        if want == b':' && starts_ci(s, j, b"&colon;") {
            j += 7;
            continue;
        }
        if j >= s.len() || !at(s, j).eq_ignore_ascii_case(&want) {
            return None;
        }
        j += 1;
    }
    Some(j)
}

/// The length of a tab or newline entity at `i` in a spelling the decoder leaves alone (`&tab;`, `&NEWLINE;`: HTML
/// names are case-sensitive, but filters are tried with every case), or `None`.
pub(super) fn dropped_entity(s: &[u8], i: usize) -> Option<usize> {
    if at(s, i) != b'&' {
        return None;
    }
    [&b"&tab;"[..], b"&newline;"].iter().find(|e| starts_ci(s, i, e)).map(|e| e.len())
}
