//! The words around a candidate: context keywords, and the key or label a value is written under.
//!
//! Words are split the way API keys are written: `phone_number`, `mobilePhone`, `X-Client-Version` and `ean13` are
//! made of the parts `phone`·`number`, `mobile`·`Phone`, `X`·`Client`·`Version` and `ean`·`13`. A keyword counts
//! only as whole parts (with a plain inflection: `calls`, `texted`, `caller`), so `call` is not found in `callback`
//! or `Callahan`, nor `dial` in `Diallo`.

/// Endings a keyword may carry and still be the same word (`phones`, `texted`, `calling`, `caller`).
const INFLECTIONS: &[&[u8]] = &[b"", b"s", b"es", b"ed", b"ing", b"er", b"ers"];

/// Words that name a value as an identifier, a code, a time or a measure: a number under such a key (`order_id`,
/// `transactionId`, `tracking number`, `ean`, `created_at`, `duration_ms`) is not a card or phone number.
pub(crate) const NUMBER_WORDS: &[&str] = &[
    "id",
    "ids",
    "uuid",
    "guid",
    "ref",
    "refs",
    "reference",
    "sku",
    "ean",
    "gtin",
    "upc",
    "isbn",
    "barcode",
    "tracking",
    "serial",
    "nonce",
    "seq",
    "sequence",
    "hash",
    "checksum",
    "ts",
    "time",
    "timestamp",
    "epoch",
    "date",
    "created",
    "updated",
    "ms",
    "millis",
    "duration",
    "count",
    "total",
    "amount",
    "size",
    "bytes",
    "offset",
    "version",
];

/// Words that name a dotted quad as a version (`app_version`, `rv:`, `build`, `X-Client-Version`).
pub(crate) const VERSION_WORDS: &[&str] =
    &["v", "ver", "version", "versions", "rv", "rev", "revision", "build", "release", "firmware", "fw", "sdk"];

/// Words that name a value as a network address: a product token made of one (`hosts/10.0.0.8`) is a path, not a
/// `Product/version` pair.
pub(crate) const ADDRESS_WORDS: &[&str] =
    &["ip", "ips", "ipv4", "addr", "address", "host", "hosts", "server", "servers", "node", "nodes", "peer", "client"];

/// Words that say a number is a payment card, whatever the key around it also says (`card_id`, `ID card`).
pub(crate) const CARD_WORDS: &[&str] =
    &["card", "cards", "cc", "pan", "visa", "mastercard", "amex", "credit", "debit", "payment", "maestro"];

fn at(text: &[u8], i: usize) -> Option<u8> {
    text.get(i).copied()
}

/// Whether a word part starts at `i`: after a byte that is not a letter or digit, at a lower-to-upper case change
/// (`mobile|Phone`), or where letters and digits meet (`ean|13`).
fn part_starts(text: &[u8], i: usize) -> bool {
    let Some(cur) = at(text, i) else {
        return false;
    };
    let Some(prev) = i.checked_sub(1).and_then(|j| at(text, j)) else {
        return true;
    };
    !prev.is_ascii_alphanumeric()
        || (prev.is_ascii_lowercase() && cur.is_ascii_uppercase())
        || (prev.is_ascii_digit() != cur.is_ascii_digit())
}

/// Where the word part that goes on at `i` ends.
fn part_end(text: &[u8], mut i: usize) -> usize {
    while at(text, i).is_some_and(|b| b.is_ascii_alphanumeric()) && !(i > 0 && part_starts(text, i)) {
        i += 1;
    }
    i
}

/// True when a keyword appears in `before` (case-insensitively) as a whole word part, possibly inflected: `tel`
/// counts in `Tel:` and `phone` in `mobilePhone`, but `call` does not in `callback_id`, nor `tel` in `hotel`.
/// A keyword that starts or ends with a byte that is not a letter or digit is not held to that side's boundary.
pub(crate) fn has_keyword<'k>(before: &[u8], keywords: impl IntoIterator<Item = &'k [u8]> + Clone) -> bool {
    has_keyword_where(before, keywords, |_| true)
}

/// [`has_keyword`], counting only keywords whose whole word (the run of letters, digits, `_`, `-` and `.` around
/// them: the key they are part of) passes `accept`: `message` in `message_ids` is no phone context.
pub(crate) fn has_keyword_where<'k>(
    before: &[u8],
    keywords: impl IntoIterator<Item = &'k [u8]> + Clone,
    accept: impl Fn(&[u8]) -> bool,
) -> bool {
    for (i, b) in before.iter().enumerate() {
        let starts_part = part_starts(before, i);
        // Inside a word part only a keyword starting with punctuation could begin, and this byte is not one.
        if !starts_part && b.is_ascii_alphanumeric() {
            continue;
        }
        let first = b.to_ascii_lowercase();
        let rest = before.get(i..).unwrap_or(&[]);
        // Keywords are lower case: the first byte rules most out before any slice is compared.
        let found = keywords.clone().into_iter().any(|k| {
            let (Some(&kf), Some(&kl)) = (k.first(), k.last()) else {
                return false;
            };
            // A keyword that starts with a letter or digit starts a word part.
            if kf.to_ascii_lowercase() != first || (!starts_part && kf.is_ascii_alphanumeric()) {
                return false;
            }
            if !rest.get(..k.len()).is_some_and(|w| w.eq_ignore_ascii_case(k)) {
                return false;
            }
            if !kl.is_ascii_alphanumeric() {
                return true;
            }
            let end = i + k.len();
            let suffix = before.get(end..part_end(before, end)).unwrap_or(&[]);
            INFLECTIONS.iter().any(|s| s.eq_ignore_ascii_case(suffix)) && accept(word_around(before, i, end))
        });
        if found {
            return true;
        }
    }
    false
}

fn is_label_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

/// The word (key) that `text[from..to]` is part of.
fn word_around(text: &[u8], mut from: usize, mut to: usize) -> &[u8] {
    while from > 0 && text.get(from - 1).is_some_and(|b| is_label_byte(*b)) {
        from -= 1;
    }
    while text.get(to).is_some_and(|b| is_label_byte(*b)) {
        to += 1;
    }
    text.get(from..to).unwrap_or(&[])
}

/// Bytes between a key and its value: quotes, `:`, `=`, spaces, a JSON escape, the `[` of an array value.
fn is_gap_byte(b: u8) -> bool {
    matches!(b, b'"' | b'\'' | b' ' | b':' | b'=' | b'\t' | b'\\' | b'[')
}

/// The key or label a value starting at `start` is written under: the word right before it, past at most six
/// quote, `:`, `=` or space bytes (`"order_id": "`, `rv:`, `X-App-Version: `), and the word before that one when a
/// single space separates them (`tracking number: `). Empty when the value follows something else (`,`, `/`, `(`).
pub(crate) fn label_before(tail: &[u8], start: usize) -> &[u8] {
    let before = |i: usize| i.checked_sub(1).and_then(|j| at(tail, j));
    let mut end = start;
    while before(end).is_some_and(is_gap_byte) && start - end < 6 {
        end -= 1;
    }
    let mut from = end;
    for word in 0..2 {
        if word == 1 {
            // A second word only across one space: `tracking number`, not `{"a": 1, "b": ...`.
            if !(before(from) == Some(b' ') && before(from - 1).is_some_and(is_label_byte)) {
                break;
            }
            from -= 1;
        }
        let word_end = from;
        while before(from).is_some_and(is_label_byte) && word_end - from < 32 {
            from -= 1;
        }
    }
    tail.get(from..end).unwrap_or(&[])
}

/// Whether one of the word parts of `label` is one of `words` (compared case-insensitively, whole parts only).
pub(crate) fn label_has(label: &[u8], words: &[&str]) -> bool {
    let mut i = 0;
    while i < label.len() {
        if part_starts(label, i) && at(label, i).is_some_and(|b| b.is_ascii_alphanumeric()) {
            let end = part_end(label, i + 1);
            let part = label.get(i..end).unwrap_or(&[]);
            if words.iter().any(|w| w.as_bytes().eq_ignore_ascii_case(part)) {
                return true;
            }
            i = end;
        } else {
            i += 1;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kw(text: &str, keywords: &[&str]) -> bool {
        has_keyword(text.as_bytes(), keywords.iter().map(|k| k.as_bytes()))
    }

    #[test]
    fn keywords_are_whole_word_parts() {
        assert!(kw("Tel: ", &["tel"]));
        assert!(kw("MOBILE ", &["mobile"]));
        assert!(kw(r#"{"phone_number": "#, &["phone"]));
        assert!(kw(r#"{"mobilePhone": "#, &["phone"]));
        assert!(kw("PhoneNumber=", &["phone"]));
        assert!(kw("please call me", &["call"]));
        assert!(kw("texted me", &["text"]));
        assert!(kw("the caller said", &["call"]));
        assert!(kw("my social security number", &["social security"]));
        assert!(!kw("hotel ", &["tel"]));
        assert!(!kw(r#""callback_id": "#, &["call"]));
        assert!(!kw("Mr Callahan ", &["call"]));
        assert!(!kw("Amadou Diallo ", &["dial"]));
        assert!(!kw("cellar ", &["cell"]));
        assert!(!kw("textile ", &["text"]));
        assert!(!kw("", &["tel"]));
        // Keywords with punctuation at an edge are not held to that edge.
        assert!(kw("acct#", &["#"]));
        assert!(kw("ref-no:", &["no:"]));
        let not_in_ids =
            |t: &str| has_keyword_where(t.as_bytes(), [b"message".as_slice()], |word| !label_has(word, NUMBER_WORDS));
        assert!(!not_in_ids(r#"{"message_ids": [1, "#));
        assert!(!not_in_ids(r#""message.count": "#));
        assert!(not_in_ids(r#"{"message": "text me", "to": "#));
    }

    #[test]
    fn labels() {
        let label = |t: &str| String::from_utf8(label_before(t.as_bytes(), t.len()).to_vec()).unwrap();
        assert_eq!(label(r#"{"order_id": ""#), "order_id");
        assert_eq!(label(r#"{"transactionId":"#), "transactionId");
        assert_eq!(label("rv:"), "rv");
        assert_eq!(label("X-Client-Version: "), "X-Client-Version");
        assert_eq!(label("tracking number: "), "tracking number");
        assert_eq!(label("ver. "), "ver.");
        assert_eq!(label(r#""a": 1, "#), "");
        assert_eq!(label("http://"), "");
        assert_eq!(label("x"), "x");
        assert!(label_has(b"transactionId", NUMBER_WORDS));
        assert!(label_has(b"tracking number", NUMBER_WORDS));
        assert!(label_has(b"ean13", NUMBER_WORDS));
        assert!(label_has(b"orderID", NUMBER_WORDS));
        assert!(!label_has(b"card_number", NUMBER_WORDS));
        assert!(!label_has(b"valid", NUMBER_WORDS));
        assert!(label_has(b"X-Client-Version", VERSION_WORDS));
        assert!(!label_has(b"conversion", VERSION_WORDS));
    }
}
