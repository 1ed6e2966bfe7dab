//! The built-in classifiers: the patterns the compiler builds into scan sets, and how their candidates are
//! confirmed.
//!
//! A pattern only *finds* candidates: it runs in one unanchored, overlapping DFA with every other pattern of its
//! location, so it reports where a candidate may end, not where it starts. The validator then walks back from that
//! end over the bytes the kind of data is made of (digits and separators for a card, hex and `:` for IPv6, ...),
//! which fixes the candidate's start, checks what surrounds it, and confirms it (Luhn, mod-97, area rules, ...).
//!
//! Some patterns end with a *terminator* (the byte after a card number that is not a digit, or a separator followed
//! by a non-digit, or the end of the input). Without it, a prefix of a longer number (`1.2.3.4` in `1.2.3.4.5`)
//! would be reported and could validate; with it, the pattern only fires once the number is over. The validators
//! skip a terminator before walking back.

use crate::detect::Validator;

mod card;
mod context;
mod iban;

pub(crate) use context::has_keyword;
use context::{label_before, label_has, ADDRESS_WORDS, NUMBER_WORDS, VERSION_WORDS};
use iban::iban;

/// One built-in classifier.
#[derive(Clone, Copy, Debug)]
pub struct Builtin {
    /// The id policies name it by (`credit_card`, `us_ssn`, ...).
    pub id: &'static str,
    /// The regex (regex-automata syntax) that finds candidates.
    pub pattern: &'static str,
    /// How candidates are confirmed.
    pub validator: Validator,
    /// The longest match the pattern produces, in bytes.
    pub max_len: u16,
    /// Lower-case keywords one of which must appear shortly before a match (empty: none needed).
    pub context: &'static [&'static str],
    /// How far before a match to look for context.
    pub context_window: u16,
    /// Default confidence of a confirmed finding (0–100).
    pub confidence: u8,
    /// A built-in this one is layered on: a detection of it must `require` a detection of that one.
    pub requires: Option<&'static str>,
}

/// What follows the end of a number: no digit within the next two separators (a third separator, another byte, or
/// the end of the input). A number followed by `.5` or ` 12` is not over yet, so its prefix is never reported.
macro_rules! number_end {
    () => {
        r"(?-u:[ .()\-]?[^0-9 .()\-]|[ .()\-]{2}[^0-9]|[ .()\-]{0,2}$)"
    };
}

/// What follows the end of a card candidate: a number's end, or a separator and the next digit group (a year, a
/// CVV, a second card): the validator tells them apart.
macro_rules! card_end {
    () => {
        concat!("(?:", number_end!(), r"|[ \-][0-9])")
    };
}

/// Keywords that make a national phone number (no leading `+`) count; they must be whole words or key parts
/// (`phone_number`, `mobilePhone`; not `callback_id` or `Callahan`), inflections allowed (`calls`, `texted`).
pub const PHONE_CONTEXT: &[&str] = &[
    "phone",
    "telephone",
    "cellphone",
    "tel",
    "mobile",
    "cell",
    "call",
    "fax",
    "contact",
    "desk",
    "sms",
    "text",
    "message",
    "whatsapp",
    "dial",
    "reach",
    "landline",
    "hotline",
];

/// Keywords that make a bare nine-digit number (no separators) count as a US SSN.
pub const SSN_CONTEXT: &[&str] = &["ssn", "social security", "social sec", "soc sec", "taxpayer id"];

/// How far before a bare SSN or a national phone number its keywords are looked for, unless the classifier says.
pub const DEFAULT_CONTEXT_WINDOW: u16 = 48;

/// Every built-in classifier.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        id: "credit_card",
        // The end of a run of at least 12 digits with single space or dash separators, or a separator inside such
        // a run (the validator reads the groups back and picks 12–19 digits): shorter numbers, which JSON is full
        // of, never reach the validator.
        pattern: concat!(r"[0-9](?:[ \-]?[0-9]){11}", card_end!()),
        validator: Validator::CreditCard,
        max_len: 40,
        context: &[],
        context_window: 0,
        confidence: 95,
        requires: None,
    },
    Builtin {
        id: "card_expiry",
        pattern: r"(?:0[1-9]|1[0-2])/(?:20)?[0-9]{2}",
        validator: Validator::CardExpiry,
        max_len: 7,
        context: &[],
        context_window: 0,
        confidence: 80,
        requires: Some("credit_card"),
    },
    Builtin {
        id: "us_ssn",
        // The last two groups; the validator reads the whole `AAA-GG-SSSS` (or with spaces or dots; bare nine digits
        // only after a keyword).
        pattern: r"[0-9]{2}[ .\-]?[0-9]{4}(?-u:[^0-9]|$)",
        validator: Validator::UsSsn,
        max_len: 11,
        context: &[],
        context_window: DEFAULT_CONTEXT_WINDOW,
        confidence: 85,
        requires: None,
    },
    Builtin {
        id: "iban",
        // Country and check digits start a tracked token; at each word end the validator fixes the length.
        pattern: r"[A-Za-z]{2}[0-9]{2}",
        validator: Validator::Iban,
        max_len: 44,
        context: &[],
        context_window: 0,
        confidence: 95,
        requires: None,
    },
    Builtin {
        id: "email",
        pattern: r"[A-Za-z0-9._%+\-]@[A-Za-z0-9]",
        validator: Validator::Email,
        max_len: 254,
        context: &[],
        context_window: 0,
        confidence: 90,
        requires: None,
    },
    Builtin {
        id: "phone",
        // The end of a run of at least 7 digits with up to two separators between them (every phone form has 7+);
        // the validator walks back over digits and separators and decides what counts.
        pattern: concat!(r"[0-9](?:[ .()\-]{0,2}[0-9]){6}", number_end!()),
        validator: Validator::Phone,
        max_len: 40,
        context: &[],
        context_window: DEFAULT_CONTEXT_WINDOW,
        confidence: 70,
        requires: None,
    },
    Builtin {
        id: "ipv4",
        // Four dotted groups of 1–3 digits: prices and versions (`32.00`, `1.2`) never reach the validator.
        pattern: concat!(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}", number_end!()),
        validator: Validator::Ipv4,
        max_len: 17,
        context: &[],
        context_window: 0,
        confidence: 80,
        requires: None,
    },
    Builtin {
        id: "ipv6",
        // `::` or a group between colons starts a tracked token; the validator parses the whole address.
        pattern: r"::|[0-9A-Fa-f]:[0-9A-Fa-f]{1,4}:",
        validator: Validator::Ipv6,
        max_len: 40,
        context: &[],
        context_window: 0,
        confidence: 80,
        requires: None,
    },
    Builtin {
        id: "aws_access_key_id",
        pattern: r"AKIA|ASIA",
        validator: Validator::None,
        max_len: 20,
        context: &[],
        context_window: 0,
        confidence: 95,
        requires: None,
    },
    Builtin {
        id: "github_token",
        pattern: r"gh[pousr]_|github_pat_",
        validator: Validator::None,
        max_len: 93,
        context: &[],
        context_window: 0,
        confidence: 95,
        requires: None,
    },
    Builtin {
        id: "slack_token",
        pattern: r"xox[abposr]-",
        validator: Validator::None,
        max_len: 256,
        context: &[],
        context_window: 0,
        confidence: 90,
        requires: None,
    },
    Builtin {
        id: "stripe_secret_key",
        pattern: r"[sr]k_(?:live|test)_",
        validator: Validator::None,
        max_len: 256,
        context: &[],
        context_window: 0,
        confidence: 95,
        requires: None,
    },
    Builtin {
        id: "private_key",
        // Five dashes and a capital start a tracked token; the validator reads the whole PEM header line.
        pattern: r"-----[A-Z]",
        validator: Validator::None,
        max_len: 48,
        context: &[],
        context_window: 0,
        confidence: 99,
        requires: None,
    },
    Builtin {
        id: "jwt",
        // The end of the header segment and the start of the payload: the validator decodes the header.
        pattern: r"[A-Za-z0-9_\-]\.eyJ",
        validator: Validator::Jwt,
        max_len: 256,
        context: &[],
        context_window: 0,
        confidence: 90,
        requires: None,
    },
];

/// The YAML `detections:` section with one detection per built-in classifier in `location` (ids `d-<classifier>`,
/// layered ones with their `requires:`): what benches, evaluations and tests scan with.
pub fn detections_yaml(location: &str) -> String {
    let mut yaml = String::from("detections:\n");
    for b in BUILTINS {
        yaml.push_str(&format!("  - id: d-{0}\n    classifier: {0}\n    in: {location}\n", b.id));
        if let Some(required) = b.requires {
            yaml.push_str(&format!("    requires: d-{required}\n"));
        }
    }
    yaml
}

/// Looks a built-in classifier up by id.
pub fn builtin(id: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.id == id)
}

/// Confirms a candidate of `validator` whose match ends at the end of `tail` (the bytes before it, as many as the
/// scanner kept), `next` being the byte after the match (`None` at the end of the input).
///
/// Returns the candidate's `(start, end)` offsets in `tail`, or `None` when it does not hold. `window` bounds how far
/// before the candidate the validator's own keywords (bare SSNs, national phone numbers) are looked for.
/// [`Validator::None`] has no candidate to confirm and always returns `None`: the scanner counts its matches.
pub(crate) fn confirm(validator: Validator, tail: &[u8], next: Option<u8>, window: usize) -> Option<(usize, usize)> {
    match validator {
        Validator::None => None,
        Validator::CreditCard => card::credit_card(tail, next, window),
        Validator::Luhn => luhn_run(tail),
        Validator::CardExpiry => card_expiry(tail, next),
        Validator::UsSsn => us_ssn(tail, next, window),
        Validator::Iban => iban(tail, next, true),
        Validator::Mod97 => iban(tail, next, false),
        Validator::Email => email(tail, next),
        Validator::Phone => phone(tail, window),
        Validator::Ipv4 => ipv4(tail),
        Validator::Ipv6 => ipv6(tail, next),
        Validator::Jwt => jwt(tail),
    }
}

/// Classifiers whose pattern finds where a token *starts*: the scanner then follows the token byte by byte (a
/// [`Track`]) and confirms it where it ends. Their bodies are long or unbounded (`sk_live_` and 24+ characters, an
/// IBAN's 11–30), and a counted repetition over letters and digits in the shared DFA multiplies its size by every
/// other pattern's states; a short start pattern does not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Track {
    /// `iban`: letters and digits, single spaces or dashes between groups.
    Iban,
    /// `email`: from the `@`, domain characters and dots.
    Email,
    /// `ipv6`: hex digits and colons.
    Ipv6,
    /// `aws_access_key_id`: `AKIA`/`ASIA` and 16 upper-case letters or digits.
    AwsAccessKeyId,
    /// `github_token`: `gh?_` and 36 letters or digits, or `github_pat_` and 82.
    GithubToken,
    /// `slack_token`: `xox?-` and dash-separated letters and digits.
    SlackToken,
    /// `stripe_secret_key`: `sk_live_`, `rk_live_`, `sk_test_` or `rk_test_` and 24+ letters or digits.
    StripeSecretKey,
    /// `private_key`: a PEM header line, `-----BEGIN (RSA |EC |...)PRIVATE KEY-----`.
    PrivateKey,
}

impl Track {
    /// The tracked classifier with this id, if it is one.
    pub fn for_id(id: &str) -> Option<Track> {
        Some(match id {
            "iban" => Track::Iban,
            "email" => Track::Email,
            "ipv6" => Track::Ipv6,
            "aws_access_key_id" => Track::AwsAccessKeyId,
            "github_token" => Track::GithubToken,
            "slack_token" => Track::SlackToken,
            "stripe_secret_key" => Track::StripeSecretKey,
            "private_key" => Track::PrivateKey,
            _ => return None,
        })
    }

    /// Whether `b` continues the token.
    #[inline]
    pub(crate) fn continues(self, b: u8) -> bool {
        match self {
            Track::Iban => b.is_ascii_alphanumeric() || b == b'-',
            Track::Email => is_domain_char(b) || b == b'.',
            Track::Ipv6 => b.is_ascii_hexdigit() || b == b':',
            Track::AwsAccessKeyId => b.is_ascii_uppercase() || b.is_ascii_digit(),
            Track::GithubToken | Track::StripeSecretKey => b.is_ascii_alphanumeric() || b == b'_',
            Track::SlackToken => b.is_ascii_alphanumeric() || b == b'-',
            Track::PrivateKey => b.is_ascii_uppercase() || b == b' ' || b == b'-',
        }
    }

    /// Whether a single space continues the token (an IBAN printed in groups of four).
    pub(crate) fn spaced(self) -> bool {
        self == Track::Iban
    }

    /// Bytes after the start pattern past which the token cannot be one (tracking stops).
    pub(crate) fn max_span(self) -> u64 {
        match self {
            Track::Iban => 48,
            Track::Ipv6 => 40,
            Track::AwsAccessKeyId => 20,
            Track::GithubToken => 96,
            Track::PrivateKey => 48,
            Track::Email | Track::SlackToken | Track::StripeSecretKey => 256,
        }
    }

    /// Confirms the token that ends the tail (`next`: the byte that ended it).
    pub(crate) fn confirm(self, tail: &[u8], next: Option<u8>) -> Option<(usize, usize)> {
        match self {
            Track::Iban => iban(tail, next, true),
            Track::Email => email(tail, next),
            Track::Ipv6 => ipv6(tail, next),
            Track::AwsAccessKeyId | Track::GithubToken | Track::SlackToken | Track::StripeSecretKey => {
                secret(self, tail, next)
            }
            Track::PrivateKey => private_key(tail),
        }
    }
}

fn is_word(b: Option<u8>) -> bool {
    b.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A secret token: the run of its characters that ends the tail, with the right prefix and length, standing alone.
fn secret(track: Track, tail: &[u8], next: Option<u8>) -> Option<(usize, usize)> {
    let end = tail.len();
    let mut start = end;
    while before(tail, start).is_some_and(|b| track.continues(b)) {
        start -= 1;
        if end - start > 255 {
            return None;
        }
    }
    if is_word(before(tail, start)) || is_word(next) {
        return None;
    }
    let token = tail.get(start..end)?;
    let body = |prefix: usize| token.get(prefix..).unwrap_or(&[]);
    let ok = match track {
        Track::AwsAccessKeyId => token.len() == 20 && (token.starts_with(b"AKIA") || token.starts_with(b"ASIA")),
        Track::GithubToken => {
            let classic = token.len() == 40
                && token.starts_with(b"gh")
                && matches!(token.get(2), Some(b'p' | b'o' | b'u' | b's' | b'r'))
                && token.get(3) == Some(&b'_')
                && body(4).iter().all(u8::is_ascii_alphanumeric);
            classic || (token.len() == 93 && token.starts_with(b"github_pat_"))
        }
        Track::SlackToken => {
            let dashes = token.iter().filter(|b| **b == b'-').count();
            token.starts_with(b"xox") && token.get(4) == Some(&b'-') && dashes >= 2 && (15..=255).contains(&token.len())
        }
        Track::StripeSecretKey => {
            let prefixed = [b"sk_live_", b"rk_live_", b"sk_test_", b"rk_test_"].iter().any(|p| token.starts_with(*p));
            prefixed && token.len() >= 32 && body(8).iter().all(u8::is_ascii_alphanumeric)
        }
        Track::Iban | Track::Email | Track::Ipv6 | Track::PrivateKey => false,
    };
    ok.then_some((start, end))
}

/// `-----BEGIN [RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP ]PRIVATE KEY[ BLOCK]-----` ending the tail.
fn private_key(tail: &[u8]) -> Option<(usize, usize)> {
    let end = tail.len();
    let mut start = end;
    while before(tail, start).is_some_and(|b| Track::PrivateKey.continues(b)) && end - start < 48 {
        start -= 1;
    }
    let line = tail.get(start..end)?;
    let inner = line.strip_prefix(b"-----BEGIN ")?.strip_suffix(b"-----")?;
    let kind = inner.strip_suffix(b"PRIVATE KEY").or_else(|| inner.strip_suffix(b"PRIVATE KEY BLOCK"))?;
    let known: [&[u8]; 7] = [b"", b"RSA ", b"EC ", b"DSA ", b"OPENSSH ", b"ENCRYPTED ", b"PGP "];
    known.contains(&kind).then_some((start, end))
}

fn at(tail: &[u8], i: usize) -> Option<u8> {
    tail.get(i).copied()
}

/// The byte before offset `i`, if any.
fn before(tail: &[u8], i: usize) -> Option<u8> {
    i.checked_sub(1).and_then(|j| at(tail, j))
}

fn is_digit(b: Option<u8>) -> bool {
    b.is_some_and(|b| b.is_ascii_digit())
}

fn is_alnum(b: Option<u8>) -> bool {
    b.is_some_and(|b| b.is_ascii_alphanumeric())
}

/// The end of the candidate once a terminator of at most `max` bytes that are not `keep` is skipped.
fn skip_terminator(tail: &[u8], max: usize, keep: impl Fn(u8) -> bool) -> usize {
    let mut end = tail.len();
    for _ in 0..max {
        match before(tail, end) {
            Some(b) if !keep(b) => end -= 1,
            _ => break,
        }
    }
    end
}

/// The `window` bytes before offset `start`.
fn window_before(tail: &[u8], start: usize, window: usize) -> &[u8] {
    let from = start.saturating_sub(window);
    tail.get(from..start).unwrap_or(&[])
}

/// A Luhn number (a custom classifier's `luhn` validator): the digits, with single space or dash separators, that
/// end the tail.
fn luhn_run(tail: &[u8]) -> Option<(usize, usize)> {
    let end = skip_terminator(tail, 3, |b| b.is_ascii_digit());
    const MAX_DIGITS: usize = 19;
    let mut digits = [0u8; MAX_DIGITS];
    let mut n = 0usize;
    let mut start = end;
    let mut i = end;
    while let Some(b) = before(tail, i) {
        if b.is_ascii_digit() {
            if n == MAX_DIGITS {
                return None; // longer than any card: a different kind of number
            }
            n += 1;
            if let Some(slot) = digits.get_mut(MAX_DIGITS - n) {
                *slot = b;
            }
            i -= 1;
            start = i;
        } else if (b == b' ' || b == b'-') && start == i && is_digit(before(tail, i - 1)) {
            i -= 1; // a separator between two digits
        } else {
            break;
        }
    }
    // A run glued to a word (`id4111...`) is an identifier.
    if n < 2 || is_alnum(before(tail, start)) {
        return None;
    }
    let digits = digits.get(MAX_DIGITS - n..)?;
    luhn::valid(core::str::from_utf8(digits).ok()?).then_some((start, end))
}

fn number(digits: &[u8], len: usize) -> u32 {
    digits.iter().take(len).fold(0, |acc, d| acc * 10 + u32::from(d.wrapping_sub(b'0')))
}

/// `MM/YY` or `MM/YYYY`, not part of a longer date (`12/05/2024`).
fn card_expiry(tail: &[u8], next: Option<u8>) -> Option<(usize, usize)> {
    if is_digit(next) || next == Some(b'/') {
        return None;
    }
    let end = tail.len();
    let year_len = if end >= 7 && at(tail, end - 5) == Some(b'/') { 4 } else { 2 };
    let start = end.checked_sub(3 + year_len)?;
    let text = tail.get(start..end)?;
    let month = number(text, 2);
    let ok = text.get(2) == Some(&b'/')
        && (1..=12).contains(&month)
        && text.iter().enumerate().all(|(i, b)| i == 2 || b.is_ascii_digit())
        && (year_len == 2 || text.get(3..5) == Some(b"20"));
    let prev = before(tail, start);
    (ok && !is_alnum(prev) && prev != Some(b'/')).then_some((start, end))
}

/// `AAA-GG-SSSS` (or with spaces or dots) under the SSA's rules; bare nine digits only after an SSN keyword.
fn us_ssn(tail: &[u8], next: Option<u8>, window: usize) -> Option<(usize, usize)> {
    // The pattern ends with the byte after the number (if any): not a letter, not a dash or dotted number going on.
    let end = skip_terminator(tail, 1, |b| b.is_ascii_digit());
    let after = at(tail, end);
    if is_alnum(after) || after == Some(b'-') || (after == Some(b'.') && is_digit(next)) {
        return None;
    }
    let sep_at = |i: usize| at(tail, i).filter(|b| matches!(b, b'-' | b' ' | b'.'));
    // From the end: four digits, a separator or not, two digits, a separator or not, three digits.
    let s2 = end.checked_sub(5).and_then(sep_at);
    let group_end = if s2.is_some() { end - 5 } else { end.checked_sub(4)? };
    let s1 = group_end.checked_sub(3).and_then(sep_at);
    let area_end = if s1.is_some() { group_end - 3 } else { group_end.checked_sub(2)? };
    let start = area_end.checked_sub(3)?;
    if s1 != s2 {
        return None; // `123-45 6789`: not written as an SSN
    }
    let mut digits = [0u8; 9];
    let mut n = 0;
    for b in tail.get(start..end)?.iter().filter(|b| b.is_ascii_digit()) {
        *digits.get_mut(n)? = *b;
        n += 1;
    }
    if n != 9 {
        return None;
    }
    let (area, group, serial) = (number(&digits, 3), number(digits.get(3..)?, 2), number(digits.get(5..)?, 4));
    let prev = before(tail, start);
    if is_alnum(prev) || matches!(prev, Some(b'-' | b'.' | b'+' | b'/')) {
        return None;
    }
    if area == 0 || area == 666 || area >= 900 || group == 0 || serial == 0 {
        return None;
    }
    if s1.is_none() && !has_keyword(window_before(tail, start, window), SSN_CONTEXT.iter().map(|k| k.as_bytes())) {
        return None;
    }
    // A dotted triple under a version key (`version 512.44.7321`) is a version.
    if s1 == Some(b'.') && label_has(label_before(tail, start), VERSION_WORDS) {
        return None;
    }
    Some((start, end))
}

fn is_domain_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

/// Two or more letters, or an internationalised TLD in punycode (`xn--` and letters, digits or dashes).
fn is_tld(tld: &[u8]) -> bool {
    let letters = tld.len() >= 2 && tld.iter().all(u8::is_ascii_alphabetic);
    let punycode = tld.len() > 4
        && tld.get(..4).is_some_and(|p| p.eq_ignore_ascii_case(b"xn--"))
        && tld.iter().all(|b| is_domain_char(*b))
        && !tld.ends_with(b"-");
    letters || punycode
}

fn is_local_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

/// `local@domain.tld`: a domain of non-empty labels (punycode `xn--` ones too), a TLD of two or more letters or an
/// internationalised one in punycode (`xn--p1ai`), a local part of 1–64 characters.
fn email(tail: &[u8], next: Option<u8>) -> Option<(usize, usize)> {
    if next.is_some_and(is_domain_char) {
        return None; // the TLD goes on
    }
    // A sentence may end right after the address: `write to a@b.com.`
    let mut end = tail.len();
    while before(tail, end) == Some(b'.') {
        end -= 1;
    }
    let mut i = end;
    let mut label_len = 0usize;
    let mut labels = 0usize;
    let mut tld_ok = false;
    // The domain, right to left, up to the `@`.
    loop {
        match before(tail, i)? {
            b'@' => break,
            b'.' => {
                if label_len == 0 || end - i > 253 {
                    return None;
                }
                if labels == 0 {
                    tld_ok = tail.get(i..end).is_some_and(is_tld);
                }
                labels += 1;
                label_len = 0;
            }
            b if is_domain_char(b) => label_len += 1,
            _ => return None,
        }
        i -= 1;
    }
    if label_len == 0 || labels == 0 || !tld_ok {
        return None;
    }
    let at_sign = i - 1;
    let mut start = at_sign;
    while let Some(b) = before(tail, start) {
        if !is_local_char(b) || at_sign - start >= 64 {
            break;
        }
        start -= 1;
    }
    // A local part does not start with a dot (`see.a@b.com` is fine, `..a@b.com` starts at `a`).
    while at(tail, start) == Some(b'.') {
        start += 1;
    }
    (start < at_sign && !before(tail, start).is_some_and(is_local_char)).then_some((start, end))
}

fn is_phone_sep(b: u8) -> bool {
    matches!(b, b' ' | b'.' | b'-' | b'(' | b')')
}

/// E.164 (`+` and 8–15 digits) anywhere; national forms (7–15 digits) only after a phone keyword and not under an
/// identifier's key.
fn phone(tail: &[u8], window: usize) -> Option<(usize, usize)> {
    let end = skip_terminator(tail, 3, |b| b.is_ascii_digit());
    let mut i = end;
    let mut start = end;
    let mut digits = 0usize;
    let mut seps = 0usize;
    while let Some(b) = before(tail, i) {
        if b.is_ascii_digit() {
            digits += 1;
            seps = 0;
            i -= 1;
            start = i;
        } else if is_phone_sep(b) && seps < 2 {
            seps += 1;
            i -= 1;
        } else {
            break;
        }
        if end - i > 40 {
            return None;
        }
    }
    // Every form needs 7–15 digits (8–15 when international, checked below): most number ends stop here.
    if !(7..=15).contains(&digits) {
        return None;
    }
    // An opening parenthesis right before the first digit belongs to the number: `(555) 123-4567`.
    if before(tail, start) == Some(b'(') {
        start -= 1;
    }
    let plus = before(tail, start) == Some(b'+');
    if plus {
        start -= 1;
    }
    let text = tail.get(start..end)?;
    let prev = before(tail, start);
    if is_alnum(prev) || matches!(prev, Some(b'.' | b'-' | b'/' | b':' | b'_')) {
        return None;
    }
    let opens = text.iter().filter(|b| **b == b'(').count();
    let closes = text.iter().filter(|b| **b == b')').count();
    if opens != closes || opens > 1 {
        return None;
    }
    if looks_like_ipv4_or_date(text) {
        return None;
    }
    let international = plus || text.starts_with(b"00");
    let enough = if international { (8..=15).contains(&digits) } else { (7..=15).contains(&digits) };
    if !enough {
        return None;
    }
    if !plus {
        // A national number needs a phone word nearby, and is an identifier, time or count under such a key
        // (`message_id`, `contact_id`, `sent_at`), whatever words are near.
        if label_has(label_before(tail, start), NUMBER_WORDS) {
            return None;
        }
        // A phone word inside an identifier's key (`message_ids`, `contact_id`) is not context either.
        let near = window_before(tail, start, window);
        let keywords = PHONE_CONTEXT.iter().map(|k| k.as_bytes());
        if !context::has_keyword_where(near, keywords, |word| !label_has(word, NUMBER_WORDS)) {
            return None;
        }
    }
    Some((start, end))
}

/// Four dot-separated groups of 1–3 digits, or `YYYY-MM-DD` / `DD.MM.YYYY` shapes: numbers, not phone numbers.
fn looks_like_ipv4_or_date(text: &[u8]) -> bool {
    let groups = || text.split(|b| !b.is_ascii_digit());
    let lens: [usize; 4] = {
        let mut lens = [0usize; 4];
        let mut n = 0;
        for g in groups() {
            if let Some(slot) = lens.get_mut(n) {
                *slot = g.len();
            }
            n += 1;
        }
        if n != 4 && n != 3 {
            return false;
        }
        lens
    };
    let dots = text.iter().filter(|b| **b == b'.').count();
    let dashes = text.iter().filter(|b| **b == b'-').count();
    let ipv4 = dots == 3 && text.len() == dots + lens.iter().sum::<usize>() && lens.iter().all(|l| (1..=3).contains(l));
    let date = (dots == 2 || dashes == 2) && matches!(lens, [4, 2, 2, 0] | [2, 2, 4, 0]) && text.len() == 10;
    ipv4 || date
}

/// Four decimal octets 0–255 without leading zeros, not part of a longer dotted number (`1.2.3.4.5`) or a word, nor
/// in a version's place.
fn ipv4(tail: &[u8]) -> Option<(usize, usize)> {
    let end = skip_terminator(tail, 3, |b| b.is_ascii_digit());
    let mut start = end;
    while let Some(b) = before(tail, start) {
        if !(b.is_ascii_digit() || b == b'.') || end - start > 16 {
            break;
        }
        start -= 1;
    }
    if is_alnum(before(tail, start)) {
        return None;
    }
    let text = tail.get(start..end)?;
    let mut octets = 0;
    for group in text.split(|b| *b == b'.') {
        octets += 1;
        let value = number(group, 3);
        if group.is_empty() || group.len() > 3 || value > 255 || (group.len() > 1 && group.first() == Some(&b'0')) {
            return None;
        }
    }
    if octets != 4 {
        return None;
    }
    // A dotted quad in a version's place is a version: under a version key (`app_version`, `rv:`, `build`) or after
    // a product token (`Firefox/`).
    if label_has(label_before(tail, start), VERSION_WORDS) || after_product(tail, start) {
        return None;
    }
    Some((start, end))
}

/// Whether `start` follows `Product/` as in a `User-Agent` (`Gecko/`, `okhttp/`): a token with a letter that starts
/// the value or follows a space, quote, `(`, `,`, `;` or `=`, and does not name an address (`hosts/10.0.0.8` is a
/// path). A URL's host (`http://10.0.0.1`) and path segments (`/api/10.0.0.1`) are not products.
fn after_product(tail: &[u8], start: usize) -> bool {
    if before(tail, start) != Some(b'/') {
        return false;
    }
    let end = start - 1;
    let mut from = end;
    while before(tail, from).is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
        if end - from >= 32 {
            return false;
        }
        from -= 1;
    }
    let token = tail.get(from..end).unwrap_or(&[]);
    let opens = before(tail, from).is_none_or(|b| matches!(b, b' ' | b'"' | b'\'' | b'(' | b',' | b';' | b'=' | b'\t'));
    opens && token.iter().any(u8::is_ascii_alphabetic) && !label_has(token, ADDRESS_WORDS)
}

/// An IPv6 address in its textual form, as the standard library parses it (no embedded IPv4).
fn ipv6(tail: &[u8], next: Option<u8>) -> Option<(usize, usize)> {
    // An embedded IPv4 (`::ffff:1.2.3.4`) or a longer word is not read.
    if is_alnum(next) || matches!(next, Some(b'.' | b'_')) {
        return None;
    }
    let end = tail.len();
    let mut start = end;
    while let Some(b) = before(tail, start) {
        if !(b.is_ascii_hexdigit() || b == b':') {
            break;
        }
        if end - start >= 39 {
            return None;
        }
        start -= 1;
    }
    let prev = before(tail, start);
    if is_alnum(prev) || matches!(prev, Some(b'.' | b'_')) {
        return None;
    }
    let text = core::str::from_utf8(tail.get(start..end)?).ok()?;
    let hex_digits = text.bytes().filter(u8::is_ascii_hexdigit).count();
    // `a::b` in code or `::` alone are not addresses worth reporting; `::1` and `fe80::1` are.
    let plausible = hex_digits >= 4 || text.starts_with("::");
    (plausible && text.parse::<std::net::Ipv6Addr>().is_ok()).then_some((start, end))
}

/// Decodes base64url (no padding) into `out`; `None` when a character is not base64url or `out` is too small.
fn base64url_decode<'o>(text: &[u8], out: &'o mut [u8]) -> Option<&'o [u8]> {
    if text.len() % 4 == 1 {
        return None;
    }
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    let mut n = 0usize;
    for b in text {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            *out.get_mut(n)? = u8::try_from((acc >> bits) & 0xff).ok()?;
            n += 1;
        }
    }
    out.get(..n)
}

fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// A JWT (JWS or JWE compact form): a header segment that decodes to a JSON object naming `"alg"`, followed by a
/// payload segment that starts as a JSON object (`eyJ` is base64url for `{"`).
fn jwt(tail: &[u8]) -> Option<(usize, usize)> {
    let end = tail.len();
    let dot = end.checked_sub(4)?; // `.eyJ` ends the match
    let mut start = dot;
    while before(tail, start).is_some_and(is_b64url) {
        start -= 1;
    }
    if start == 0 && tail.len() >= usize::from(crate::bundle::MAX_CLASSIFIER_MATCH) {
        return None; // the header went on past what the scanner keeps
    }
    let header = tail.get(start..dot)?;
    if !header.starts_with(b"eyJ") || before(tail, start) == Some(b'.') {
        return None;
    }
    let mut decoded = [0u8; 192];
    let json = base64url_decode(header, &mut decoded)?;
    let object = json.first() == Some(&b'{') && json.windows(5).any(|w| w == b"\"alg\"");
    object.then_some((start, end))
}

#[cfg(test)]
mod tests;
