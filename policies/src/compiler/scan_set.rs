//! Builds the multi-pattern DFA a location scans with (STUB: being written).

/// Builds one unanchored, overlapping (`MatchKind::All`) dense DFA over `patterns` (pattern `i` belongs to
/// classifier `patterns[i].1`) and returns its serialized bytes (little-endian, from the padding offset on) and the
/// classifier index of each pattern.
///
/// # Errors
///
/// A message (`bad regex: ...`, `too large for a DFA ...`) when a pattern cannot be built.
pub(crate) fn build_scan_set(patterns: &[(&str, u16)]) -> Result<(Vec<u8>, Vec<u16>), String> {
    let _ = patterns;
    Err("scan sets are not implemented yet".to_owned())
}
