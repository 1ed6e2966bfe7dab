//! Positions in the policy file: line/column arithmetic, and mapping an offset inside a scalar's decoded value
//! back to the file (through quotes, escapes, folding and indentation).

/// Line starts of a source text, for converting between byte offsets and 1-based line/column (in characters).
pub(crate) struct SourceMap<'s> {
    text: &'s str,
    line_starts: Vec<usize>,
}

impl<'s> SourceMap<'s> {
    /// Indexes `text`.
    pub(crate) fn new(text: &'s str) -> SourceMap<'s> {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceMap { text, line_starts }
    }

    /// The byte offset of 1-based `line` and 0-based character column `col` (clamped to the text).
    pub(crate) fn offset(&self, line: usize, col: usize) -> usize {
        let start = self.line_starts.get(line.saturating_sub(1)).copied().unwrap_or(self.text.len());
        let rest = self.text.get(start..).unwrap_or_default();
        rest.char_indices().nth(col).map_or(self.text.len(), |(i, _)| start + i)
    }

    /// The 1-based line and column (in characters) of byte offset `offset`.
    pub(crate) fn position(&self, offset: usize) -> (usize, usize) {
        let line = self.line_starts.partition_point(|&start| start <= offset).max(1);
        let start = self.line_starts.get(line - 1).copied().unwrap_or(0);
        let column = self.text.get(start..offset).map_or(0, |s| s.chars().count());
        (line, column + 1)
    }

    /// The text from `start` (a byte offset) to the end.
    pub(crate) fn rest(&self, start: usize) -> &'s str {
        self.text.get(start..).unwrap_or_default()
    }
}

/// The byte offset in the file of byte `target` of a scalar's decoded `value`, the scalar's text starting at
/// `raw` (the rest of the file from the scalar's first character: a quote, or the first content character).
///
/// Walks the raw text and the value side by side: characters that match advance both; a quote's escapes and
/// doubled quotes decode to one value character; whitespace in the raw text that folding or indentation removed
/// is skipped. When the two cannot be followed any further, it returns the last position it could follow.
pub(crate) fn offset_in_scalar(raw: &str, value: &str, target: usize) -> usize {
    let raw_chars: Vec<(usize, char)> = raw.char_indices().collect();
    let quote = match raw_chars.first() {
        Some(&(_, q @ ('"' | '\''))) => Some(q),
        _ => None,
    };
    let mut r = usize::from(quote.is_some());
    let at = |r: usize| raw_chars.get(r).map_or(raw.len(), |&(o, _)| o);
    for (vi, vc) in value.char_indices() {
        // Raw characters that decode to `vc`, once the skipped ones are passed.
        let consumed = loop {
            let Some(&(_, rc)) = raw_chars.get(r) else { return at(r) };
            let next = raw_chars.get(r + 1).map(|&(_, c)| c);
            match (quote, rc) {
                // An escaped line break joins lines and stands for no character.
                (Some('"'), '\\') if matches!(next, Some('\n' | '\r')) => r += 2,
                (Some('"'), '\\') => {
                    break match next {
                        Some('x') => 4,
                        Some('u') => 6,
                        Some('U') => 10,
                        _ => 2,
                    };
                }
                (Some('\''), '\'') if next == Some('\'') => break 2,
                _ if rc == vc => break 1,
                // A line break folded to a space (or kept); indentation is skipped on the next character.
                _ if rc.is_whitespace() && vc.is_whitespace() => break 1,
                _ if rc.is_whitespace() => r += 1,
                _ => return at(r),
            }
        };
        if vi >= target {
            return at(r);
        }
        r += consumed;
    }
    at(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where byte `target` of `value` lands in `raw`, as the text from there.
    fn land<'r>(raw: &'r str, value: &str, target: usize) -> &'r str {
        &raw[offset_in_scalar(raw, value, target)..]
    }

    #[test]
    fn positions_round_trip() {
        let map = SourceMap::new("ab\nçd\n\nx");
        assert_eq!(map.position(0), (1, 1));
        assert_eq!(map.position(3), (2, 1));
        assert_eq!(map.position(5), (2, 2));
        assert_eq!(map.position(8), (4, 1));
        assert_eq!(map.offset(2, 1), 5);
        assert_eq!(map.offset(4, 0), 8);
        assert_eq!(map.offset(9, 0), 9);
    }

    #[test]
    fn plain_and_quoted() {
        assert_eq!(land("a == bad\n", "a == bad", 5), "bad\n");
        assert_eq!(land(r#""x[\"k\"] == bad" # c"#, r#"x["k"] == bad"#, 10), r#"bad" # c"#);
        assert_eq!(land(r#""\u00e9 \t bad""#, "é \t bad", 5), r#"bad""#);
        assert_eq!(land("'it''s bad'", "it's bad", 5), "bad'");
    }

    #[test]
    fn folded_and_block() {
        assert_eq!(land("a &&\n      bad\n", "a && bad", 5), "bad\n");
        assert_eq!(land("a &&\n  b ||\n  bad\n", "a &&\nb ||\nbad\n", 10), "bad\n");
        assert_eq!(land("\"a \\\n   bad\"", "a bad", 2), "bad\"");
    }
}
