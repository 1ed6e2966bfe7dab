//! Payment card numbers: which digits of a run of digit groups a candidate is, and whether a scheme issues it.
//!
//! The pattern reports a candidate at the end of a run of digits with single space or dash separators (a
//! terminator follows), and also at every separator inside such a run once 12 digits are behind (a separator and a
//! digit follow): so a card followed by a year or a CVV (`4111…1111 2027`), and the first of two cards written side
//! by side, have an end of their own. From that end the validator reads the groups back to where the run starts and
//! tries the windows of 12–19 digits that end there, longest first:
//! - the whole run, when the candidate ends it: grouped any way;
//! - a window that starts where the run starts, or ends where it ends: grouped as whole cards are printed
//!   (compact, 4-4-4-4, 4-4-4-4-3, or Amex/Diners 4-6-5 and 4-6-4), so twelve digits of a 16-digit number are not
//!   a card;
//! - anything else: one compact group standing alone (`… 4111111111111111 5555…`).
//!
//! A run glued to a word (`x4111…`, `…1111abc`, the digits of a spaced IBAN) is an identifier, a run after a decimal
//! point is a fraction, a group of 20 digits or more is a different kind of number, and a run written under an
//! identifier's key (`order_id`, `transactionId`, `tracking number`) is an identifier, unless the key also names a
//! card. What is left must fit a scheme's issuer prefix and length ([`card_network`]) and pass Luhn; 13 digits that
//! are also a valid EAN-13 barcode count only next to a card word.

use super::context::{has_keyword, label_before, label_has, CARD_WORDS, NUMBER_WORDS};
use super::{at, before, is_alnum, is_digit, number, skip_terminator, window_before};

/// Digits of the longest card number.
const MAX_DIGITS: usize = 19;
/// Groups read back from a candidate's end: more than any window needs.
const MAX_GROUPS: usize = 12;
/// Bytes read back from a candidate's end: a window is at most 37 (19 digits, 18 separators).
const MAX_RUN_BYTES: usize = 64;

fn is_sep(b: Option<u8>) -> bool {
    matches!(b, Some(b' ' | b'-'))
}

/// Confirms a card candidate ending the tail (`next`: the byte after the match). `window`: how far back card words
/// are looked for.
pub(super) fn credit_card(tail: &[u8], next: Option<u8>, window: usize) -> Option<(usize, usize)> {
    let len = tail.len();
    let next_group =
        len >= 3 && is_digit(before(tail, len)) && is_sep(before(tail, len - 1)) && is_digit(before(tail, len - 2));
    if next_group {
        // A separator and a digit follow the candidate: it ends inside the run. At the end of the input the same
        // bytes may also end the run itself (`… 5`), which is tried first.
        if next.is_none() {
            if let Some(found) = ending_at(tail, len, true, window) {
                return Some(found);
            }
        }
        return ending_at(tail, len - 2, false, window);
    }
    ending_at(tail, skip_terminator(tail, 3, |b| b.is_ascii_digit()), true, window)
}

/// The longest card that ends at `end` (`run_end`: nothing but a terminator follows).
fn ending_at(tail: &[u8], end: usize, run_end: bool, window: usize) -> Option<(usize, usize)> {
    if run_end && is_alnum(at(tail, end)) {
        return None; // `4111…1111abc`
    }
    // The groups, last first: (start, digits).
    let mut groups = [(0usize, 0usize); MAX_GROUPS];
    let mut n = 0usize;
    // Whether the first group read is where the run starts (not cut off by a long group or the read limit).
    let mut whole_run = true;
    let mut i = end;
    loop {
        let group_end = i;
        while is_digit(before(tail, i)) && group_end - i <= MAX_DIGITS {
            i -= 1;
        }
        let digits = group_end - i;
        if digits > MAX_DIGITS || end - i > MAX_RUN_BYTES {
            // Longer than any card (a different kind of number), or further back than a card reaches.
            whole_run = false;
            break;
        }
        let Some(slot) = groups.get_mut(n) else {
            whole_run = false;
            break;
        };
        *slot = (i, digits);
        n += 1;
        if is_sep(before(tail, i)) && i >= 2 && is_digit(before(tail, i - 1)) {
            i -= 1;
        } else {
            break;
        }
    }
    let (run_start, _) = *groups.get(n.checked_sub(1)?)?;
    let mut first_may_start = whole_run;
    if whole_run {
        let prev = before(tail, run_start);
        if is_alnum(prev) {
            return None; // glued to a word: an identifier, or the digits of an IBAN
        }
        // A fraction (`0.4111…`) is part of a larger number.
        first_may_start = !(prev == Some(b'.') && is_digit(before(tail, run_start - 1)));
        let label = label_before(tail, run_start);
        if label_has(label, NUMBER_WORDS) && !label_has(label, CARD_WORDS) {
            return None;
        }
    }
    let groups = groups.get(..n)?;
    // Windows from the earliest group on (longest first), each ending at `end`.
    for j in (0..n).rev() {
        let window_groups = groups.get(..=j)?;
        let digits: usize = window_groups.iter().map(|g| g.1).sum();
        if digits > MAX_DIGITS {
            continue;
        }
        if digits < 12 {
            break;
        }
        let starts_run = j + 1 == n && whole_run;
        if j + 1 == n && !first_may_start {
            continue;
        }
        let layout_ok = if starts_run && run_end {
            true
        } else if starts_run || run_end {
            card_layout(window_groups)
        } else {
            j == 0
        };
        let (start, _) = *window_groups.last()?;
        if layout_ok && valid(tail, start, end, digits, window) {
            return Some((start, end));
        }
    }
    None
}

/// Printed the way whole cards are: compact, 4-4-4-4, 4-4-4-4-3, or Amex and Diners' 4-6-5 and 4-6-4. Not the
/// first or last three fours of a 16-digit number.
fn card_layout(groups_last_first: &[(usize, usize)]) -> bool {
    matches!(
        groups_last_first,
        [_] | [(_, 4), (_, 4), (_, 4), (_, 4)]
            | [(_, 3), (_, 4), (_, 4), (_, 4), (_, 4)]
            | [(_, 5 | 4), (_, 6), (_, 4)]
    )
}

/// The digits in `start..end` fit a scheme and pass Luhn (and are not a barcode, unless a card word is near).
fn valid(tail: &[u8], start: usize, end: usize, n: usize, window: usize) -> bool {
    let mut digits = [0u8; MAX_DIGITS];
    let mut k = 0usize;
    for b in tail.get(start..end).unwrap_or(&[]).iter().filter(|b| b.is_ascii_digit()) {
        if let Some(slot) = digits.get_mut(k) {
            *slot = *b;
        }
        k += 1;
    }
    let Some(digits) = digits.get(..n).filter(|_| k == n) else {
        return false;
    };
    if !card_network(digits) || !core::str::from_utf8(digits).is_ok_and(luhn::valid) {
        return false;
    }
    if n == 13 && ean13(digits) {
        let near = window_before(tail, start, window);
        return has_keyword(near, CARD_WORDS.iter().map(|w| w.as_bytes()));
    }
    true
}

/// The GS1 check digit of an EAN-13 barcode holds.
fn ean13(digits: &[u8]) -> bool {
    let Some((check, body)) = digits.split_last() else {
        return false;
    };
    let sum: u32 = body.iter().enumerate().map(|(i, d)| u32::from(d - b'0') * if i % 2 == 1 { 3 } else { 1 }).sum();
    (10 - sum % 10) % 10 == u32::from(check - b'0')
}

/// Issuer prefix and length fit a major scheme's IIN ranges.
pub(super) fn card_network(digits: &[u8]) -> bool {
    let len = digits.len();
    let (p1, p2, p3, p4) = (number(digits, 1), number(digits, 2), number(digits, 3), number(digits, 4));
    let visa = p1 == 4 && matches!(len, 13 | 16 | 19);
    let mastercard = ((51..=55).contains(&p2) || (2221..=2720).contains(&p4)) && len == 16;
    let amex = matches!(p2, 34 | 37) && len == 15;
    let discover = (p4 == 6011 || (644..=649).contains(&p3) || p2 == 65) && (16..=19).contains(&len);
    let diners = ((300..=305).contains(&p3) || p4 == 3095 || matches!(p2, 36 | 38 | 39)) && (14..=19).contains(&len);
    // JCB: 35 as the networks' own brand tables use (3528–3589 assigned today), and the legacy 15-digit 1800/2131.
    let jcb = (p2 == 35 && (16..=19).contains(&len)) || (matches!(p4, 1800 | 2131) && len == 15);
    let unionpay = p2 == 62 && (16..=19).contains(&len);
    // Maestro: 5018, 5020, 5038, 5893, 56–58, 6304, 6759, 6761–6763.
    let maestro = (matches!(p4, 5018 | 5020 | 5038 | 5893 | 6304 | 6759 | 6761..=6763) || (56..=58).contains(&p2))
        && (12..=19).contains(&len);
    // Mir: 2200–2204.
    let mir = (2200..=2204).contains(&p4) && (16..=19).contains(&len);
    visa || mastercard || amex || discover || diners || jcb || unionpay || maestro || mir
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(lens: &[usize]) -> Vec<(usize, usize)> {
        lens.iter().rev().map(|l| (0, *l)).collect()
    }

    #[test]
    fn layouts() {
        for good in [&[16][..], &[4, 4, 4, 4], &[4, 4, 4, 4, 3], &[4, 6, 5], &[4, 6, 4]] {
            assert!(card_layout(&groups(good)), "{good:?}");
        }
        for bad in [&[2, 4, 4, 4, 4][..], &[4, 4, 4], &[4, 4, 4, 1], &[4, 4, 4, 4, 2], &[8, 8], &[4, 4], &[4, 5, 6]] {
            assert!(!card_layout(&groups(bad)), "{bad:?}");
        }
    }

    #[test]
    fn barcodes_and_networks() {
        assert!(ean13(b"4006381333931"));
        assert!(!ean13(b"4006381333932"));
        assert!(card_network(b"4111111111111111"));
        assert!(card_network(b"2223003122003222"));
        assert!(card_network(b"6759649826438453"));
        assert!(card_network(b"2200000000000004"));
        assert!(!card_network(b"5900000000000000"), "59 is no Maestro range");
        assert!(!card_network(b"6900000000000000"));
        assert!(!card_network(b"41111111111111"), "Visa is 13, 16 or 19 digits");
    }

    #[test]
    fn windows() {
        let card = |t: &str, next: Option<u8>| credit_card(t.as_bytes(), next, 48).map(|(s, e)| t[s..e].to_owned());
        // Inside a run: a separator and the next group's first digit end the match.
        assert_eq!(card("4111111111111111 5", Some(b'5')).as_deref(), Some("4111111111111111"));
        assert_eq!(card("x 4111 1111 1111 1111 2", Some(b'0')).as_deref(), Some("4111 1111 1111 1111"));
        // At the end of the input the last digit may end the run: the longest card wins.
        assert_eq!(card("4111111111111111 5", None).as_deref(), Some("4111111111111111"));
        assert_eq!(card("4111111111111111 5555555555554444\"", None).as_deref(), Some("5555555555554444"));
        assert_eq!(card("12 34 5555 5555 5555 4444\"", None).as_deref(), Some("5555 5555 5555 4444"));
        // A grouped card must start or end the run; a compact one may stand between others.
        assert!(card("1 5555 5555 5555 4444 2", Some(b'2')).is_none());
        assert_eq!(card("1 5555555555554444 2", Some(b'2')).as_deref(), Some("5555555555554444"));
        assert!(card("id 4111111111111111\"", None).is_none());
        assert!(card("0.4111111111111111\"", None).is_none());
    }
}
