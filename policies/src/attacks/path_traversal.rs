//! Path traversal: `../` climbing out of a directory in any spelling, and well-known system files as targets.
//!
//! # How a value is read
//!
//! One pass splits the value into path components at every separator: `/`, `\`, their Unicode look-alikes
//! (division slash, set minus, fullwidth solidus and reverse solidus, and two private-use forms that IIS folded to
//! a slash) and the `0x2f` / `0x5c` spellings. A component made only of dots (`.`, fullwidth `．`, one-dot leader,
//! `0x2e`) is a **climb** when it has two dots (`..`), or more followed by a separator (`....//`, which a filter
//! that strips `../` once turns back into `../`), optionally with Tomcat's `;params` (`..;/`). Percent-encoding,
//! `%uXXXX`, overlong UTF-8 and fullwidth forms are already undone in the subject's `decoded`; the detector reads
//! both that and the value as the application got it (`raw`), so a decoding that destroys a form (a backslash
//! taken for an escape) cannot hide it.
//!
//! At each component start the value is matched against a static table of **targets** (see the lexicon): secrets
//! (`etc/passwd`, `etc/shadow`, `proc/self/`, `win.ini`, `boot.ini`, `windows/system32/`, `WEB-INF/`, `.ssh/`,
//! `id_rsa`, `.htpasswd`…), system roots (`/etc/`, `/proc/`, `/var/log`, `C:\Windows\`, `/usr/local/`…) and
//! configuration and log files (`httpd.conf`, `php.ini`, `.htaccess`, `web.config`, `access.log`…).
//!
//! # What each level reports
//! - **Low**: three or more climbs; two climbs with the first at the start of the value (`../../x`); any climb in
//!   an evasive spelling (`....//`, `..;/`, a look-alike or `0x` slash or dot, mixed `/` and `\`); a climb toward
//!   any target (`../config/web.xml`); a secret in an absolute path or as a whole value (`/etc/passwd`,
//!   `C:\boot.ini`, `etc/shadow`); a Windows UNC path to an administrative share (`\\host\c$\`).
//! - **Medium** (recommended) adds: any two climbs (`a/../../b`); one climb at the start of the value
//!   (`../avatar.png` — the request names a file outside the directory the endpoint serves); a secret anywhere in
//!   the value; an absolute path inside a system directory (`/etc/hosts.allow`, `/proc/net/tcp`, `/var/log/syslog`,
//!   `C:\Windows\notepad.exe`); a UNC path `\\host\share`.
//! - **High** adds: any climb (`docs/../index.html`, a trailing `/..`), any target anywhere, and absolute paths
//!   under the other system roots (`/usr/local/bin`, `/var/www/html`, `/tmp/x`): file managers and deployment tools
//!   name those legitimately; `file_inclusion` reports them at Medium.
//!
//! A single `../` inside a relative path (`images/../logo.png`) is left to High: links in rich text and build
//! tools produce it, and it climbs back inside the same tree.
//!
//! Linear in the value's length; no allocation.

use super::command::lexicon::{dot_len, has_at, is_word, lc, sep_len, target, target_at, target_possible};
use super::{Sensitivity, Subject};

/// What one pass over a value found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Scan {
    /// Climbs (`..` components), capped at 255.
    pub climbs: u8,
    /// Whether the first component of the value is a climb.
    pub climb_at_start: bool,
    /// Whether a climb was spelled evasively.
    pub evasive: bool,
    /// The heaviest target reached after a climb.
    pub after_climb: u8,
    /// The heaviest target at the root of an absolute path or as the first component of the value (a secret
    /// anywhere in an absolute path counts too).
    pub rooted: u8,
    /// The heaviest target anywhere.
    pub anywhere: u8,
    /// Whether the heaviest target at the root of an absolute path was followed by more path (`/etc/x`, not `/etc`).
    pub rooted_deep: bool,
    /// Whether the value holds a UNC path (`\\host\share`); 2 for an administrative share (`\\host\c$`).
    pub unc: u8,
    /// Whether an absolute path names a configuration or log file (`/var/www/conf/httpd.conf`, `C:\logs\x.log`).
    pub rooted_file: bool,
}

/// Whether `subject` carries a path traversal at `sensitivity`.
pub fn detect(subject: &Subject<'_>, sensitivity: Sensitivity) -> bool {
    if verdict(&scan(subject.lower), sensitivity) {
        return true;
    }
    subject.raw != subject.decoded && verdict(&scan(subject.raw), sensitivity)
}

/// Bytes that can start a separator, a dot, a wildcard climb or a target ([`scan`] finds nothing in a value without
/// one of them, or one of the [`SPACED_TARGETS`]): `/`, `\`, `.`, `?`, `_`, `0` (of `0x2e`, `0x2f`, `0x5c`) and
/// UTF-8 lead bytes (look-alike and overlong forms).
// Evaluated at compile time: an index out of range fails the build, it cannot panic at run time.
#[allow(clippy::indexing_slicing)]
static TRIGGER: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0xc0;
    while b < 256 {
        table[b] = true;
        b += 1;
    }
    table[b'/' as usize] = true;
    table[b'\\' as usize] = true;
    table[b'.' as usize] = true;
    table[b'?' as usize] = true;
    table[b'_' as usize] = true;
    table[b'0' as usize] = true;
    table
};

/// The targets spelled with neither a separator, a dot nor an underscore, with the offset of their first space.
const SPACED_TARGETS: [(&[u8], usize); 2] = [(b"program files", 7), (b"documents and settings", 9)];

/// Whether [`scan`] can find anything in `text`: a cheap reject, one table lookup a byte, for the many values with
/// none of the bytes a path needs (a name, a number, a word, prose without a dot).
pub(super) fn may_match(text: &[u8]) -> bool {
    let mut i = 0;
    while let Some(at) =
        text.get(i..).and_then(|rest| rest.iter().position(|&b| TRIGGER.get(usize::from(b)).copied().unwrap_or(true)))
    {
        let at = i + at;
        // A `0` only matters as the start of `0x..`.
        if lc(text, at) != b'0' || lc(text, at + 1) == b'x' {
            return true;
        }
        i = at + 1;
    }
    memchr::memchr_iter(b' ', text)
        .any(|space| SPACED_TARGETS.iter().any(|(target, offset)| has_at(text, space.wrapping_sub(*offset), target)))
}

/// The rules of each level (see the module doc) applied to one scan.
pub(super) fn verdict(s: &Scan, sensitivity: Sensitivity) -> bool {
    let low = s.climbs >= 3
        || (s.climbs >= 2 && s.climb_at_start)
        || (s.climbs >= 1 && (s.evasive || s.after_climb > 0))
        || s.rooted == target::SECRET
        || s.unc >= 2;
    let medium = low
        || s.climbs >= 2
        || s.climb_at_start
        || s.anywhere == target::SECRET
        || (s.rooted == target::SYSTEM && s.rooted_deep)
        || s.unc >= 1;
    match sensitivity {
        Sensitivity::Low => low,
        Sensitivity::Medium => medium,
        Sensitivity::High => medium || s.climbs >= 1 || s.anywhere > 0 || s.rooted > 0,
    }
}

/// One pass over `text` (any case).
pub(super) fn scan(text: &[u8]) -> Scan {
    if !may_match(text) {
        return Scan::default();
    }
    pass::<true>(text)
}

/// The pass of [`scan`]; `SKIP` skips the bytes inside a component that change nothing (a test compares both).
fn pass<const SKIP: bool>(text: &[u8]) -> Scan {
    let mut s = Scan::default();
    let n = text.len();
    let mut i = 0;
    // Whether `i` starts a path component; whether a new path may start here (start, or after a blank or quote);
    // whether the last byte was a separator; whether the current component is the first of an absolute path.
    let mut component = true;
    let mut fresh = true;
    let mut after_sep = false;
    let mut root = false;
    // Whether the component at `i` is the first of the value (blanks and quotes aside).
    let mut first = true;
    // The kind of the last separator seen in the current path (for mixed `/` and `\`).
    let mut last_sep = 0u8;
    // Whether the current path is absolute, and where its current component started.
    let mut in_rooted = false;
    let mut comp_start = 0;
    while i < n {
        if SKIP && !component {
            // Inside a component, a byte that neither separates nor ends it changes nothing: skip the run.
            let rest = text.get(i..).unwrap_or_default();
            i += rest.iter().position(|&b| !INERT.get(usize::from(b)).copied().unwrap_or(false)).unwrap_or(rest.len());
            if i >= n {
                break;
            }
        }
        if SKIP {
            // The two commonest steps of prose, taken without the full reading (which would come to the same).
            match FAST.get(usize::from(lc(text, i))).copied().unwrap_or(0) {
                // A word starts that is neither a climb, a target nor a drive.
                FAST_WORD if component && lc(text, i + 1) != b':' && !target_possible(text, i) => {
                    component = false;
                    fresh = false;
                    first = false;
                    root = false;
                    after_sep = false;
                    i += 1;
                    continue;
                }
                // A blank or punctuation mark outside an absolute path ends what came before.
                FAST_END if !in_rooted => {
                    comp_start = i + 1;
                    component = true;
                    fresh = true;
                    first = first && matches!(lc(text, i), b' ' | b'\t' | b'\'' | b'"' | b'=' | b'\n' | b'\r');
                    last_sep = 0;
                    root = false;
                    after_sep = false;
                    i += 1;
                    continue;
                }
                _ => {}
            }
        }
        let sep = sep_len(text, i);
        if sep > 0 {
            if in_rooted && !after_sep && config_file(text.get(comp_start..i).unwrap_or_default()) {
                s.rooted_file = true;
            }
            if fresh {
                in_rooted = true;
                root = true;
                if first && lc(text, i) == b'\\' && lc(text, i + 1) == b'\\' {
                    s.unc = s.unc.max(unc(text, i + 2));
                }
            } else if !after_sep {
                root = false;
            }
            let kind = lc(text, i);
            if last_sep != 0 && kind != last_sep && s.climbs > 0 {
                s.evasive = true;
            }
            last_sep = kind;
            i += sep;
            comp_start = i;
            component = true;
            fresh = false;
            after_sep = true;
            continue;
        }
        if component {
            let may_climb = CLIMB_START.get(usize::from(lc(text, i))).copied().unwrap_or(true);
            if let Some((end, evasive, junk)) = if may_climb { climb(text, i) } else { None } {
                s.climbs = s.climbs.saturating_add(1);
                s.climb_at_start |= first && (junk || sep_len(text, end) > 0);
                s.evasive |= evasive;
                i = end;
                component = junk;
                fresh = false;
                after_sep = false;
                root = false;
                first = false;
                continue;
            }
            let (weight, end) = target_at(text, i);
            if weight > 0 {
                if s.climbs > 0 {
                    s.after_climb = s.after_climb.max(weight);
                }
                if weight == target::SECRET && in_rooted {
                    s.rooted = weight;
                } else if (root || first) && weight >= s.rooted {
                    s.rooted = weight;
                    // `/etc` alone is a directory listing at most; `/etc/x` and `/var/log` name something inside.
                    s.rooted_deep = is_path_byte(lc(text, end))
                        || sep_len(text, end) > 0
                        || weight != target::ROOT
                        || lc(text, end.wrapping_sub(1)).is_ascii_alphanumeric();
                }
                s.anywhere = s.anywhere.max(weight);
                s.rooted_file |= in_rooted && weight == target::FILE;
            }
            // A drive (`C:\`) roots the path that follows it.
            if fresh && lc(text, i).is_ascii_alphabetic() && lc(text, i + 1) == b':' && sep_len(text, i + 2) > 0 {
                i += 2;
                first = false;
                continue;
            }
        }
        let b = lc(text, i);
        if is_path_byte(b) {
            component = false;
            fresh = false;
            first = false;
        } else {
            // Blanks, quotes and punctuation end a path; what follows starts a new one.
            if in_rooted && config_file(text.get(comp_start..i).unwrap_or_default()) {
                s.rooted_file = true;
            }
            in_rooted = false;
            comp_start = i + 1;
            component = true;
            fresh = true;
            first = first && matches!(b, b' ' | b'\t' | b'\'' | b'"' | b'=' | b'\n' | b'\r');
            last_sep = 0;
        }
        root = false;
        after_sep = false;
        i += 1;
    }
    if in_rooted && config_file(text.get(comp_start..).unwrap_or_default()) {
        s.rooted_file = true;
    }
    s
}

/// Whether a path component names a configuration or log file by its extension.
fn config_file(component: &[u8]) -> bool {
    [&b".conf"[..], b".cnf", b".ini", b".log", b".config", b".cfg", b"_log", b".history", b".htaccess", b".htpasswd"]
        .iter()
        .any(|ext| {
            component.len() > ext.len()
                && component.get(component.len() - ext.len()..).is_some_and(|end| end.eq_ignore_ascii_case(ext))
        })
}

/// Bytes that continue a path component (anything but separators, blanks, quotes and URL punctuation).
const fn is_path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(b, b'_' | b'.' | b'-' | b'~' | b'$' | b'+' | b'@' | b'!' | b',' | b'%' | b'*')
        || b >= 0x80
}

/// [`FAST`]: a path byte that starts no separator, dot or climb (a word's letter).
const FAST_WORD: u8 = 1;
/// [`FAST`]: a byte that ends a path and starts no separator or climb (a blank, most punctuation).
const FAST_END: u8 = 2;

/// The kind of each byte (lower-cased) for the fast steps of [`pass`]: [`FAST_WORD`], [`FAST_END`] or 0 (read fully).
// Evaluated at compile time: an index out of range fails the build, it cannot panic at run time.
#[allow(clippy::indexing_slicing, clippy::cast_possible_truncation, clippy::as_conversions)]
static FAST: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        table[b] = if byte == b'.' || byte == b'0' || byte >= 0xc0 {
            0
        } else if is_path_byte(byte) {
            FAST_WORD
        } else if byte == b'/' || byte == b'\\' || byte == b'?' {
            0
        } else {
            FAST_END
        };
        b += 1;
    }
    table
};

/// Bytes a climb can start with: a dot (`.`, `0x2e`, a look-alike or overlong form) or a `?` wildcard.
// Evaluated at compile time: an index out of range fails the build, it cannot panic at run time.
#[allow(clippy::indexing_slicing)]
static CLIMB_START: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0xc0;
    while b < 256 {
        table[b] = true;
        b += 1;
    }
    table[b'.' as usize] = true;
    table[b'?' as usize] = true;
    table[b'0' as usize] = true;
    table
};

/// Bytes (in any case) that continue a path component and cannot start a separator: inside a component,
/// [`scan`] has nothing to do on them. `0` (of `0x2f`) and UTF-8 lead bytes (look-alike slashes) are left out.
// Evaluated at compile time: an index out of range fails the build, it cannot panic at run time.
#[allow(clippy::indexing_slicing, clippy::cast_possible_truncation, clippy::as_conversions)]
static INERT: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let byte = (b as u8).to_ascii_lowercase();
        table[b] = is_path_byte(byte) && byte != b'0' && byte < 0xc0;
        b += 1;
    }
    table
};

/// A climb at `i`: a component of dots, returning where it ends, whether it is evasive, and whether it ended in an
/// undecodable escape standing for a separator (then a new component starts at the end).
fn climb(text: &[u8], i: usize) -> Option<(usize, bool, bool)> {
    let mut j = i;
    let mut dots = 0;
    let mut wildcards = 0;
    let mut evasive = false;
    while dots + wildcards < 64 {
        let len = dot_len(text, j);
        if len > 0 {
            evasive |= len > 1;
            dots += 1;
            j += len;
        } else if lc(text, j) == b'?' && wildcards < 2 {
            // Windows wildcards: `?.`, `.?` and `??` match `..`.
            wildcards += 1;
            j += 1;
        } else {
            break;
        }
    }
    if dots + wildcards < 2 || (wildcards > 0 && dots + wildcards != 2) {
        return None;
    }
    // Tomcat and Jetty drop `;params` from a segment: `..;/` and `..;jsessionid=x/` are `../`.
    if wildcards == 0 && lc(text, j) == b';' {
        evasive = true;
        while j - i < 256 && sep_len(text, j) == 0 && j < text.len() {
            j += 1;
        }
    }
    // `..2f` and `..5c`: an escape that lost its `%` on the way.
    if dots == 2 && wildcards == 0 && (has_at(text, j, b"2f") || has_at(text, j, b"5c")) {
        return Some((j + 2, true, true));
    }
    // An escape the decoder could not undo right after the dots (`..%c0%9v`, `..%bg%qf`, a stray `C0` lead byte or
    // control byte) stands for a separator a broken decoder would produce: a probe, not prose.
    if dots + wildcards == 2 && sep_len(text, j) == 0 && junk(text, j) {
        let start = j;
        while j - start < 8 && (junk(text, j) || lc(text, j).is_ascii_alphanumeric()) {
            j += 1;
        }
        return Some((j, true, true));
    }
    if wildcards > 0 {
        return (sep_len(text, j) > 0).then_some((j, true, false));
    }
    let at_sep = sep_len(text, j) > 0;
    let at_end = j >= text.len() || matches!(lc(text, j), b'?' | b'#' | b'\'' | b'"' | b' ' | b'&');
    match dots {
        2 if at_sep || at_end => Some((j, evasive || (at_sep && lc(text, j) > 0x7f) || has_at(text, j, b"0x"), false)),
        // `....//` and `...\` are climbs only before a separator; `...` ending a sentence is prose.
        3.. if at_sep => Some((j, true, false)),
        _ => None,
    }
}

/// Bytes no decoded path holds: C0/C1 lead bytes, controls, and a `%` that is not an escape.
fn junk(text: &[u8], j: usize) -> bool {
    match lc(text, j) {
        0xc0 | 0xc1 | 0x01..=0x1f => true,
        b'%' => !(lc(text, j + 1).is_ascii_hexdigit() && lc(text, j + 2).is_ascii_hexdigit()),
        _ => false,
    }
}

/// A UNC path after `\\` at `i`: 1 for `\\host\share`, 2 for an administrative share (`\\host\c$`, `admin$`).
fn unc(text: &[u8], mut i: usize) -> u8 {
    let start = i;
    while (is_word(lc(text, i)) || matches!(lc(text, i), b'.' | b'-')) && i - start < 64 {
        i += 1;
    }
    if i == start || lc(text, i) != b'\\' {
        return 0;
    }
    let share = i + 1;
    let mut j = share;
    while (is_word(lc(text, j)) || lc(text, j) == b'$') && j - share < 64 {
        j += 1;
    }
    if j == share {
        0
    } else if lc(text, j.wrapping_sub(1)) == b'$' {
        2
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attacks::Place;

    /// The lowest level that reports `text` as both raw and decoded (`None`: not even High).
    fn lowest(text: &str) -> Option<Sensitivity> {
        let lower = text.to_ascii_lowercase();
        let subject = Subject::plain(text.as_bytes(), lower.as_bytes(), Place::Query);
        [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High].into_iter().find(|&l| detect(&subject, l))
    }

    #[test]
    fn climbs_and_targets_are_unmistakable() {
        for attack in [
            "../../../etc/passwd",
            "..\\..\\..\\windows\\win.ini",
            "../../x",
            "a/../../../b",
            "..../..../etc/hosts",
            "....//....//x",
            "..;/..;/admin",
            "/..\\../etc/issue",
            "../WEB-INF/web.xml",
            "../.htaccess",
            "/etc/passwd",
            "/etc/shadow",
            "C:\\boot.ini",
            "c:/windows/win.ini",
            "etc/passwd",
            "/proc/self/environ",
            "file=/home/bob/.ssh/id_rsa",
            "\\\\10.0.0.1\\c$\\windows",
            "..\u{2215}..\u{2215}boot.ini",
            "0x2e0x2e0x2f0x2e0x2e0x2fetc",
            "\u{ff0e}\u{ff0e}/\u{ff0e}\u{ff0e}/x",
            "/var/www/../../etc/group",
            "?./?./etc/issue",
            "??\\??\\boot.ini",
            "..2f..2fetc2fpasswd",
            "..\u{1}%qf..\u{1}%qfetc",
            "..%bg%qf..%bg%qfboot.ini",
            "see /etc/passwd here",
        ] {
            assert_eq!(lowest(attack), Some(Sensitivity::Low), "{attack}");
        }
    }

    #[test]
    fn weaker_forms_wait_for_medium_or_high() {
        for attack in [
            "../avatar.png",
            "a/../../b",
            "\\\\fileserver\\public",
            "/proc/version",
            "/var/log/syslog",
            "/var/log",
            "C:\\Windows\\notepad.exe",
        ] {
            assert_eq!(lowest(attack), Some(Sensitivity::Medium), "{attack}");
        }
        for attack in
            ["images/../logo.png", "docs/..", "config/httpd.conf", "..", "/usr/local/bin", "/var/www/html/index.html"]
        {
            assert_eq!(lowest(attack), Some(Sensitivity::High), "{attack}");
        }
    }

    #[test]
    fn benign_values_pass_at_every_level() {
        for benign in [
            "wait... what?",
            "and.../or",
            "v1.2..1.4",
            "/users/42/profile",
            "https://example.com/a/b.html",
            "/home",
            "next=/dashboard",
            "2024/01/02",
            "AC/DC",
            "a...b",
            "See section 1.2.",
            "/api/v1/items?sort=id",
            "the etc. column",
            "passwd",
            "O'Brien",
        ] {
            assert_eq!(lowest(benign), None, "{benign}");
        }
    }

    #[test]
    fn raw_is_read_too() {
        // A decoder that took the backslashes for escapes leaves no climb in `decoded`; `raw` still has them.
        let raw = b"..\\..\\..\\secret";
        let decoded = b"......secret";
        let subject = Subject {
            raw,
            decoded,
            lower: decoded,
            bytes: crate::attacks::ByteSet::ALL,
            is_name: false,
            place: Place::Query,
        };
        assert!(detect(&subject, Sensitivity::Low));
    }

    #[test]
    fn long_repetitive_values_are_read_in_one_pass() {
        // Each read looks a bounded window ahead, so these finish in one pass; a quadratic reading would hang here.
        for unit in ["../", "..;", "....", "?.", "etc/", "\\\\", "0x2e", "..%", "/", "c:\\"] {
            let text = unit.repeat(16 * 1024 / unit.len());
            let lower = text.to_ascii_lowercase();
            for level in [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High] {
                let _ = detect(&Subject::plain(text.as_bytes(), lower.as_bytes(), crate::attacks::Place::Query), level);
            }
        }
    }

    #[test]
    fn shortcuts_change_nothing() {
        // The cheap reject and the skipping of inert bytes give the scan a full pass gives, on path-like noise.
        let mut rng = crate::token_analysis::test_rng::Rng(0x5eed_9a7c);
        let mut below = |n: usize| (rng.next() % n as u64) as usize;
        let pieces: [&[u8]; 26] = [
            b"/",
            b"\\",
            b".",
            b"..",
            b"?",
            b"_",
            b"0x2e",
            b"0x2f",
            b"0",
            b" ",
            b"etc",
            b"passwd",
            b"c:",
            b"\xef\xbc\x8e",
            b"\xe2\x88\x95",
            b"\xc0\xae",
            b"program files",
            b"id_rsa",
            b"httpd.conf",
            b"%",
            b";",
            b"'",
            b"abc",
            b"\x01",
            b"Documents and Settings",
            b"PROGRAM FILES",
        ];
        for _ in 0..20_000 {
            let mut text = Vec::new();
            for _ in 0..below(12) {
                text.extend_from_slice(pieces.get(below(pieces.len())).copied().unwrap_or_default());
            }
            let lower = text.to_ascii_lowercase();
            assert_eq!(scan(&lower), pass::<false>(&lower), "{:?}", String::from_utf8_lossy(&text));
            assert_eq!(scan(&text), pass::<false>(&text), "{:?}", String::from_utf8_lossy(&text));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut rng = crate::token_analysis::test_rng::Rng(0x2545_f491_4f6c_dd1d);
        let mut next = move || rng.next();
        let alphabet = b"./\\;:$0x2ecf ETCpasswd\xe2\x88\x95\xef\xbc\x8e?'\"=";
        for _ in 0..4000 {
            let len = (next() % 64) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if r % 4 == 0 {
                        r as u8
                    } else {
                        alphabet.get((r >> 8) as usize % alphabet.len()).copied().unwrap_or(b'.')
                    }
                })
                .collect();
            let lower = bytes.to_ascii_lowercase();
            for level in [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High] {
                let _ = detect(&Subject::plain(&bytes, &lower, Place::Query), level);
            }
        }
    }
}
