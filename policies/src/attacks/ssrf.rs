//! Server-side request forgery: URL-valued values aimed at the server's own network.
//!
//! Every URL in the value (`scheme://host`, `//host` at the start, `http:host` the way browsers read it) has its
//! host parsed the way URL parsers differ on it: each host after an `@` (userinfo tricks) is judged, IPv4 in every
//! notation `inet_aton` accepts (decimal `2130706433`, octal `0177.0.0.1`, hex `0x7f.1`, short `127.1`, overflowing
//! parts truncated), IPv6 with IPv4 inside (`[::ffff:127.0.0.1]`, NAT64, 6to4), and names with fullwidth, circled
//! or ideographic-dot characters folded to ASCII. A URL to a public host is benign.
//!
//! - **Low**: a value that is a URL to loopback (`127.0.0.0/8`, `::1`, `localhost`), `0.0.0.0`, link-local
//!   (`169.254.0.0/16`, `fe80::/10`) or a cloud metadata address (`169.254.169.254`, `metadata.google.internal`,
//!   `100.100.100.200`, `fd00:ec2::254`), or a path or port on such a name without a scheme (`localhost/admin`,
//!   `host.docker.internal:2375`); `gopher://` and `dict://` URLs to any host.
//! - **Medium**: such URLs anywhere in the value; URLs to private ranges (`10/8`, `172.16/12`, `192.168/16`,
//!   `100.64/10`, `fc00::/7`) and internal names (`*.internal`, `*.local`, `*.cluster.local`); `file://`,
//!   `ldap://`, `tftp://`, `jar:`, `netdoc:` URLs; a value that is a scheme-less loopback, link-local or metadata
//!   address (`169.254.169.254/latest`, `0x7f000001`, `[::1]`).
//! - **High**: also URLs to an IP literal in an unusual notation or any IPv6 literal, and scheme-less private or
//!   short-form hosts (`10.0.0.1`, `127.1`, `2130706433`).

use core::net::{Ipv4Addr, Ipv6Addr};

use super::{ByteSet, Sensitivity, Subject};

/// How far past `://` a URL's authority (userinfo and host) is read.
const MAX_AUTHORITY: usize = 128;
/// The longest host (folded) that is judged.
const MAX_HOST: usize = 96;

/// What a host is, from the attacker's point of view (ordered by severity).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    /// A public name or address.
    Public,
    /// A public IP in an unusual notation (decimal, hex, octal, short, IPv6 literal).
    OddLiteral,
    /// A private range or internal-only name.
    Private,
    /// Loopback, unspecified, link-local or cloud metadata.
    Internal,
}

/// Whether `subject` carries a server-side request forgery at `sensitivity`.
pub fn detect(subject: &Subject<'_>, sensitivity: Sensitivity) -> bool {
    // A NUL ends the host for C resolvers (`localhost%00.evil.test`); the decoded form has it removed.
    // When nothing needed decoding `raw` is the decoded slice itself, and the byte set tells whether it has a NUL.
    let raw_nul = if std::ptr::eq(subject.raw, subject.decoded) {
        subject.bytes.has(0)
    } else {
        memchr::memchr(0, subject.raw).is_some()
    };
    scan(subject.decoded, sensitivity, subject.bytes) || (raw_nul && scan(subject.raw, sensitivity, ByteSet::ALL))
}

/// Whether `text` holds a URL or a bare host that `sensitivity` reports.
/// `bytes`: the kinds of bytes `text` holds (a search for a byte it lacks is skipped).
fn scan(text: &[u8], sensitivity: Sensitivity, bytes: ByteSet) -> bool {
    let start = leading_space(text);
    let has_at = bytes.has(b'@') && memchr::memchr(b'@', text).is_some();
    let mut found = false;
    // URLs with a scheme: every `:` preceded by a scheme name.
    let colons = if bytes.has(b':') { memchr::memchr_iter(b':', text) } else { memchr::memchr_iter(b':', &[]) };
    for colon in colons {
        let Some(scheme) = scheme_before(text, colon) else { continue };
        let after = colon + 1;
        let slashes = count_slashes(text, after);
        let mut name = [0u8; MAX_SCHEME];
        let scheme_name = lower_into(text.get(scheme..colon).unwrap_or_default(), &mut name);
        if slashes < 2 && !is_special(scheme_name) {
            // `jar:` and `netdoc:` take no slashes and are dangerous on their own.
            if matches!(scheme_name, b"jar" | b"netdoc") && slashes == 0 && sensitivity >= Sensitivity::Medium {
                found = true;
            }
            continue;
        }
        let at_start = scheme == start;
        if judge_scheme(scheme_name, slashes, at_start, sensitivity) {
            found = true;
        }
        let target = authority_target(text, after + slashes, has_at);
        if judge(target, at_start, sensitivity) {
            found = true;
        }
        if found {
            return true;
        }
    }
    // A scheme-relative URL (`//host/…`) or a UNC path (`\\host\share`) at the start of the value.
    // Browsers read any run of two or more slashes and backslashes (`\\/\\/host`) as the start of an authority.
    let slashes = count_slashes(text, start);
    if slashes >= 2 {
        let target = authority_target(text, start + slashes, has_at);
        if judge(target, true, sensitivity) {
            return true;
        }
    }
    // A value that is a host without a scheme (`localhost/`, `169.254.169.254/latest`).
    bare_host(text, start, sensitivity)
}

/// The longest scheme name read.
const MAX_SCHEME: usize = 32;

/// `name` in ASCII lower case, in `buf` (empty if it does not fit).
fn lower_into<'a>(name: &[u8], buf: &'a mut [u8; MAX_SCHEME]) -> &'a [u8] {
    let Some(dst) = buf.get_mut(..name.len()) else { return &[] };
    for (d, s) in dst.iter_mut().zip(name) {
        *d = s.to_ascii_lowercase();
    }
    dst
}

/// Whether a URL to `target` is reported at `sensitivity` (`at_start`: the value begins with the URL).
fn judge(target: Target, at_start: bool, sensitivity: Sensitivity) -> bool {
    match (target, sensitivity) {
        (Target::Internal, Sensitivity::Low) => at_start,
        (Target::Internal, _) | (Target::Private, Sensitivity::Medium | Sensitivity::High) => true,
        (Target::OddLiteral, Sensitivity::High) => true,
        _ => false,
    }
}

/// Whether the scheme alone is reported: protocols that talk to arbitrary TCP services, local files, directories.
fn judge_scheme(scheme: &[u8], slashes: usize, at_start: bool, sensitivity: Sensitivity) -> bool {
    if slashes < 2 {
        return false;
    }
    match scheme {
        b"gopher" | b"dict" => at_start || sensitivity >= Sensitivity::Medium,
        b"file" | b"ldap" | b"tftp" | b"netdoc" | b"jar" => sensitivity >= Sensitivity::Medium,
        _ => false,
    }
}

/// Schemes that URL parsers read without `//` (`http:127.0.0.1`).
fn is_special(scheme: &[u8]) -> bool {
    matches!(scheme, b"http" | b"https" | b"ftp" | b"ws" | b"wss" | b"gopher")
}

/// The start of the scheme name that ends at `colon`, if one does (a letter, then letters, digits, `+-.`).
fn scheme_before(text: &[u8], colon: usize) -> Option<usize> {
    let mut start = colon;
    while start > 0 {
        let b = *text.get(start - 1)?;
        if b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.' | b'_') {
            start -= 1;
        } else {
            break;
        }
        if colon - start > MAX_SCHEME {
            return None;
        }
    }
    let first = *text.get(start)?;
    (start < colon && first.is_ascii_alphabetic()).then_some(start)
}

/// How many `/` and `\` follow `from` (parsers treat both as the authority's slashes).
fn count_slashes(text: &[u8], from: usize) -> usize {
    text.get(from..).unwrap_or_default().iter().take_while(|&&b| b == b'/' || b == b'\\').count()
}

/// Leading spaces and quotes before a value's content.
fn leading_space(text: &[u8]) -> usize {
    text.iter().take_while(|&&b| b.is_ascii_whitespace() || b == b'"' || b == b'\'').count()
}

/// The worst target among the hosts an authority starting at `from` may name: the host after the slashes and the
/// hosts after the first `@`s before the path (parsers disagree on which `@` ends the userinfo). `has_at`: whether
/// the value holds an `@` at all, so most URLs skip the search for one.
fn authority_target(text: &[u8], from: usize, has_at: bool) -> Target {
    let region = text.get(from..).unwrap_or_default();
    let mut worst = host_target(region);
    if !has_at {
        return worst;
    }
    let region = region.get(..MAX_AUTHORITY).unwrap_or(region);
    let end = region.iter().position(|&b| b == b'/' || b == b'?').unwrap_or(region.len());
    let region = region.get(..end).unwrap_or(region);
    for at in memchr::memchr_iter(b'@', region).take(MAX_USERINFO_SPLITS) {
        worst = worst.max(host_target(region.get(at + 1..).unwrap_or_default()));
    }
    worst
}

/// How many `@` of one authority are tried as the end of its userinfo.
const MAX_USERINFO_SPLITS: usize = 4;

/// Whether a value that starts (after `start`) with a host and nothing before it names an internal host.
fn bare_host(text: &[u8], start: usize, sensitivity: Sensitivity) -> bool {
    let rest = text.get(start..).unwrap_or_default();
    let mut host = Host::new(false);
    let consumed = host.fold(rest);
    // The host must be the whole value or be followed by a port or a path.
    let followed = match rest.get(consumed) {
        None => false,
        Some(b'/' | b'?' | b'#') => true,
        // A port, then the end or a path: `00:59:51` is a time.
        Some(b':') => {
            let after = rest.get(consumed + 1..).unwrap_or_default();
            let digits = after.iter().take_while(|b| b.is_ascii_digit()).count();
            if !(1..=5).contains(&digits) || !matches!(after.get(digits), None | Some(b'/' | b'?' | b'#')) {
                return false;
            }
            true
        }
        _ => return false,
    };
    let name = host.name();
    if name.is_empty() {
        return false;
    }
    if let Some(ip) = parse_ipv4(name) {
        let target = ipv4_target(ip.addr);
        // Four parts, or hex, are addresses; `10.5`, `00` or `2130706433` may be a price, a time or an id.
        let unmistakable = ip.parts == 4 || ip.hex;
        return match sensitivity {
            Sensitivity::Low => false,
            Sensitivity::Medium => target == Target::Internal && unmistakable,
            _ => {
                (target >= Target::Private && (unmistakable || (followed && ip.parts > 1)))
                    || (target == Target::Internal && ip.parts == 1 && ip.addr > 0x00FF_FFFF)
            }
        };
    }
    let target = name_target(name, host.bracketed);
    match sensitivity {
        // A whole value like `localhost/admin` or `host.docker.internal:2375` is an address, not prose.
        Sensitivity::Low => target == Target::Internal && followed && !text.iter().any(u8::is_ascii_whitespace),
        // `localhost` alone reads like a word; `localhost/` or `localhost:8080` does not.
        Sensitivity::Medium => target == Target::Internal && (followed || host.bracketed),
        _ => target >= Target::Private && (followed || host.bracketed || name.contains(&b'.')),
    }
}

/// The target named by the host at the start of `text`.
fn host_target(text: &[u8]) -> Target {
    // WHATWG parsers end the host at a backslash; others drop backslashes inside it.
    let mut ended = Host::new(true);
    let consumed = ended.fold(text);
    let target = name_target(ended.name(), ended.bracketed);
    if text.get(consumed) != Some(&b'\\') {
        return target;
    }
    let mut dropped = Host::new(false);
    dropped.fold(text);
    target.max(name_target(dropped.name(), dropped.bracketed))
}

/// A host folded to ASCII lower case in a fixed buffer.
struct Host {
    buf: [u8; MAX_HOST],
    len: usize,
    /// Whether the host was in brackets (an IPv6 literal).
    bracketed: bool,
    /// Whether it was too long to keep whole.
    truncated: bool,
    /// Whether a backslash ends the host (as a path separator) rather than being dropped.
    backslash_ends: bool,
}

impl Host {
    fn new(backslash_ends: bool) -> Host {
        Host { buf: [0; MAX_HOST], len: 0, bracketed: false, truncated: false, backslash_ends }
    }

    fn name(&self) -> &[u8] {
        if self.truncated {
            return &[];
        }
        let name = self.buf.get(..self.len).unwrap_or_default();
        // A fully qualified name's trailing dot changes nothing.
        name.strip_suffix(b".").unwrap_or(name)
    }

    fn push(&mut self, b: u8) {
        match self.buf.get_mut(self.len) {
            Some(slot) => {
                *slot = b.to_ascii_lowercase();
                self.len += 1;
            }
            None => self.truncated = true,
        }
    }

    /// Folds the host at the start of `text` into the buffer; returns how many bytes of `text` it took.
    fn fold(&mut self, text: &[u8]) -> usize {
        let mut pos = 0;
        let mut in_brackets = false;
        while let Some(&b) = text.get(pos) {
            let (c, len) = fold_char(text.get(pos..).unwrap_or_default(), b);
            if pos == 0 && c == b'[' {
                in_brackets = true;
                self.bracketed = true;
                pos += len;
                continue;
            }
            if in_brackets {
                if c == b']' {
                    return pos + len;
                }
                if matches!(c, b'@' | b'/' | b'?') || c.is_ascii_whitespace() {
                    return pos;
                }
            } else if matches!(
                c,
                0 | b':' | b'/' | b'?' | b'#' | b'@' | b'&' | b'"' | b'\'' | b'<' | b'>' | b';' | b','
            ) || c.is_ascii_whitespace()
            {
                return pos;
            }
            if c == b'\\' && self.backslash_ends && !in_brackets {
                return pos;
            }
            // Backslashes inside a host are dropped by the parsers that accept them.
            if c != b'\\' {
                self.push(c);
            }
            pos += len;
        }
        pos
    }
}

/// One character of a host folded to ASCII: fullwidth forms, circled letters and digits, ideographic full stops.
/// Returns the folded byte (or the first byte, unchanged) and how many bytes it took.
fn fold_char(text: &[u8], first: u8) -> (u8, usize) {
    if first < 0x80 {
        return (first, 1);
    }
    if let [a @ 0xE0..=0xEF, b, c, ..] = text {
        let cp = (u32::from(a & 0x0F) << 12) | (u32::from(b & 0x3F) << 6) | u32::from(c & 0x3F);
        let ascii = match cp {
            0x2460..=0x2468 => Some(b'1' + (cp - 0x2460) as u8),
            0x24EA => Some(b'0'),
            0x24B6..=0x24CF => Some(b'a' + (cp - 0x24B6) as u8),
            0x24D0..=0x24E9 => Some(b'a' + (cp - 0x24D0) as u8),
            0xFF01..=0xFF5E => Some((cp - 0xFEE0) as u8),
            0x3002 | 0xFF61 => Some(b'.'),
            _ => None,
        };
        if let Some(ascii) = ascii {
            return (ascii, 3);
        }
    }
    (first, 1)
}

/// An IPv4 address as `inet_aton` reads it.
struct Ipv4 {
    addr: u32,
    parts: usize,
    /// Hex, octal, fewer than four parts, or a part that overflowed.
    odd_notation: bool,
    /// Some part is written in hex.
    hex: bool,
}

/// Parses `name` as an IPv4 address in any notation `inet_aton` accepts; overflowing parts are truncated, as some
/// parsers do.
fn parse_ipv4(name: &[u8]) -> Option<Ipv4> {
    let mut parts = [0u64; 4];
    let mut count = 0;
    let mut odd = false;
    let mut hex = false;
    for part in name.split(|&b| b == b'.') {
        let slot = parts.get_mut(count)?;
        let (value, part_odd) = parse_ipv4_part(part)?;
        hex |= part.starts_with(b"0x") || part.starts_with(b"0X");
        *slot = value;
        odd |= part_odd;
        count += 1;
    }
    if count == 0 {
        return None;
    }
    // The last part fills the bytes the others left.
    let mut addr: u64 = 0;
    for (i, &value) in parts.iter().take(count - 1).enumerate() {
        if value > 0xFF {
            odd = true;
        }
        addr |= (value & 0xFF) << (24 - 8 * i);
    }
    let last_bits = 32 - 8 * (count as u64 - 1);
    let last = parts.get(count - 1).copied().unwrap_or(0);
    let mask = (1u64 << last_bits) - 1;
    if last > mask {
        odd = true;
    }
    addr |= last & mask;
    Some(Ipv4 { addr: addr as u32, parts: count, odd_notation: odd || count != 4, hex })
}

/// One part of an IPv4 address: decimal, `0x` hex or `0` octal. Returns its value (wrapping) and whether its
/// notation is unusual.
fn parse_ipv4_part(part: &[u8]) -> Option<(u64, bool)> {
    let (digits, radix, odd) = match part {
        [] => return None,
        [b'0', b'x' | b'X', rest @ ..] => (rest, 16, true),
        [b'0', rest @ ..] if !rest.is_empty() => (rest, 8, true),
        _ => (part, 10, false),
    };
    if digits.len() > 32 {
        return None;
    }
    let mut value: u64 = 0;
    for &d in digits {
        let digit = char::from(d).to_digit(radix)?;
        value = value.wrapping_mul(u64::from(radix)).wrapping_add(u64::from(digit));
    }
    Some((value, odd))
}

/// What an IPv4 address is.
fn ipv4_target(addr: u32) -> Target {
    let ip = Ipv4Addr::from(addr);
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() || ip.is_unspecified() || ip.is_link_local() {
        return Target::Internal;
    }
    // Alibaba Cloud's and Oracle Cloud's metadata services.
    if addr == 0x6464_64C8 || addr == 0xC000_00C0 {
        return Target::Internal;
    }
    if ip.is_private() || (a == 100 && (64..128).contains(&b)) || a == 0 {
        return Target::Private;
    }
    Target::Public
}

/// What an IPv6 address is.
fn ipv6_target(ip: Ipv6Addr) -> Target {
    let seg = ip.segments();
    if ip.is_loopback() || ip.is_unspecified() {
        return Target::Internal;
    }
    let [s0, s1, s2, s3, s4, s5, s6, s7] = seg;
    let low32 = (u32::from(s6) << 16) | u32::from(s7);
    // IPv4-mapped, IPv4-compatible and NAT64 addresses reach the IPv4 address inside.
    if s0 == 0 && s1 == 0 && s2 == 0 && s3 == 0 && s4 == 0 && (s5 == 0xFFFF || s5 == 0) {
        return ipv4_target(low32).max(Target::OddLiteral);
    }
    if s0 == 0x64 && s1 == 0xFF9B && s2 == 0 && s3 == 0 && s4 == 0 && s5 == 0 {
        return ipv4_target(low32).max(Target::OddLiteral);
    }
    // 6to4 carries an IPv4 address in its second and third segments.
    if s0 == 0x2002 {
        return ipv4_target((u32::from(s1) << 16) | u32::from(s2)).max(Target::OddLiteral);
    }
    // AWS's metadata service over IPv6, and link-local.
    if seg == [0xFD00, 0x0EC2, 0, 0, 0, 0, 0, 0x0254] || (s0 & 0xFFC0) == 0xFE80 {
        return Target::Internal;
    }
    if (s0 & 0xFE00) == 0xFC00 {
        return Target::Private;
    }
    Target::OddLiteral
}

/// Names that resolve to the machine itself, its containers' hosts, or a cloud metadata service.
const INTERNAL_NAMES: &[&[u8]] = &[
    b"localhost",
    b"localhost.localdomain",
    b"localhost4",
    b"localhost4.localdomain4",
    b"localhost6",
    b"localhost6.localdomain6",
    b"ip6-localhost",
    b"ip6-loopback",
    b"ipv6-localhost",
    b"metadata",
    b"metadata.google.internal",
    b"metadata.packet.net",
    b"metadata.platformequinix.com",
    b"metadata.tencentyun.com",
    b"instance-data",
    b"instance-data.ec2.internal",
    b"host.docker.internal",
    b"gateway.docker.internal",
    b"kubernetes.docker.internal",
    b"host.containers.internal",
    b"kubernetes.default",
    b"kubernetes.default.svc",
    b"kubernetes.default.svc.cluster.local",
    b"localtest.me",
    b"lvh.me",
    b"vcap.me",
];
/// Suffixes of names that resolve to the machine itself (wildcard DNS to 127.0.0.1).
const INTERNAL_SUFFIXES: &[&[u8]] = &[b".localhost", b".localtest.me", b".lvh.me", b".vcap.me"];
/// Suffixes of names only an internal resolver answers.
const PRIVATE_SUFFIXES: &[&[u8]] = &[
    b".internal",
    b".local",
    b".localdomain",
    b".cluster.local",
    b".svc",
    b".intranet",
    b".corp",
    b".lan",
    b".home.arpa",
];
/// Wildcard DNS services that answer with the IP written in the name (`127.0.0.1.nip.io`).
const IP_IN_NAME_SUFFIXES: &[&[u8]] = &[b".nip.io", b".xip.io", b".sslip.io", b".traefik.me"];

/// What a folded host name (or bracketed IPv6 literal) is.
fn name_target(name: &[u8], bracketed: bool) -> Target {
    if name.is_empty() {
        return Target::Public;
    }
    if bracketed {
        // A zone (`%eth0`, `%25eth0`) follows the address.
        let addr = name.split(|&b| b == b'%').next().unwrap_or(name);
        return match core::str::from_utf8(addr).ok().and_then(|s| s.parse::<Ipv6Addr>().ok()) {
            Some(ip) => ipv6_target(ip),
            None => Target::Public,
        };
    }
    if let Some(ip) = parse_ipv4(name) {
        let target = ipv4_target(ip.addr);
        return if ip.odd_notation { target.max(Target::OddLiteral) } else { target };
    }
    if INTERNAL_NAMES.contains(&name) || INTERNAL_SUFFIXES.iter().any(|s| name.ends_with(s)) {
        return Target::Internal;
    }
    for suffix in IP_IN_NAME_SUFFIXES {
        if let Some(front) = name.strip_suffix(*suffix) {
            return ip_in_name(front);
        }
    }
    if PRIVATE_SUFFIXES.iter().any(|s| name.ends_with(s)) {
        return Target::Private;
    }
    Target::Public
}

/// The target written at the end of a wildcard-DNS name's front (`app.127.0.0.1`, `127-0-0-1`).
fn ip_in_name(front: &[u8]) -> Target {
    // The last four dot- or dash-separated parts.
    let mut octets = [0u8; 4];
    let mut found = 0;
    for part in front.rsplit(|&b| b == b'.' || b == b'-') {
        let Some(value) = core::str::from_utf8(part).ok().and_then(|s| s.parse::<u8>().ok()) else { break };
        if let Some(slot) = octets.get_mut(3 - found) {
            *slot = value;
        }
        found += 1;
        if found == 4 {
            return ipv4_target(u32::from_be_bytes(octets));
        }
    }
    Target::Public
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
    fn urls_to_loopback_link_local_and_metadata_are_found_at_low() {
        for attack in [
            "http://127.0.0.1/admin",
            "http://localhost:8080/",
            "https://LOCALHOST./",
            "http://0.0.0.0:6379/",
            "http://[::1]/",
            "http://169.254.169.254/latest/meta-data/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://100.100.100.200/latest/meta-data/",
            "http://[fd00:ec2::254]/latest/",
            "http://[fe80::1%25eth0]/",
            "http://2130706433/",
            "http://0177.0.0.1/",
            "http://0x7f.1/",
            "http://127.1/",
            "http://0x7f000001/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://[64:ff9b::7f00:1]/",
            "http://good.example@127.0.0.1/",
            "http://user:pass@localhost/",
            "http://evil.example:80 &@good.example:80# @127.9.9.9:22/",
            "//127.0.0.1/x",
            "\\\\localhost\\c$",
            "\\/\\/127.0.0.1/",
            "http:127.0.0.1",
            "http:\\\\localhost/x",
            "gopher://anything.example:70/_x",
            "dict://cache.example:11211/stat",
            "ssh://0177.0.00.001",
            "http://\u{2460}\u{2461}\u{2466}.\u{24ea}.\u{24ea}.\u{2460}/",
            "http://169\u{3002}254\u{3002}169\u{3002}254/",
            "http://\u{24db}\u{24de}\u{24d2}\u{24d0}\u{24db}\u{24d7}\u{24de}\u{24e2}\u{24e3}/",
            "http://127.0.0.1.nip.io/",
            "http://app.localtest.me/",
            "http://6425673729/",
            "http://0x11223344A9FEA9FE/",
            "localhost/admin",
            "host.docker.internal:2375",
        ] {
            assert_eq!(level(attack), Some(Sensitivity::Low), "{attack}");
        }
    }

    #[test]
    fn a_nul_that_ends_the_host_for_resolvers_is_seen() {
        let raw = b"http://localhost\0.example.com/";
        let decoded = b"http://localhost.example.com/";
        let subject = Subject {
            raw,
            decoded,
            lower: decoded,
            bytes: crate::attacks::ByteSet::of(decoded),
            is_name: false,
            place: Place::Query,
        };
        assert!(detect(&subject, Sensitivity::Low));
        assert!(!detect(&Subject::plain(decoded, decoded, Place::Query), Sensitivity::High));
    }

    #[test]
    fn private_ranges_and_urls_inside_text_are_found_at_medium() {
        for attack in [
            "http://10.0.0.5/",
            "http://172.16.3.4:8500/v1/kv",
            "https://192.168.1.1/admin",
            "http://[fc00::1]/",
            "http://vault.service.internal/",
            "http://redis.default.svc.cluster.local:6379/",
            "fetch this: http://127.0.0.1/",
            "file:///etc/passwd",
            "ldap://directory.example/",
            "jar:http://evil.example/x.jar!/",
            "169.254.169.254/latest/user-data",
            "[::ffff:a9fe:a9fe]",
            "0x7f000001",
        ] {
            assert_eq!(level(attack), Some(Sensitivity::Medium), "{attack}");
        }
    }

    #[test]
    fn odd_literals_and_bare_private_hosts_are_found_at_high() {
        for attack in ["http://0x08080808/", "http://[2001:db8::1]/", "10.0.0.1", "127.1:80", "2130706433"] {
            assert_eq!(level(attack), Some(Sensitivity::High), "{attack}");
        }
    }

    #[test]
    fn public_urls_and_look_alikes_pass_at_every_level() {
        for benign in [
            "https://www.example.com/path?q=1",
            "http://93.184.216.34/",
            "url=http://www.example.com/tan?usp=4#8",
            "mailto:someone@example.com",
            "10.5",
            "version 127.0.1",
            "price: 10.0",
            "1234567890",
            "the localhost test",
            "localhost",
            "Meet at 10:30",
            "https://user@example.com/",
            "time 12:00:00",
            "00:59:51",
            "0:30",
            "note:localhost",
            "ab://",
            "::1",
            "///var/log/app.log",
            "//cdn.example.com/lib.js",
        ] {
            assert_eq!(level(benign), None, "{benign}");
        }
    }

    #[test]
    fn linear_on_long_runs() {
        for unit in
            ["http:", "http://", "a://", "http:@[", "@", "//", "[", "0x", "1.", "http://a@", "\\", ":", "http:x "]
        {
            let text = unit.repeat(20_000);
            let _ = level(&text);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut rng = crate::token_analysis::test_rng::Rng(0x2545_F491_4F6C_DD1D);
        let mut next = move || rng.next();
        let alphabet = b"http:/@[]:.0x7f1ff%\\\xe2\x91\xa0\xe3\x80\x82localhost";
        for _ in 0..4000 {
            let len = (next() % 80) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if r % 4 == 0 {
                        r as u8
                    } else {
                        alphabet[(r >> 8) as usize % alphabet.len()]
                    }
                })
                .collect();
            let lower = bytes.to_ascii_lowercase();
            for s in [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High] {
                detect(&Subject::plain(&bytes, &lower, Place::Query), s);
            }
        }
    }
}
