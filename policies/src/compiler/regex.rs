//! `matches` patterns to serialized dense DFAs, one per distinct pattern.

use regex_automata::dfa::{dense, StartKind};
use regex_automata::util::syntax;

use crate::bundle::MAX_DFAS;

/// Largest DFA, and largest determinization working set, per pattern: a pathological regex is a compile error,
/// not a bundle that every Envoy worker has to hold.
pub(crate) const DFA_SIZE_LIMIT: usize = 2 * 1024 * 1024;

/// The DFAs of one policy, in first-use order, deduplicated by pattern text.
#[derive(Debug, Default)]
pub(crate) struct Regexes {
    patterns: Vec<String>,
    dfas: Vec<Vec<u8>>,
}

impl Regexes {
    /// The DFA number for `pattern`, building it on first use. The error is the message only.
    pub(crate) fn intern(&mut self, pattern: &str) -> Result<u32, String> {
        if let Some(index) = self.patterns.iter().position(|p| p == pattern) {
            return u32::try_from(index).map_err(|_| too_many());
        }
        if self.dfas.len() >= MAX_DFAS {
            return Err(too_many());
        }
        let bytes = build(pattern)?;
        let index = u32::try_from(self.dfas.len()).map_err(|_| too_many())?;
        self.patterns.push(pattern.to_owned());
        self.dfas.push(bytes);
        Ok(index)
    }

    /// The serialized DFAs, indexed by `Node::Matches::dfa`.
    pub(crate) fn into_dfas(self) -> Vec<Vec<u8>> {
        self.dfas
    }
}

fn too_many() -> String {
    format!("too many distinct regexes (at most {MAX_DFAS} per policy)")
}

/// What the compiler needs to know about a pattern's matches, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MatchLengths {
    /// The shortest match (`Some(0)`: the pattern can match the empty string).
    pub min: Option<usize>,
    /// The longest match; `None` when unbounded.
    pub max: Option<usize>,
}

/// Parses a `matches` pattern, refusing what a DFA cannot search. The error is a one-line `bad regex: ...` message.
pub(crate) fn parse_pattern(pattern: &str) -> Result<MatchLengths, String> {
    parse_with(pattern, &syntax::Config::new())
}

/// Parses a custom classifier's pattern as the scan set compiles it: like [`parse_pattern`], except that a match
/// need not be valid UTF-8 (`(?-u:[^0-9])` may match any byte), since bodies are bytes.
pub(crate) fn parse_classifier_pattern(pattern: &str) -> Result<MatchLengths, String> {
    parse_with(pattern, &syntax::Config::new().utf8(false))
}

fn parse_with(pattern: &str, config: &syntax::Config) -> Result<MatchLengths, String> {
    // regex-syntax's errors are multi-line diagrams; keep their one-line summary.
    let hir = syntax::parse_with(pattern, config).map_err(|e| format!("bad regex: {}", summary(&e.to_string())))?;
    if hir.properties().look_set().contains_word_unicode() {
        return Err("bad regex: Unicode word boundaries (\\b, \\B) cannot be compiled to a DFA; \
                    use (?-u:\\b) for an ASCII word boundary"
            .to_owned());
    }
    Ok(MatchLengths { min: hir.properties().minimum_len(), max: hir.properties().maximum_len() })
}

/// Builds and serializes (little-endian, padding stripped: the loader realigns) the DFA for `pattern`.
fn build(pattern: &str) -> Result<Vec<u8>, String> {
    // Parse first, for the one-line errors and the word-boundary check.
    parse_pattern(pattern)?;
    let config = dense::Config::new()
        .start_kind(StartKind::Unanchored)
        .dfa_size_limit(Some(DFA_SIZE_LIMIT))
        .determinize_size_limit(Some(DFA_SIZE_LIMIT));
    let dfa = dense::Builder::new().configure(config).build(pattern).map_err(|e| {
        if e.is_size_limit_exceeded() {
            format!("bad regex: too large for a DFA (over the {} MiB limit)", DFA_SIZE_LIMIT / (1024 * 1024))
        } else {
            format!("bad regex: {}", summary(&e.to_string()))
        }
    })?;
    let (bytes, padding) = dfa.to_bytes_little_endian();
    bytes.get(padding..).map(<[u8]>::to_vec).ok_or_else(|| "bad regex: cannot serialize its DFA".to_owned())
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
    use regex_automata::dfa::Automaton;
    use regex_automata::Input;

    use super::*;

    fn is_match(bytes: &[u8], haystack: &[u8]) -> bool {
        // Realign as the loader does: regex-automata needs 4-byte aligned bytes.
        let mut buf = vec![0u8; bytes.len() + 3];
        let offset = buf.as_ptr().align_offset(4);
        let aligned = &mut buf[offset..offset + bytes.len()];
        aligned.copy_from_slice(bytes);
        let (dfa, _) = dense::DFA::from_bytes(aligned).unwrap();
        dfa.try_search_fwd(&Input::new(haystack).earliest(true)).unwrap().is_some()
    }

    #[test]
    fn unanchored_case_insensitive_search() {
        let mut r = Regexes::default();
        let i = r.intern("(?i)(sqlmap|nikto)").unwrap();
        let j = r.intern("^/api/v[0-9]+/export").unwrap();
        assert_eq!((i, j), (0, 1));
        assert_eq!(r.intern("(?i)(sqlmap|nikto)").unwrap(), 0, "identical patterns share one DFA");
        let dfas = r.into_dfas();
        assert!(is_match(&dfas[0], b"Mozilla SQLMap/1.7"));
        assert!(!is_match(&dfas[0], b"curl/8"));
        assert!(is_match(&dfas[1], b"/api/v2/export?x=1"));
        assert!(!is_match(&dfas[1], b"/x/api/v2/export"));
        assert!(!is_match(&dfas[0], b"\xff\xfe sqlma"));
    }

    #[test]
    fn errors() {
        let mut r = Regexes::default();
        assert_eq!(r.intern("(abc").unwrap_err(), "bad regex: unclosed group");
        assert_eq!(
            r.intern(r"\bword\b").unwrap_err(),
            "bad regex: Unicode word boundaries (\\b, \\B) cannot be compiled to a DFA; \
             use (?-u:\\b) for an ASCII word boundary"
        );
        assert!(r.intern(r"(?-u:\b)word(?-u:\b)").is_ok());
        assert_eq!(parse_pattern("EMP-[0-9]{6}|x"), Ok(MatchLengths { min: Some(1), max: Some(10) }));
        assert_eq!(parse_pattern("é+").unwrap().max, None);
        assert_eq!(parse_pattern("a?").unwrap().min, Some(0));
        assert!(parse_pattern("(?-u:[^0-9])").is_err());
        assert_eq!(parse_classifier_pattern("(?-u:[^0-9])").unwrap().max, Some(1));
        assert_eq!(
            r.intern(r"\w{200}[a-z]{50}\w{200}").unwrap_err(),
            "bad regex: too large for a DFA (over the 2 MiB limit)"
        );
    }
}
