//! `portcullis history` and `portcullis status`: what was pushed, and what the fleet enforces, as tables.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::client::Client;
use crate::clock;
use crate::datadir::HistoryEntry;
use crate::error::{Error, ErrorKind, Result};
use crate::fleet::{FleetView, State};
use crate::names;

/// The body of `GET /v1/bundles/{name}/history`.
#[derive(Debug, Serialize, Deserialize)]
pub struct History {
    /// The bundle name.
    pub name: String,
    /// Every accepted push, oldest first.
    pub entries: Vec<HistoryEntry>,
}

/// Fetches the history of `name` and renders it as a table, oldest first.
///
/// # Errors
///
/// If the name is invalid, or the server cannot be reached or refuses.
pub fn history(server: &str, name: &str) -> Result<String> {
    if !names::is_valid(name) {
        return Err(Error::new(ErrorKind::Usage, names::invalid_message(name)));
    }
    let history: History = Client::new(server).get_json(&format!("/v1/bundles/{name}/history"))?;
    let rows = history
        .entries
        .iter()
        .map(|e| {
            vec![
                e.revision.to_string(),
                e.pushed_at.clone(),
                e.pushed_by.clone().unwrap_or_else(|| "-".to_owned()),
                e.signed_by.clone().unwrap_or_else(|| "-".to_owned()),
                short(&e.sha256),
                e.rollback_of.map(|r| r.to_string()).unwrap_or_else(|| "-".to_owned()),
            ]
        })
        .collect();
    Ok(table(&["REVISION", "PUSHED AT", "PUSHED BY", "SIGNED BY", "SHA256", "ROLLBACK OF"], rows))
}

/// Fetches the fleet's status and renders it as a table, one node per row.
///
/// # Errors
///
/// If the server cannot be reached or refuses.
pub fn status(server: &str, stale_after: Duration) -> Result<String> {
    let view: FleetView = Client::new(server).get_json("/v1/status")?;
    let stale_after_ms = u64::try_from(stale_after.as_millis()).unwrap_or(u64::MAX);
    let rows = view
        .nodes
        .iter()
        .map(|n| {
            vec![
                n.report.node.clone(),
                n.report.bundle.clone(),
                n.report.revision.map(|r| r.to_string()).unwrap_or_else(|| "-".to_owned()),
                n.report.sha256.as_deref().map(short).unwrap_or_else(|| "-".to_owned()),
                n.report.last_fetch_ok_ms.map(|t| clock::age(view.now_ms, t)).unwrap_or_else(|| "never".to_owned()),
                clock::age(view.now_ms, n.reported_at_ms),
                State::of(n, &view.bundles, view.now_ms, stale_after_ms).as_str().to_owned(),
                n.report.last_error.clone().unwrap_or_else(|| "-".to_owned()),
            ]
        })
        .collect();
    Ok(table(&["NODE", "BUNDLE", "REVISION", "SHA256", "LAST FETCH OK", "LAST REPORT", "STATE", "LAST ERROR"], rows))
}

/// The first 12 hex digits of a digest, as the tables show it.
fn short(sha256: &str) -> String {
    sha256.chars().take(12).collect()
}

/// Left-aligned columns separated by two spaces; the last column is not padded.
fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    let mut out = Vec::with_capacity(rows.len() + 1);
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, width))| if i + 1 == row.len() { cell.clone() } else { format!("{cell:<width$}") })
            .collect();
        out.push(cells.join("  "));
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let t = table(&["A", "BB"], vec![vec!["xyz".into(), "1".into()], vec!["q".into(), "22".into()]]);
        assert_eq!(t, "A    BB\nxyz  1\nq    22");
    }
}
