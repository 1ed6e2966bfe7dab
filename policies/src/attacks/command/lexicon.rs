//! Static word tables and small byte matchers shared by the command, path-traversal and file-inclusion detectors.
//!
//! Everything here reads bytes through `.get()` and compares ASCII case-insensitively, so a detector can run the same
//! code on the decoded value and on the raw one without a lower-cased copy. Nothing allocates.

/// The byte at `i`, ASCII lower-cased, or 0 past the end.
pub(in crate::attacks) fn lc(text: &[u8], i: usize) -> u8 {
    text.get(i).map_or(0, u8::to_ascii_lowercase)
}

/// Whether `text` holds `pat` (lower case) at `i`, ignoring ASCII case.
pub(in crate::attacks) fn has_at(text: &[u8], i: usize, pat: &[u8]) -> bool {
    match text.get(i..i.saturating_add(pat.len())) {
        Some(window) => window.eq_ignore_ascii_case(pat),
        None => false,
    }
}

/// Whether `b` can be part of a word (a command or function name, a path component).
pub(in crate::attacks) fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The length of a path separator at `i` (0 if none): `/`, `\`, their Unicode look-alikes that Windows maps to
/// them (division slash, set minus, fullwidth forms, two private-use forms IIS folded), and the `0x2f`/`0x5c`
/// spellings some decoders turn into one.
pub(in crate::attacks) fn sep_len(text: &[u8], i: usize) -> usize {
    match lc(text, i) {
        b'/' | b'\\' => 1,
        0xe2 if has_at(text, i + 1, &[0x88, 0x95]) || has_at(text, i + 1, &[0x88, 0x96]) => 3,
        0xef if has_at(text, i + 1, &[0xbc, 0x8f]) || has_at(text, i + 1, &[0xbc, 0xbc]) => 3,
        0xef if has_at(text, i + 1, &[0x80, 0xa5]) => 3,
        0xee if has_at(text, i + 1, &[0xbf, 0x88]) => 3,
        b'0' if has_at(text, i, b"0x2f") || has_at(text, i, b"0x5c") => 4,
        0xc0..=0xfc => match overlong(text, i) {
            Some((b'/' | b'\\', len)) => len,
            _ => 0,
        },
        _ => 0,
    }
}

/// The length of a dot at `i` (0 if none): `.`, the fullwidth and one-dot-leader look-alikes, and `0x2e`.
pub(in crate::attacks) fn dot_len(text: &[u8], i: usize) -> usize {
    match lc(text, i) {
        b'.' => 1,
        0xef if has_at(text, i + 1, &[0xbc, 0x8e]) => 3,
        0xe2 if has_at(text, i + 1, &[0x80, 0xa4]) => 3,
        b'0' if has_at(text, i, b"0x2e") => 4,
        0xc0..=0xfc => match overlong(text, i) {
            Some((b'.', len)) => len,
            _ => 0,
        },
        _ => 0,
    }
}

/// An over-long UTF-8 spelling of an ASCII byte at `i` that the normaliser left (`C0 AE` is `.`), including the
/// invalid `C0 2E` / `C0 6E` forms old IIS decoded by keeping the low six bits: the byte and the length.
fn overlong(text: &[u8], i: usize) -> Option<(u8, usize)> {
    let lead = *text.get(i)?;
    let len = match lead {
        0xc0 | 0xc1 => 2,
        0xe0 => 3,
        0xf0 => 4,
        0xf8 => 5,
        0xfc => 6,
        _ => return None,
    };
    let last = *text.get(i + len - 1)?;
    if len == 2 {
        // `C0 5C` before an ASCII `\`, `C1 AF` and `C1 9C`: old decoders kept the low bits with or without the
        // lead's; either reading that gives a dot or a slash is one.
        let candidates = [last, ((lead & 1) << 6) | (last & 0x3f), last & 0x3f];
        return candidates.into_iter().find(|b| matches!(b, b'.' | b'/' | b'\\')).map(|b| (b, 2));
    }
    let high = *text.get(i + len - 2)?;
    let zeros = text.get(i + 1..i + len - 2)?;
    let value = ((high & 0x3f) << 6) | (last & 0x3f);
    let valid = zeros.iter().all(|&b| b == 0x80) && (0x80..=0x81).contains(&high) && last & 0xc0 == 0x80;
    if valid && value < 0x80 {
        Some((value, len))
    } else {
        None
    }
}

/// How a word in [`COMMANDS`] reads, packed in its flags byte.
pub(in crate::attacks) mod cmd {
    /// Mask of the strength: 1 = also an English word (`cat`, `sleep`), 2 = short but not English (`id`, `ls`),
    /// 3 = unmistakably a command (`whoami`, `wget`).
    pub const STRENGTH: u8 = 0x03;
    /// A Windows command: case-insensitive (Unix commands are not, so `ID` or `Cat` is prose).
    pub const WIN: u8 = 0x10;
    /// Meaningful alone as a whole value (`whoami`, `systeminfo`): reconnaissance with no other sense.
    pub const SOLO: u8 = 0x20;
    /// Takes a number as its telling argument (`sleep 5`, `ping 127.0.0.1` is covered by the address).
    pub const NUMBER: u8 = 0x40;
    /// Runs the command that follows it (`time`, `nohup`, `sudo`, `strace`): that command is what counts.
    pub const WRAP: u8 = 0x80;
}

const W: u8 = cmd::WIN;
const S: u8 = cmd::SOLO;
const N: u8 = cmd::NUMBER;
const R: u8 = cmd::WRAP;

/// Unix and Windows commands and common binaries, sorted by name (a test checks it), with their [`cmd`] flags.
pub(in crate::attacks) static COMMANDS: &[(&[u8], u8)] = COMMAND_TABLE;

/// [`COMMANDS`] as a constant, so its first bytes can be counted at compile time.
const COMMAND_TABLE: &[(&[u8], u8)] = &[
    (b"7z", 2),
    (b"alias", 1),
    (b"ansible", 3),
    (b"ansible-config", 3),
    (b"ansible-console", 3),
    (b"ansible-galaxy", 3),
    (b"ansible-inventory", 3),
    (b"ansible-playbook", 3),
    (b"ansible-pull", 3),
    (b"ansible-vault", 3),
    (b"apt", 1),
    (b"apt-get", 3),
    (b"arp", 2 | W),
    (b"attrib", 2 | W),
    (b"awk", 2),
    (b"base64", 3),
    (b"bash", 1),
    (b"bitsadmin", 3 | W),
    (b"busybox", 3 | R),
    (b"bzip2", 3),
    (b"cacls", 3 | W),
    (b"cat", 1),
    (b"certutil", 3 | W),
    (b"chattr", 3),
    (b"chef-client", 3),
    (b"chef-run", 3),
    (b"chef-vault", 3),
    (b"chgrp", 3),
    (b"chmod", 3),
    (b"chown", 3),
    (b"chroot", 3),
    (b"cmd", 2 | W),
    (b"copy", 1 | W),
    (b"cp", 2),
    (b"cpan", 3),
    (b"crontab", 3),
    (b"cscli", 3),
    (b"cscript", 3 | W),
    (b"csh", 2),
    (b"curl", 1 | W),
    (b"cut", 1),
    (b"dash", 1),
    (b"date", 1),
    (b"dd", 2),
    (b"del", 2 | W),
    (b"df", 2),
    (b"dig", 1),
    (b"dir", 2 | W),
    (b"dmesg", 3),
    (b"docker", 2),
    (b"dpkg", 3),
    (b"du", 2),
    (b"echo", 1 | W),
    (b"egrep", 3),
    (b"env", 2 | R),
    (b"eval", 1),
    (b"exec", 1 | R),
    (b"expect", 1),
    (b"export", 1),
    (b"fgrep", 3),
    (b"find", 1),
    (b"findstr", 3 | W),
    (b"flock", 1 | R),
    (b"ftp", 2 | W),
    (b"gawk", 3),
    (b"gcc", 2),
    (b"gdb", 2),
    (b"gem", 1),
    (b"get-content", 3 | W),
    (b"getent", 3),
    (b"git", 1),
    (b"grep", 2),
    (b"gunzip", 3),
    (b"gzip", 2),
    (b"head", 1),
    (b"hexdump", 3),
    (b"host", 1),
    (b"hostname", 2 | W | S),
    (b"htop", 3),
    (b"icacls", 3 | W),
    (b"id", 2),
    (b"iex", 3 | W),
    (b"ifconfig", 3 | S),
    (b"invoke-expression", 3 | W),
    (b"invoke-webrequest", 3 | W),
    (b"ip", 1),
    (b"ipconfig", 3 | W | S),
    (b"irb", 3),
    (b"iwmi", 3 | W),
    (b"iwr", 3 | W),
    (b"java", 1),
    (b"jq", 2),
    (b"kill", 1),
    (b"killall", 3),
    (b"ksh", 2),
    (b"kubectl", 3),
    (b"ldd", 3),
    (b"less", 1),
    (b"lftp", 3),
    (b"ll", 2),
    (b"ln", 2),
    (b"ls", 2 | S),
    (b"lsof", 3),
    (b"lua", 1),
    (b"make", 1),
    (b"man", 1),
    (b"mkdir", 2 | W),
    (b"mkfifo", 3),
    (b"more", 1 | W),
    (b"move", 1 | W),
    (b"mshta", 3 | W),
    (b"msiexec", 3 | W),
    (b"mv", 2),
    (b"mysql", 2),
    (b"nano", 2),
    (b"nbtstat", 3 | W | S),
    (b"nc", 2),
    (b"ncat", 3),
    (b"net", 1 | W),
    (b"netcat", 3),
    (b"netsh", 3 | W),
    (b"netstat", 3 | W | S),
    (b"new-object", 3 | W),
    (b"nice", 1 | R),
    (b"nmap", 3),
    (b"node", 1),
    (b"nohup", 3 | R),
    (b"npm", 2),
    (b"nsenter", 3),
    (b"nslookup", 3 | W),
    (b"openssl", 3),
    (b"passwd", 2),
    (b"perl", 1),
    (b"php", 1),
    (b"ping", 1 | W | N),
    (b"pip", 2),
    (b"pip3", 3),
    (b"pipx", 3),
    (b"pkill", 3),
    (b"powershell", 3 | W),
    (b"printenv", 3),
    (b"printf", 1),
    (b"ps", 2),
    (b"psql", 2),
    (b"pwd", 2 | S),
    (b"pwsh", 3 | W),
    (b"python", 1),
    (b"python2", 3),
    (b"python3", 3),
    (b"reg", 2 | W),
    (b"regsvr32", 3 | W),
    (b"rm", 2),
    (b"rmdir", 2 | W),
    (b"rpm", 2),
    (b"rsync", 2),
    (b"ruby", 1),
    (b"rundll32", 3 | W),
    (b"sc", 1 | W),
    (b"schtasks", 3 | W),
    (b"scp", 2),
    (b"screen", 1),
    (b"sed", 2),
    (b"set", 1 | W),
    (b"sh", 2),
    (b"sleep", 1 | N),
    (b"socat", 3),
    (b"sort", 1),
    (b"source", 1),
    (b"sqlite3", 3),
    (b"ssh", 2),
    (b"start-process", 3 | W),
    (b"strace", 3 | R),
    (b"su", 2),
    (b"sudo", 3 | R),
    (b"sysinfo", 3 | W | S),
    (b"systeminfo", 3 | W | S),
    (b"tac", 2),
    (b"tail", 1),
    (b"tar", 2),
    (b"taskkill", 3 | W),
    (b"tasklist", 3 | W | S),
    (b"tclsh", 3),
    (b"tcsh", 3),
    (b"tee", 1),
    (b"telnet", 2 | W),
    (b"tftp", 3 | W),
    (b"time", 1 | R),
    (b"timeout", 1 | W | N | R),
    (b"tmux", 2),
    (b"top", 1),
    (b"touch", 1),
    (b"traceroute", 3),
    (b"tracert", 3 | W),
    (b"type", 1 | W),
    (b"uname", 3 | S),
    (b"unshare", 3),
    (b"unzip", 2),
    (b"uptime", 2),
    (b"useradd", 3),
    (b"usermod", 3),
    (b"vi", 2),
    (b"vim", 2),
    (b"visudo", 3),
    (b"vssadmin", 3 | W),
    (b"watch", 1 | R),
    (b"wc", 2),
    (b"wevtutil", 3 | W),
    (b"wget", 3 | W),
    (b"which", 1),
    (b"whoami", 3 | W | S),
    (b"whois", 2),
    (b"wmic", 3 | W),
    (b"wscript", 3 | W),
    (b"xargs", 3 | R),
    (b"xterm", 3),
    (b"xxd", 3),
    (b"xz", 2),
    (b"yum", 2),
    (b"zsh", 1),
    (b"zypper", 3),
];

/// Windows commands whose first argument is a subcommand that only a command line has (`net user`, `reg add`).
pub(in crate::attacks) static SUBCOMMANDS: &[(&[u8], &[&[u8]])] = &[
    (b"net", &[b"user", b"users", b"localgroup", b"group", b"view", b"share", b"use", b"session", b"accounts"]),
    (b"reg", &[b"add", b"query", b"delete", b"export", b"save", b"import", b"load"]),
    (b"netsh", &[b"firewall", b"advfirewall", b"interface", b"wlan", b"winhttp", b"portproxy"]),
    (b"sc", &[b"query", b"create", b"config", b"start", b"stop", b"delete", b"qc"]),
];

/// The flags of command `name` (lower case), if it is one: only the names with its first byte and length are
/// compared.
pub(in crate::attacks) fn command(name: &[u8]) -> Option<u8> {
    let first = usize::from(*name.first()?);
    let (Some(&from), Some(&to)) = (COMMAND_START.get(first), COMMAND_START.get(first + 1)) else {
        return None;
    };
    let group = COMMANDS.get(usize::from(from)..usize::from(to))?;
    group.iter().find(|(n, _)| n.len() == name.len() && *n == name).map(|(_, f)| *f)
}

/// Where each first byte's names start in [`COMMANDS`] (sorted, so each first byte's names are contiguous; 257
/// entries, the last one ends the last group).
// Evaluated at compile time: an index out of range fails the build, it cannot panic at run time.
#[allow(clippy::indexing_slicing, clippy::cast_possible_truncation, clippy::as_conversions)]
static COMMAND_START: [u16; 257] = {
    let mut start = [0u16; 257];
    let mut k = 0;
    while k < COMMAND_TABLE.len() {
        start[COMMAND_TABLE[k].0[0] as usize + 1] += 1;
        k += 1;
    }
    let mut b = 0;
    while b < 256 {
        start[b + 1] += start[b];
        b += 1;
    }
    start
};

/// Functions of scripting languages that run a command or code (`system('id')`, `phpinfo()`), sorted.
pub(in crate::attacks) static CODE_CALLS: &[&[u8]] = &[
    b"assert",
    b"call_user_func",
    b"create_function",
    b"eval",
    b"exec",
    b"passthru",
    b"pcntl_exec",
    b"phpinfo",
    b"phpversion",
    b"popen",
    b"proc_open",
    b"shell_exec",
    b"system",
];

/// Whether `name` (lower case) is one of [`CODE_CALLS`].
pub(in crate::attacks) fn code_call(name: &[u8]) -> bool {
    CODE_CALLS.binary_search(&name).is_ok()
}

/// How telling a path target is.
pub(in crate::attacks) mod target {
    /// A configuration or log file that is sensitive once reached (`httpd.conf`, `access.log`, `.htaccess`).
    pub const FILE: u8 = 1;
    /// A directory of the system's own files, telling as the start of an absolute path (`/usr/`, `/var/www`).
    pub const ROOT: u8 = 2;
    /// A directory no web request has a reason to name from its root (`/etc/`, `/proc/`, `C:\Windows\`).
    pub const SYSTEM: u8 = 3;
    /// A file no request has a reason to name (`etc/passwd`, `win.ini`, `.ssh/id_rsa`, `WEB-INF/web.xml`).
    pub const SECRET: u8 = 4;
}

/// Well-known targets of traversal and local file inclusion, lower case; `/` stands for one or more separators of
/// any kind. A pattern matches at the start of a path component.
pub(in crate::attacks) static TARGETS: &[(&[u8], u8)] = TARGET_TABLE;

/// [`TARGETS`] as a constant, so its length and first bytes can be indexed at compile time.
const TARGET_TABLE: &[(&[u8], u8)] = &[
    // Files no request has a reason to name.
    (b"etc/passwd", target::SECRET),
    (b"etc/shadow", target::SECRET),
    (b"etc/gshadow", target::SECRET),
    (b"etc/group", target::SECRET),
    (b"etc/hosts", target::SECRET),
    (b"etc/issue", target::SECRET),
    (b"etc/master.passwd", target::SECRET),
    (b"etc/sudoers", target::SECRET),
    (b"etc/security/", target::SECRET),
    (b"proc/self/", target::SECRET),
    (b"proc/thread-self/", target::SECRET),
    (b"win.ini", target::SECRET),
    (b"boot.ini", target::SECRET),
    (b"system.ini", target::SECRET),
    (b"windows/system32/", target::SECRET),
    (b"winnt/system32/", target::SECRET),
    (b"system32/config/", target::SECRET),
    (b"system32/drivers/etc/", target::SECRET),
    (b"repair/sam", target::SECRET),
    (b"web-inf/", target::SECRET),
    (b"meta-inf/", target::SECRET),
    (b".ssh/", target::SECRET),
    (b"id_rsa", target::SECRET),
    (b"id_dsa", target::SECRET),
    (b"id_ecdsa", target::SECRET),
    (b"id_ed25519", target::SECRET),
    (b"authorized_keys", target::SECRET),
    (b".htpasswd", target::SECRET),
    (b"wp-config.php", target::SECRET),
    (b".aws/credentials", target::SECRET),
    (b".git/config", target::SECRET),
    (b"applicationhost.config", target::SECRET),
    // System directories, telling at the root of an absolute path.
    (b"etc/", target::SYSTEM),
    (b"proc/", target::SYSTEM),
    (b"sys/", target::SYSTEM),
    (b"boot/", target::SYSTEM),
    (b"bin/", target::ROOT),
    (b"sbin/", target::SYSTEM),
    (b"root/", target::SYSTEM),
    (b"opt/", target::ROOT),
    (b"var/log", target::SYSTEM),
    (b"var/www", target::ROOT),
    (b"var/lib/", target::ROOT),
    (b"var/mail", target::ROOT),
    (b"var/spool/", target::ROOT),
    (b"var/run/", target::ROOT),
    (b"var/adm", target::ROOT),
    (b"var/cpanel", target::ROOT),
    (b"var/apache", target::ROOT),
    (b"var/local/", target::ROOT),
    (b"usr/local/", target::ROOT),
    (b"usr/pkg/", target::ROOT),
    (b"usr/lib/", target::ROOT),
    (b"usr/apache", target::ROOT),
    (b"usr/bin/", target::ROOT),
    (b"usr/sbin/", target::ROOT),
    (b"usr/share/", target::ROOT),
    (b"var/", target::ROOT),
    (b"usr/", target::ROOT),
    (b"tmp/", target::ROOT),
    (b"private/etc/", target::SYSTEM),
    (b"private/var/", target::ROOT),
    (b"private/tmp/", target::ROOT),
    (b"volumes/", target::ROOT),
    (b"windows/", target::SYSTEM),
    (b"winnt/", target::SYSTEM),
    (b"inetpub/", target::SYSTEM),
    (b"xampp/", target::ROOT),
    (b"wamp/", target::ROOT),
    (b"wamp64/", target::ROOT),
    (b"program files", target::ROOT),
    (b"documents and settings", target::ROOT),
    (b"programdata/", target::ROOT),
    // Configuration and log files.
    (b".htaccess", target::FILE),
    (b".netrc", target::FILE),
    (b".rhosts", target::FILE),
    (b".shosts", target::FILE),
    (b".cshrc", target::FILE),
    (b".forward", target::FILE),
    (b".xauthority", target::FILE),
    (b".sh_history", target::FILE),
    (b".passwd", target::FILE),
    (b"master.passwd", target::FILE),
    (b"sess_", target::FILE),
    (b".bash_history", target::FILE),
    (b".bash_profile", target::FILE),
    (b".bashrc", target::FILE),
    (b".mysql_history", target::FILE),
    (b".profile", target::FILE),
    (b".env", target::FILE),
    (b".git/", target::FILE),
    (b".svn/", target::FILE),
    (b"httpd.conf", target::FILE),
    (b"apache2.conf", target::FILE),
    (b"nginx.conf", target::FILE),
    (b"php.ini", target::FILE),
    (b"my.cnf", target::FILE),
    (b"my.ini", target::FILE),
    (b"web.config", target::FILE),
    (b"web.xml", target::FILE),
    (b"config.php", target::FILE),
    (b"configuration.php", target::FILE),
    (b"settings.php", target::FILE),
    (b"localstart.asp", target::FILE),
    (b"autoexec.bat", target::FILE),
    (b"access.log", target::FILE),
    (b"access_log", target::FILE),
    (b"error.log", target::FILE),
    (b"error_log", target::FILE),
    (b"sysprep.xml", target::FILE),
    (b"unattend.xml", target::FILE),
];

/// [`TARGETS`] grouped by first byte, each group in table order: the patterns of byte `b` are the indices
/// `order[start[b]..start[b + 1]]`, so a component start is only tried against the few patterns it can begin.
struct TargetIndex {
    /// Indices into [`TARGETS`], stably sorted by their pattern's first byte.
    order: [u8; TARGET_TABLE.len()],
    /// Where each first byte's group starts in `order` (257 entries: the last one ends the last group).
    start: [u16; 257],
    /// Per first byte, bit `b & 31` set for each second byte `b` its patterns have (every bit when one has a
    /// separator there): most words are rejected before any pattern is tried.
    second: [u32; 256],
}

/// The [`TargetIndex`] of [`TARGETS`].
// Evaluated at compile time: an index out of range fails the build, it cannot panic at run time.
#[allow(clippy::indexing_slicing, clippy::cast_possible_truncation, clippy::as_conversions)]
static TARGET_INDEX: TargetIndex = {
    assert!(TARGET_TABLE.len() < 256, "target indices are bytes");
    // Counting sort by first byte: counts, then running starts, then each index placed in table order.
    let mut start = [0u16; 257];
    let mut k = 0;
    while k < TARGET_TABLE.len() {
        let first = TARGET_TABLE[k].0[0] as usize;
        start[first + 1] += 1;
        k += 1;
    }
    let mut b = 0;
    while b < 256 {
        start[b + 1] += start[b];
        b += 1;
    }
    let mut next = start;
    let mut order = [0u8; TARGET_TABLE.len()];
    let mut k = 0;
    while k < TARGET_TABLE.len() {
        let first = TARGET_TABLE[k].0[0] as usize;
        order[next[first] as usize] = k as u8;
        next[first] += 1;
        k += 1;
    }
    let mut second = [0u32; 256];
    let mut k = 0;
    while k < TARGET_TABLE.len() {
        let pattern = TARGET_TABLE[k].0;
        let first = pattern[0] as usize;
        second[first] |= if pattern.len() < 2 || pattern[1] == b'/' { u32::MAX } else { 1 << (pattern[1] & 31) };
        k += 1;
    }
    TargetIndex { order, start, second }
};

/// Whether a [`TARGETS`] pattern may match at `i`, judged by its first two bytes (no false "no").
pub(in crate::attacks) fn target_possible(text: &[u8], i: usize) -> bool {
    let second = TARGET_INDEX.second.get(usize::from(lc(text, i))).copied().unwrap_or(0);
    second >> (lc(text, i + 1) & 31) & 1 != 0
}

/// The weight of the heaviest [`TARGETS`] pattern matching at `i` (0 if none), and where the match ends; of equally
/// heavy patterns, the first in the table.
pub(in crate::attacks) fn target_at(text: &[u8], i: usize) -> (u8, usize) {
    let first = usize::from(lc(text, i));
    if !target_possible(text, i) {
        return (0, i);
    }
    let (Some(&from), Some(&to)) = (TARGET_INDEX.start.get(first), TARGET_INDEX.start.get(first + 1)) else {
        return (0, i);
    };
    let group = TARGET_INDEX.order.get(usize::from(from)..usize::from(to)).unwrap_or_default();
    let second = lc(text, i + 1);
    let mut best = (0, i);
    for &k in group {
        let Some((pattern, weight)) = TARGETS.get(usize::from(k)) else {
            continue;
        };
        if *weight <= best.0 {
            continue;
        }
        // A second byte that differs (other than a separator's) fails the pattern before it is walked.
        if pattern.get(1).is_some_and(|&p| p != b'/' && p != second) {
            continue;
        }
        if let Some(end) = match_path(text, i, pattern) {
            // A name must end there (`etc/passwd` but not `etc/passwdx`; `etc/` already ends with a separator).
            let last = pattern.last().copied().unwrap_or(b'/');
            if last == b'/' || !is_word(lc(text, end)) {
                best = (*weight, end);
            }
        }
    }
    best
}

/// Matches `pattern` at `i`: its `/` matches one or more separators of any kind, with `./` steps between them.
fn match_path(text: &[u8], mut i: usize, pattern: &[u8]) -> Option<usize> {
    for &p in pattern {
        if p == b'/' {
            let mut seen = false;
            loop {
                let len = sep_len(text, i);
                if len > 0 {
                    seen = true;
                    i += len;
                } else if seen && lc(text, i) == b'.' && sep_len(text, i + 1) > 0 {
                    i += 1;
                } else {
                    break;
                }
            }
            if !seen {
                return None;
            }
        } else if lc(text, i) == p {
            i += 1;
        } else {
            return None;
        }
    }
    Some(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_sorted_for_binary_search() {
        assert!(COMMANDS.windows(2).all(|w| matches!(w, [a, b] if a.0 < b.0)));
        assert!(CODE_CALLS.windows(2).all(|w| matches!(w, [a, b] if a < b)));
        assert!(COMMANDS.iter().all(|(name, flags)| !name.is_empty() && flags & cmd::STRENGTH != 0));
    }

    /// [`target_at`] as a walk over the whole table, for comparison with the indexed one.
    fn target_at_linear(text: &[u8], i: usize) -> (u8, usize) {
        let mut best = (0, i);
        for (pattern, weight) in TARGETS {
            if *weight <= best.0 {
                continue;
            }
            if let Some(end) = match_path(text, i, pattern) {
                let last = pattern.last().copied().unwrap_or(b'/');
                if last == b'/' || !is_word(lc(text, end)) {
                    best = (*weight, end);
                }
            }
        }
        best
    }

    #[test]
    fn the_first_byte_index_finds_what_the_whole_table_does() {
        let mut rng = crate::token_analysis::test_rng::Rng(0x7a26_e7c1);
        let mut below = |n: usize| (rng.next() % n as u64) as usize;
        for _ in 0..20_000 {
            let mut text = Vec::new();
            for _ in 0..below(4) {
                let (pattern, _) = TARGETS.get(below(TARGETS.len())).copied().unwrap_or_default();
                let cut = below(pattern.len() + 1);
                text.extend_from_slice(pattern.get(..cut).unwrap_or_default());
                text.extend_from_slice([&b"/"[..], b"\\", b"x", b"", b"A"].get(below(5)).copied().unwrap_or_default());
            }
            for i in 0..=text.len() {
                assert_eq!(
                    target_at(&text, i),
                    target_at_linear(&text, i),
                    "{:?} at {i}",
                    String::from_utf8_lossy(&text)
                );
            }
        }
    }

    #[test]
    fn targets_match_any_separator() {
        assert_eq!(target_at(b"etc/passwd", 0).0, target::SECRET);
        assert_eq!(target_at(b"ETC\\Passwd", 0).0, target::SECRET);
        assert_eq!(target_at(b"etc//./passwd", 0).0, target::SECRET);
        assert_eq!(target_at("etc\u{2215}passwd".as_bytes(), 0).0, target::SECRET);
        assert_eq!(target_at(b"etc/passwords", 0).0, target::SYSTEM);
        assert_eq!(target_at(b"usr/share/x", 0).0, target::ROOT);
        assert_eq!(target_at(b"etcetera", 0).0, 0);
        assert_eq!(target_at(b"etc\xc0\xafpasswd", 0).0, target::SECRET);
        assert_eq!(target_at(b"etc\xc0\x2fpasswd", 0).0, target::SECRET);
        assert_eq!(target_at(b"etc\xe0\x80\xafpasswd", 0).0, target::SECRET);
        assert_eq!(dot_len(b"\xf0\x80\x80\xae", 0), 4);
        assert_eq!(sep_len(b"\xc1\x9c", 0), 2);
        assert_eq!(sep_len(b"\xc1\xaf", 0), 2);
        assert_eq!(sep_len(b"\xc0\x5c", 0), 2);
        assert_eq!(sep_len(b"\xc0\x41", 0), 0);
        assert_eq!(dot_len(b"\xf0\x80\x80", 0), 0);
        assert_eq!(command(b"whoami"), Some(3 | cmd::WIN | cmd::SOLO));
        assert_eq!(command(b"whoam"), None);
        assert_eq!(command(b""), None);
        for (name, flags) in COMMANDS {
            assert_eq!(command(name), Some(*flags));
            assert_eq!(
                command(&[name, &b"x"[..]].concat()),
                COMMANDS.iter().find(|(n, _)| *n == [name, &b"x"[..]].concat()).map(|(_, f)| *f)
            );
        }
    }
}
