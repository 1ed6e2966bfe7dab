//! IBANs (ISO 13616): the registry's lengths per country and the mod-97 check, over a candidate that is compact or
//! printed in groups of four.

use super::{before, is_alnum};

/// IBAN registry: country code and total length.
const IBAN_LENGTHS: &[(&[u8; 2], usize)] = &[
    (b"AD", 24),
    (b"AE", 23),
    (b"AL", 28),
    (b"AT", 20),
    (b"AZ", 28),
    (b"BA", 20),
    (b"BE", 16),
    (b"BG", 22),
    (b"BH", 22),
    (b"BI", 27),
    (b"BR", 29),
    (b"BY", 28),
    (b"CH", 21),
    (b"CR", 22),
    (b"CY", 28),
    (b"CZ", 24),
    (b"DE", 22),
    (b"DJ", 27),
    (b"DK", 18),
    (b"DO", 28),
    (b"EE", 20),
    (b"EG", 29),
    (b"ES", 24),
    (b"FI", 18),
    (b"FK", 18),
    (b"FO", 18),
    (b"FR", 27),
    (b"GB", 22),
    (b"GE", 22),
    (b"GI", 23),
    (b"GL", 18),
    (b"GR", 27),
    (b"GT", 28),
    (b"HR", 21),
    (b"HU", 28),
    (b"IE", 22),
    (b"IL", 23),
    (b"IQ", 23),
    (b"IS", 26),
    (b"IT", 27),
    (b"JO", 30),
    (b"KW", 30),
    (b"KZ", 20),
    (b"LB", 28),
    (b"LC", 32),
    (b"LI", 21),
    (b"LT", 20),
    (b"LU", 20),
    (b"LV", 21),
    (b"LY", 25),
    (b"MC", 27),
    (b"MD", 24),
    (b"ME", 22),
    (b"MK", 19),
    (b"MN", 20),
    (b"MR", 27),
    (b"MT", 31),
    (b"MU", 30),
    (b"NI", 28),
    (b"NL", 18),
    (b"NO", 15),
    (b"OM", 23),
    (b"PK", 24),
    (b"PL", 28),
    (b"PS", 29),
    (b"PT", 25),
    (b"QA", 29),
    (b"RO", 24),
    (b"RS", 22),
    (b"RU", 33),
    (b"SA", 24),
    (b"SC", 31),
    (b"SD", 18),
    (b"SE", 24),
    (b"SI", 19),
    (b"SK", 24),
    (b"SM", 27),
    (b"SO", 23),
    (b"ST", 25),
    (b"SV", 28),
    (b"TL", 23),
    (b"TN", 24),
    (b"TR", 26),
    (b"UA", 29),
    (b"VA", 22),
    (b"VG", 24),
    (b"XK", 20),
    (b"YE", 30),
];

/// An IBAN (`registry`: the country's registered length must fit) or any ISO 13616 mod-97 string, compact or in
/// groups of four (separated by spaces or by dashes).
pub(super) fn iban(tail: &[u8], next: Option<u8>, registry: bool) -> Option<(usize, usize)> {
    if is_alnum(next) {
        return None;
    }
    // A dash after the last group ends it (`GB82WEST12345698765432-`): a tracked IBAN goes on over dashes.
    let mut end = tail.len();
    while before(tail, end) == Some(b'-') {
        end -= 1;
    }
    let is_sep = |b: u8| b == b' ' || b == b'-';
    // The run of letters and digits, with single separators, that ends the tail (at most 34 characters and 10
    // separators).
    let mut run_start = end;
    let mut i = end;
    while let Some(b) = before(tail, i) {
        if end - i >= 44 {
            break;
        }
        if b.is_ascii_alphanumeric() {
            i -= 1;
            run_start = i;
        } else if is_sep(b) && run_start == i && is_alnum(before(tail, i - 1)) {
            i -= 1;
        } else {
            break;
        }
    }
    // Try every word start in the run, longest first: `IBAN GB82 WEST ...` starts at `GB82`.
    let mut s = run_start;
    while s + 4 <= end {
        let word_start = s == run_start || before(tail, s).is_some_and(is_sep);
        if word_start {
            if let Some(found) = iban_at(tail.get(s..end)?, registry) {
                if found {
                    return Some((s, end));
                }
            }
        }
        s += 1;
    }
    None
}

/// `Some(true)` when `text` (compact, or with a space or a dash after every four characters) is a valid IBAN.
fn iban_at(text: &[u8], registry: bool) -> Option<bool> {
    let head = text.get(..4)?;
    let shape = head.iter().take(2).all(u8::is_ascii_alphabetic) && head.iter().skip(2).all(u8::is_ascii_digit);
    if !shape {
        return None;
    }
    let mut compact = [0u8; 34];
    let mut n = 0usize;
    // Printed form: one kind of separator, after every fourth character.
    let sep = text.iter().copied().find(|b| !b.is_ascii_alphanumeric());
    for (i, b) in text.iter().enumerate() {
        if !b.is_ascii_alphanumeric() {
            if Some(*b) != sep || n % 4 != 0 || (i + 1) % 5 != 0 {
                return Some(false);
            }
            continue;
        }
        *compact.get_mut(n)? = b.to_ascii_uppercase();
        n += 1;
    }
    let compact = compact.get(..n)?;
    let length_ok = if registry {
        IBAN_LENGTHS.iter().find(|(cc, _)| compact.get(..2) == Some(cc.as_slice())).is_some_and(|(_, len)| *len == n)
    } else {
        (5..=34).contains(&n)
    };
    Some(length_ok && mod97(compact))
}

/// ISO 7064 mod 97-10 as ISO 13616 applies it: the first four characters moved to the end, letters as 10–35.
fn mod97(compact: &[u8]) -> bool {
    let (head, rest) = match compact.split_at_checked(4) {
        Some(parts) => parts,
        None => return false,
    };
    let mut remainder: u32 = 0;
    for b in rest.iter().chain(head) {
        let value = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            _ => return false,
        };
        remainder = if value >= 10 { (remainder * 100 + value) % 97 } else { (remainder * 10 + value) % 97 };
    }
    remainder == 1
}
