//! Fleet status: what each Envoy reports it enforces, kept by the server and shown by `portcullis status`.
//!
//! Filters `POST /v1/status` a small JSON report. The server validates and bounds it, stamps `reported_at`, and
//! keeps the last report per node in memory and in `DATA_DIR/status/<node>.json`, so every replica sharing the
//! directory answers `GET /v1/status` with the whole fleet. Reports are not authenticated: they only inform, and
//! their size and number are bounded ([`MAX_REPORT_BYTES`], [`MAX_NODES`], the oldest report evicted first).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::names;
use crate::store;

/// Largest report body accepted, in bytes.
pub const MAX_REPORT_BYTES: usize = 4096;
/// Most nodes remembered; a report from a new node past it evicts the node that reported least recently.
pub const MAX_NODES: usize = 10_000;
/// Longest node id, in bytes.
const MAX_NODE_LEN: usize = 128;
/// Longest `last_error`, in bytes.
const MAX_ERROR_LEN: usize = 512;
/// Longest `filter_version`, in bytes.
const MAX_VERSION_LEN: usize = 64;

/// A report as the filter sends it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The node's id (e.g. the Envoy's `--service-node` or pod name).
    pub node: String,
    /// The bundle name it fetches.
    pub bundle: String,
    /// The revision it enforces, if any.
    pub revision: Option<u64>,
    /// The content digest of the bundle it enforces, if any.
    pub sha256: Option<String>,
    /// When it last fetched successfully, Unix milliseconds of its own clock.
    pub last_fetch_ok_ms: Option<u64>,
    /// Its last fetch or load error, cleared by a success.
    pub last_error: Option<String>,
    /// The filter's version.
    pub filter_version: String,
}

/// A report as stored and served: the report plus when the server received it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// What the node reported (validated, control characters in `last_error` replaced).
    #[serde(flatten)]
    pub report: Report,
    /// When the server received the report, RFC 3339 UTC.
    pub reported_at: String,
    /// The same instant in Unix milliseconds, for computing ages.
    pub reported_at_ms: u64,
}

/// The newest pushed revision of one bundle, in [`FleetView::bundles`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latest {
    /// The current revision.
    pub revision: u64,
    /// Its content digest.
    pub sha256: String,
}

/// The body of `GET /v1/status`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FleetView {
    /// The server's clock, Unix milliseconds: ages are computed against it, not the operator's clock.
    pub now_ms: u64,
    /// The current revision of every bundle name.
    pub bundles: BTreeMap<String, Latest>,
    /// Every node's last report, by node id.
    pub nodes: Vec<NodeStatus>,
}

impl Report {
    /// Checks every field's form and bounds, and stamps the report with the receive time.
    ///
    /// # Errors
    ///
    /// A message naming the first field that is wrong.
    pub fn validate(self, now_ms: u64, now_rfc3339: String) -> Result<NodeStatus, String> {
        if !is_node_id(&self.node) {
            return Err("node: use 1 to 128 of A-Z a-z 0-9 . _ : - starting with a letter or digit".to_owned());
        }
        if !names::is_valid(&self.bundle) {
            return Err(format!("bundle: {}", names::invalid_message(&self.bundle)));
        }
        if self.sha256.as_deref().is_some_and(|s| !crate::datadir::is_object_name(s)) {
            return Err("sha256: must be 64 lower-case hex digits or null".to_owned());
        }
        if self.last_error.as_deref().is_some_and(|e| e.len() > MAX_ERROR_LEN) {
            return Err(format!("last_error: longer than {MAX_ERROR_LEN} bytes"));
        }
        let version_ok = (1..=MAX_VERSION_LEN).contains(&self.filter_version.len())
            && self.filter_version.bytes().all(|b| b.is_ascii_graphic());
        if !version_ok {
            return Err(format!("filter_version: use 1 to {MAX_VERSION_LEN} printable ASCII characters"));
        }
        // Control characters would let a report rewrite the operator's terminal.
        let last_error = self.last_error.map(|e| e.chars().map(|c| if c.is_control() { ' ' } else { c }).collect());
        Ok(NodeStatus { report: Report { last_error, ..self }, reported_at: now_rfc3339, reported_at_ms: now_ms })
    }
}

/// Node ids become file names: plain ASCII, no `/`, not hidden.
fn is_node_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.len() <= MAX_NODE_LEN
        && bytes.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// The server's store of reports.
pub struct Fleet {
    dir: PathBuf,
    nodes: Mutex<HashMap<String, NodeStatus>>,
}

impl Fleet {
    /// The reports in `dir` (`DATA_DIR/status`), loaded into memory.
    pub fn load(dir: PathBuf) -> Fleet {
        let fleet = Fleet { dir, nodes: Mutex::new(HashMap::new()) };
        // Unreadable files are skipped here and retried on the next GET.
        let _ = fleet.all();
        fleet
    }

    /// Records `status` as its node's last report, evicting the least recent node past [`MAX_NODES`].
    ///
    /// # Errors
    ///
    /// If the report cannot be written; memory is updated regardless.
    pub fn record(&self, status: NodeStatus) -> io::Result<()> {
        let bytes = serde_json::to_vec(&status).map_err(io::Error::other)?;
        let node = status.report.node.clone();
        let evicted = {
            let mut nodes = self.lock();
            nodes.insert(node.clone(), status);
            if nodes.len() > MAX_NODES {
                oldest(&nodes).inspect(|old| {
                    nodes.remove(old);
                })
            } else {
                None
            }
        };
        if let Some(old) = evicted {
            let _ = fs::remove_file(self.path(&old));
        }
        // No fsync: a report lost in a crash is re-sent within one reporting interval.
        store::replace_quickly(&self.path(&node), &store::temp_path(&self.dir, &node), &bytes)
    }

    /// Every node's last report, read from the directory (so reports received by other replicas are included),
    /// sorted by node id.
    ///
    /// # Errors
    ///
    /// If the directory cannot be listed.
    pub fn all(&self) -> io::Result<Vec<NodeStatus>> {
        let mut found = HashMap::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let file_name = entry.file_name();
            let Some(node) = file_name.to_str().and_then(|n| n.strip_suffix(".json")).filter(|n| is_node_id(n)) else {
                continue;
            };
            let status = fs::read(entry.path()).ok().and_then(|b| serde_json::from_slice::<NodeStatus>(&b).ok());
            if let Some(status) = status.filter(|s| s.report.node == node) {
                found.insert(status.report.node.clone(), status);
            }
        }
        let mut evicted = Vec::new();
        while found.len() > MAX_NODES {
            let Some(old) = oldest(&found) else { break };
            found.remove(&old);
            evicted.push(old);
        }
        for old in &evicted {
            let _ = fs::remove_file(self.path(old));
        }
        let mut nodes: Vec<NodeStatus> = found.values().cloned().collect();
        *self.lock() = found;
        nodes.sort_by(|a, b| a.report.node.cmp(&b.report.node));
        Ok(nodes)
    }

    fn path(&self, node: &str) -> PathBuf {
        self.dir.join(format!("{node}.json"))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, NodeStatus>> {
        self.nodes.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn oldest(nodes: &HashMap<String, NodeStatus>) -> Option<String> {
    nodes.values().min_by_key(|s| (s.reported_at_ms, s.report.node.clone())).map(|s| s.report.node.clone())
}

/// What `portcullis status` says about a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Reporting, no error, on the newest revision.
    Ok,
    /// No report within the staleness threshold.
    Stale,
    /// Reports an error.
    Failing,
    /// Enforces an older revision than the newest pushed (or none).
    Behind,
}

impl State {
    /// The word in the table.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Stale => "stale",
            State::Failing => "failing",
            State::Behind => "behind",
        }
    }

    /// The state of `node` at `now_ms`, given the newest revisions and the staleness threshold. The first that
    /// applies wins: stale, failing, behind, ok.
    pub fn of(node: &NodeStatus, bundles: &BTreeMap<String, Latest>, now_ms: u64, stale_after_ms: u64) -> State {
        if now_ms.saturating_sub(node.reported_at_ms) > stale_after_ms {
            return State::Stale;
        }
        if node.report.last_error.is_some() {
            return State::Failing;
        }
        match bundles.get(&node.report.bundle) {
            Some(latest) if node.report.revision.is_none_or(|r| r < latest.revision) => State::Behind,
            _ => State::Ok,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(node: &str) -> Report {
        Report {
            node: node.to_owned(),
            bundle: "demo".to_owned(),
            revision: Some(5),
            sha256: Some("ab".repeat(32)),
            last_fetch_ok_ms: Some(1),
            last_error: None,
            filter_version: "0.1.0".to_owned(),
        }
    }

    #[test]
    fn validation_bounds_every_field() {
        assert!(report("envoy-1.ns:8080").validate(1, "t".into()).is_ok());
        for node in ["", ".x", "a/b", "a b", &"a".repeat(129)] {
            assert!(report(node).validate(1, "t".into()).unwrap_err().starts_with("node:"), "{node}");
        }
        let mut bad = report("n");
        bad.sha256 = Some("XY".into());
        assert!(bad.validate(1, "t".into()).unwrap_err().starts_with("sha256:"));
        let mut bad = report("n");
        bad.last_error = Some("e".repeat(513));
        assert!(bad.validate(1, "t".into()).unwrap_err().starts_with("last_error:"));
        let mut escaped = report("n");
        escaped.last_error = Some("bad\x1b[2Jthing".into());
        assert_eq!(escaped.validate(1, "t".into()).unwrap().report.last_error.as_deref(), Some("bad [2Jthing"));
    }

    #[test]
    fn states_in_order_of_precedence() {
        let bundles = BTreeMap::from([("demo".to_owned(), Latest { revision: 6, sha256: String::new() })]);
        let mut node = report("n").validate(1_000, "t".into()).unwrap();
        assert_eq!(State::of(&node, &bundles, 2_000, 5_000), State::Behind);
        node.report.revision = Some(6);
        assert_eq!(State::of(&node, &bundles, 2_000, 5_000), State::Ok);
        node.report.last_error = Some("timeout".into());
        assert_eq!(State::of(&node, &bundles, 2_000, 5_000), State::Failing);
        assert_eq!(State::of(&node, &bundles, 7_000, 5_000), State::Stale);
    }

    #[test]
    fn records_share_the_directory_and_stay_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let a = Fleet::load(dir.path().to_owned());
        let b = Fleet::load(dir.path().to_owned());
        a.record(report("n1").validate(1, "t".into()).unwrap()).unwrap();
        let seen = b.all().unwrap();
        assert_eq!(seen.iter().map(|s| s.report.node.as_str()).collect::<Vec<_>>(), ["n1"]);
    }
}
