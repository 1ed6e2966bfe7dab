//! LDAP injection: filter metacharacters that close the application's search filter component and open new ones
//! (`*)(uid=*))(|(uid=*`), turning a lookup of one user into a match of every entry or a password probe.
//!
//! A hand-written lexer (no regex, no allocation, linear) turns the value with evasions undone and lower-cased into
//! filter symbols: `(`, `)`, `*`, `|`, `&`, `!`, the match operators (`=`, `~=`, `>=`, `<=`, `:=`), attribute names
//! (known ones from a static table of common directory attributes: `cn`, `uid`, `mail`, `objectclass`,
//! `userpassword`, `samaccountname`…), whitespace and other text. LDAP's own hex escapes of metacharacters (`\2a`,
//! `\28`, `\29`, `\7c`, `\26`, `\00`) are read as the character they stand for, since an application that unescapes
//! before building its filter turns them back into syntax. Detection looks at the last few symbols, which must touch
//! (whitespace breaks a pattern: LDAP filters have none between components). Every pattern holds a `(`, `)` or `*`,
//! so only the runs of non-whitespace around those bytes are lexed (memchr finds them).
//!
//! What each level reports:
//! - **Low**: a component closed and another opened: `)(` followed by an operator (`)(|`, `)(&`, `)(!`) or a known
//!   attribute and a match operator (`)(uid=`); an operator opening a new component on a known attribute
//!   (`(|(mail=`, `(&(objectclass=`, `((|userpassword=`).
//! - **Medium** (recommended) adds the same shapes on any attribute name (`)(x=`, `|(x=`), a wildcard value closing
//!   its component and opening or closing another (`admin*)(`, `*))`, but not the `.*)` of a regular expression), a
//!   `)` followed by a NUL or `%00` (truncating the rest of the filter), a wildcard match on a known attribute
//!   (`(cn=*`), and operators right after a component, a wildcard or another parenthesis (`()|`, `*(|`, `((|`).
//! - **High** adds weak signals: `)(` anywhere, a word followed by a wildcard that ends the value or a component
//!   (`admin*`, `adm*)`), LDAP hex escapes of metacharacters, and values made only of metacharacters (a lone `*`,
//!   `()`, `*|`, `!`).
//!
//! A lone `*`, `()` or parenthesis in prose, and `a=b` expressions, are benign at Low and Medium.

use super::{ByteSet, Level, Sensitivity, Subject};

/// Whether `subject` carries an LDAP injection at `sensitivity`.
pub fn detect(subject: &Subject<'_>, sensitivity: Sensitivity) -> bool {
    // Each part needs a byte the byte set says whether the value holds, without a scan: the filter scan a
    // parenthesis, `*` or `\\`; the truncation a `)` (in `raw`, which is the decoded value itself when nothing needed
    // decoding); the metacharacters-only value one of them.
    let bytes = subject.bytes;
    let mut level = if bytes.any_of(ByteSet::bytes(b"()*\\")) { scan(subject.lower) } else { Level::None };
    if !level.fires(sensitivity) {
        if !std::ptr::eq(subject.raw, subject.decoded) || bytes.has(b')') {
            level = level.max(truncation(subject.raw));
        }
        if bytes.any_of(ByteSet::bytes(b"*()|&!")) {
            level = level.max(only_metacharacters(subject.lower));
        }
    }
    level.fires(sensitivity)
}

/// One symbol of an LDAP filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Symbol {
    /// `(`
    Open,
    /// `)`
    Close,
    /// `*`
    Star,
    /// `|`, `&` or `!`: the filter operators.
    Operator,
    /// `=`, `~=`, `>=`, `<=`, `:=`
    Match,
    /// An attribute name (or any word); `known` if it is in [`ATTRIBUTES`] and a match operator follows it.
    Attribute { known: bool },
    /// A NUL (written as the `\00` escape: the normaliser removes real NULs).
    Nul,
    /// Whitespace.
    Space,
    /// The start of the value (where the application's filter text precedes it).
    Start,
    /// The end of the value (where the application's filter text follows it).
    End,
    /// Anything else.
    Other,
}

/// Attributes common in directory schemas (inetOrgPerson, posixAccount, Active Directory), lower case.
const ATTRIBUTES: [&[u8]; 58] = [
    b"cn",
    b"sn",
    b"uid",
    b"mail",
    b"objectclass",
    b"userpassword",
    b"password",
    b"givenname",
    b"gn",
    b"surname",
    b"commonname",
    b"ou",
    b"o",
    b"dc",
    b"c",
    b"l",
    b"st",
    b"co",
    b"street",
    b"postalcode",
    b"telephonenumber",
    b"mobile",
    b"homephone",
    b"pager",
    b"facsimiletelephonenumber",
    b"member",
    b"memberof",
    b"uniquemember",
    b"samaccountname",
    b"userprincipalname",
    b"displayname",
    b"description",
    b"title",
    b"department",
    b"manager",
    b"employeeid",
    b"employeenumber",
    b"homedirectory",
    b"loginshell",
    b"uidnumber",
    b"gidnumber",
    b"name",
    b"username",
    b"id",
    b"owner",
    b"jpegphoto",
    b"objectcategory",
    b"distinguishedname",
    b"dn",
    b"useraccountcontrol",
    b"serviceprincipalname",
    b"admincount",
    b"gecos",
    b"initials",
    b"seealso",
    b"userid",
    b"unicodepwd",
    b"email",
];

/// The strongest pattern in `text`. Every pattern holds a `(`, `)` or `*` (or an escape of one) and no whitespace,
/// so only the runs of non-whitespace around those bytes are lexed; memchr finds them, and prose costs little more.
fn scan(text: &[u8]) -> Level {
    let mut level = Level::None;
    let mut from = 0;
    let mut backslash = memchr::memchr(b'\\', text);
    while from < text.len() {
        let rest = text.get(from..).unwrap_or_default();
        let paren = memchr::memchr3(b'(', b')', b'*', rest).map(|p| from + p);
        if backslash.is_some_and(|b| b < from) {
            backslash = memchr::memchr(b'\\', rest).map(|p| from + p);
        }
        let Some(at) = paren.into_iter().chain(backslash).min() else {
            break;
        };
        let start =
            text.get(from..at).unwrap_or_default().iter().rposition(|&b| is_space(b)).map_or(from, |p| from + p + 1);
        let end = text.get(at..).unwrap_or_default().iter().position(|&b| is_space(b)).map_or(text.len(), |p| at + p);
        level = level.max(run(text, start, end));
        if level == Level::Low {
            break;
        }
        from = end.max(at + 1);
    }
    level
}

/// Lexes the run of non-whitespace `start..end` of `text` into filter symbols and returns the strongest pattern
/// among the last few.
fn run(text: &[u8], start: usize, end: usize) -> Level {
    let mut level = Level::None;
    // The last four symbols, newest last; what is before the run is whitespace or the start of the value.
    let mut w = [if start == 0 { Symbol::Start } else { Symbol::Space }; 4];
    let run = text.get(..end).unwrap_or_default();
    let mut i = start;
    while i < run.len() {
        let (symbol, next, escaped) = lex(run, i);
        if escaped && symbol != Symbol::Other {
            level = level.max(Level::High);
        }
        i = next.max(i + 1);
        w = [w[1], w[2], w[3], symbol];
        level = level.max(pattern(w));
        if level == Level::Low {
            return level;
        }
    }
    if end == text.len() {
        level = level.max(pattern([w[1], w[2], w[3], Symbol::End]));
    }
    level
}

/// Whether `b` separates runs (and is the lexer's whitespace).
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// The strongest pattern ending with the newest symbol of `w`.
fn pattern(w: [Symbol; 4]) -> Level {
    use Symbol::{Attribute, Close, End, Match, Nul, Open, Operator, Star, Start};
    match w {
        // `)(attr=`, `(|(attr=`, `|(attr=`, and `(|attr=` as a truncated filter writes it
        [Close | Operator, Open, Attribute { known }, Match] | [Open, Operator, Attribute { known }, Match] => {
            if known {
                Level::Low
            } else {
                Level::Medium
            }
        }
        // `)(|`
        [_, Close, Open, Operator] => Level::Low,
        // A wildcard value closing its component and opening or closing another (`*)(`, `*))`): not after a `.` or
        // a `\` (`(.*)(`, `(.*))` are regular expressions).
        [Attribute { .. } | Match | Start, Star, Close, Open | Close] => Level::Medium,
        // `)` NUL, `(cn=*`, `()|`, `*(|`, `((|`
        [_, _, Close, Nul] | [Open, Attribute { known: true }, Match, Star] => Level::Medium,
        [_, Open, Close, Operator] | [_, Star | Open, Open, Operator] => Level::Medium,
        // `)(`; `word*` ending the value or a component (not `**bold**`)
        [_, _, Close, Open] | [_, Attribute { .. }, Star, End | Close | Open | Operator] => Level::High,
        _ => Level::None,
    }
}

/// The symbol at `i`, where the next one starts, and whether it was written as an LDAP hex escape.
fn lex(text: &[u8], i: usize) -> (Symbol, usize, bool) {
    let Some(&c) = text.get(i) else {
        return (Symbol::Other, i + 1, false);
    };
    let simple = |s| (s, i + 1, false);
    match c {
        b'(' => simple(Symbol::Open),
        b')' => simple(Symbol::Close),
        b'*' => simple(Symbol::Star),
        b'|' | b'&' | b'!' => simple(Symbol::Operator),
        b'=' => simple(Symbol::Match),
        b'~' | b'>' | b'<' | b':' if text.get(i + 1) == Some(&b'=') => (Symbol::Match, i + 2, false),
        b'\\' => match (text.get(i + 1).and_then(|&h| hex(h)), text.get(i + 2).and_then(|&l| hex(l))) {
            (Some(h), Some(l)) => {
                let symbol = match h * 16 + l {
                    0x28 => Symbol::Open,
                    0x29 => Symbol::Close,
                    0x2a => Symbol::Star,
                    0x7c | 0x26 | 0x21 => Symbol::Operator,
                    0x3d => Symbol::Match,
                    0x00 => Symbol::Nul,
                    _ => Symbol::Other,
                };
                (symbol, i + 3, true)
            }
            _ => simple(Symbol::Other),
        },
        b' ' | b'\t' | b'\r' | b'\n' => simple(Symbol::Space),
        _ if c.is_ascii_alphanumeric() => {
            let mut end = i;
            while text.get(end).is_some_and(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b';')) {
                end += 1;
            }
            // Extensible matches (`attr:1.2.840.113556.1.4.803:=`) keep the rule in the name.
            while text.get(end) == Some(&b':') && text.get(end + 1) != Some(&b'=') {
                end += 1;
                while text.get(end).is_some_and(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.')) {
                    end += 1;
                }
            }
            let word = text.get(i..end).unwrap_or_default();
            let base = word.split(|&b| b == b';' || b == b':').next().unwrap_or_default();
            // Only a name followed by a match operator is looked up: the table is never searched for prose.
            let operator_follows = matches!(text.get(end), Some(b'=' | b'~' | b'<' | b'>' | b':'));
            (Symbol::Attribute { known: operator_follows && ATTRIBUTES.contains(&base) }, end, false)
        }
        _ => simple(Symbol::Other),
    }
}

/// The value of a hex digit.
fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// A `)` followed by a NUL or a still-encoded `%00` in the value as the application reads it: the rest of the filter
/// is cut off.
fn truncation(raw: &[u8]) -> Level {
    for at in memchr::memchr_iter(b')', raw) {
        let rest = raw.get(at + 1..).unwrap_or_default();
        if rest.first() == Some(&0) || rest.starts_with(b"%00") {
            return Level::Medium;
        }
    }
    Level::None
}

/// A value made only of filter metacharacters (and the `/`, `@`, `\` that probes pad them with).
fn only_metacharacters(text: &[u8]) -> Level {
    let text = text.trim_ascii();
    let meta = |b: &u8| matches!(b, b'*' | b'(' | b')' | b'|' | b'&' | b'!');
    let all = text.iter().all(|b| meta(b) || matches!(b, b'=' | b'/' | b'@' | b'\\' | b' '));
    if !text.is_empty() && all && text.iter().any(meta) {
        Level::High
    } else {
        Level::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attacks::Place;

    /// The lowest sensitivity at which `text` is reported, if any.
    fn level(text: &str) -> Option<Sensitivity> {
        let lower = text.to_ascii_lowercase();
        let subject = Subject::plain(text.as_bytes(), lower.as_bytes(), Place::Query);
        [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High].into_iter().find(|s| detect(&subject, *s))
    }

    #[test]
    fn new_components_are_unmistakable() {
        for text in [
            "jdoe)(|(password=*))",
            "*)(objectClass=*",
            "x)(&",
            "bob)(!(cn=bob)",
            "*)(sAMAccountName=admin",
            "a*)((|userPassword=*)",
            "*(|(givenName=*))",
            "j*)(memberOf=cn=admins,dc=example,dc=org",
            "x)(userAccountControl:1.2.840.113556.1.4.803:=2)",
            "x\\29\\28uid=*",
        ] {
            assert_eq!(level(text), Some(Sensitivity::Low), "{text}");
        }
    }

    #[test]
    fn weaker_shapes_are_medium() {
        for text in
            ["x)(customAttr=1", "|(nickname=*)", "admin*))", "jdoe)%00", "(cn=*)", "*()|&'", "*(&", "*))", "j*)("]
        {
            assert_eq!(level(text), Some(Sensitivity::Medium), "{text}");
        }
    }

    #[test]
    fn weak_signals_are_high() {
        for text in ["*", "()", "*|", "!", "adm*", "smile :-)(", "\\2a", "//*"] {
            assert_eq!(level(text), Some(Sensitivity::High), "{text}");
        }
    }

    #[test]
    fn prose_and_expressions_pass() {
        for text in [
            "O'Brien (sales) & marketing",
            "rated 5* (excellent)",
            "1) a-b=c",
            "f(x) = (a|b) & !c",
            "price >= 10 (incl. tax)",
            "see (a) (b=c)",
            "R&D (&c)",
            "footnote* applies",
            "**bold** text",
            "The parameter 5 is&|.",
            "/",
            "not doc(cfg(.*))",
            "^(.*)(-v[0-9]+)$",
        ] {
            assert_eq!(level(text).filter(|s| *s != Sensitivity::High), None, "{text}");
        }
    }

    #[test]
    fn linear_on_long_runs() {
        for unit in [")(", "*", "\\2", "a:", "a:1.", "(", " ", ")%0"] {
            let text = unit.repeat(20_000);
            let _ = level(&text);
        }
    }

    /// Lexes every byte, as `scan` did before it learnt to skip prose.
    fn scan_every_byte(text: &[u8]) -> Level {
        let mut level = Level::None;
        let mut w = [Symbol::Start; 4];
        let mut i = 0;
        while i < text.len() {
            let (symbol, next, escaped) = lex(text, i);
            if escaped && symbol != Symbol::Other {
                level = level.max(Level::High);
            }
            i = next.max(i + 1);
            w = [w[1], w[2], w[3], symbol];
            level = level.max(pattern(w));
        }
        level.max(pattern([w[1], w[2], w[3], Symbol::End]))
    }

    #[test]
    fn skipping_prose_misses_nothing() {
        let mut rng = crate::token_analysis::test_rng::Rng(0x0bad_cafe_dead_beef);
        let mut next = move || rng.next();
        let alphabet = b"()*|&!=~:\\2a9 \tcnuid.-x";
        for _ in 0..20_000 {
            let text: Vec<u8> = (0..next() % 24).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]).collect();
            let expected = scan_every_byte(&text);
            // The whole-value lexer may go on past Low; both agree on the strongest level.
            assert_eq!(scan(&text), expected, "{:?}", String::from_utf8_lossy(&text));
        }
    }

    #[test]
    fn never_panics_on_any_bytes() {
        let mut rng = crate::token_analysis::test_rng::Rng(0x1234_5678_9abc_def1);
        let mut next = move || rng.next();
        let seeds: [&[u8]; 3] = [b"*)(uid=*))(|(uid=*", b"x\\2a\\28cn:1.2:=)%00", b""];
        for round in 0..4_000 {
            let mut bytes = seeds[round % seeds.len()].to_vec();
            for _ in 0..(next() % 8) {
                let r = next();
                let pick = b"()*|&!=\\:;%0a \xff"[(r as usize >> 8) % 15];
                match r % 3 {
                    0 if !bytes.is_empty() => {
                        let i = (r as usize >> 16) % bytes.len();
                        bytes[i] = pick;
                    }
                    1 => bytes.insert((r as usize >> 16) % (bytes.len() + 1), pick),
                    _ => bytes.truncate((r as usize >> 16) % (bytes.len() + 1)),
                }
            }
            if round % 5 == 0 {
                bytes = (0..next() % 64).map(|_| next() as u8).collect();
            }
            let lower = bytes.to_ascii_lowercase();
            for sensitivity in [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High] {
                let _ = detect(&Subject::plain(&bytes, &lower, Place::Query), sensitivity);
            }
        }
    }
}
