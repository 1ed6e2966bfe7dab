//! Builds the multi-pattern DFA a location scans with.
//!
//! One DFA per location, whatever the number of classifiers: the scanner reads each body byte once. The DFA is
//! unanchored (a candidate may start anywhere) and overlapping (`MatchKind::All`: every end of every pattern is
//! reported, so two classifiers matching the same bytes both see them). The scanner steps it by hand and confirms
//! candidates itself, so nothing here depends on leftmost semantics.

use regex_automata::dfa::{dense, StartKind};
use regex_automata::nfa::thompson;
use regex_automata::util::syntax;
use regex_automata::MatchKind;

/// Largest scan-set DFA, and largest determinization working set: every worker holds one per location.
pub(crate) const SCAN_SET_SIZE_LIMIT: usize = 8 * 1024 * 1024;

/// Builds one unanchored, overlapping (`MatchKind::All`) dense DFA over `patterns` (pattern `i` belongs to
/// classifier `patterns[i].1`) and returns its serialized bytes (little-endian, from the padding offset on) and the
/// classifier index of each pattern.
///
/// Patterns are compiled without the UTF-8 requirement, so `(?-u:[^0-9])` may match any byte (bodies are bytes,
/// not always UTF-8); Unicode classes still work as usual.
///
/// # Errors
///
/// A message (`bad regex: ...`, `too large for a DFA ...`) when a pattern cannot be built.
pub(crate) fn build_scan_set(patterns: &[(&str, u16)]) -> Result<(Vec<u8>, Vec<u16>), String> {
    if patterns.is_empty() {
        return Err("bad regex: a scan set needs at least one pattern".to_owned());
    }
    let syntax_config = syntax::Config::new().utf8(false);
    for (pattern, _) in patterns {
        let hir = syntax::parse_with(pattern, &syntax_config)
            .map_err(|e| format!("bad regex: {}", summary(&e.to_string())))?;
        if hir.properties().look_set().contains_word_unicode() {
            return Err("bad regex: Unicode word boundaries (\\b, \\B) cannot be compiled to a DFA; \
                        use (?-u:\\b) for an ASCII word boundary"
                .to_owned());
        }
    }
    let config = dense::Config::new()
        .match_kind(MatchKind::All)
        .start_kind(StartKind::Unanchored)
        // The scanner steps states itself: acceleration would only make more states special.
        .accelerate(false)
        .dfa_size_limit(Some(SCAN_SET_SIZE_LIMIT))
        .determinize_size_limit(Some(SCAN_SET_SIZE_LIMIT));
    let sources: Vec<&str> = patterns.iter().map(|(p, _)| *p).collect();
    let dfa = dense::Builder::new()
        .configure(config)
        .syntax(syntax_config)
        .thompson(thompson::Config::new().utf8(false))
        .build_many(&sources)
        .map_err(|e| {
            if e.is_size_limit_exceeded() {
                format!(
                    "bad regex: too large for a DFA (the scan set is over the {} MiB limit)",
                    SCAN_SET_SIZE_LIMIT / (1024 * 1024)
                )
            } else {
                format!("bad regex: {}", summary(&e.to_string()))
            }
        })?;
    let (bytes, padding) = dfa.to_bytes_little_endian();
    let bytes = bytes
        .get(padding..)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| "bad regex: cannot serialize the scan set".to_owned())?;
    Ok((bytes, patterns.iter().map(|(_, c)| *c).collect()))
}

/// The `error: ...` line of a regex-syntax message, or the whole message on one line.
fn summary(message: &str) -> String {
    message
        .lines()
        .find_map(|line| line.trim().strip_prefix("error: "))
        .map_or_else(|| message.split_whitespace().collect::<Vec<_>>().join(" "), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::builtin::BUILTINS;

    #[test]
    fn every_builtin_in_one_dfa() {
        let patterns: Vec<(&str, u16)> = BUILTINS.iter().zip(0u16..).map(|(b, i)| (b.pattern, i)).collect();
        let (bytes, classes) = build_scan_set(&patterns).unwrap();
        assert_eq!(classes.len(), BUILTINS.len());
        assert!(bytes.len() < SCAN_SET_SIZE_LIMIT, "{} bytes", bytes.len());
        eprintln!("all built-ins: {} KiB", bytes.len() / 1024);
    }

    #[test]
    fn errors() {
        assert_eq!(build_scan_set(&[("(abc", 0)]).unwrap_err(), "bad regex: unclosed group");
        assert!(build_scan_set(&[(r"\bx\b", 0)]).unwrap_err().contains("Unicode word boundaries"));
        assert!(build_scan_set(&[(r"(?-u:\b)x(?-u:\b)", 0)]).is_ok());
        assert!(build_scan_set(&[(r"\w{100}[a-z]{50}\w{100}\w{50}", 0)]).unwrap_err().contains("too large"));
        assert!(build_scan_set(&[]).is_err());
    }
}
