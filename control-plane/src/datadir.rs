//! The data directory of `portcullis serve`, which replicas may share.
//!
//! ```text
//! DIR/objects/<sha256>.bundle   every bundle accepted, named by the SHA-256 of its file bytes; never rewritten
//! DIR/bundles/<name>.bundle     the file GET serves: a copy of the current object (its ETag is the object's name)
//! DIR/bundles/<name>.current    {"revision","sha256","object"}: the current pointer the revision check reads
//! DIR/history/<name>.jsonl      one JSON line per accepted push, oldest first
//! DIR/status/<node>.json        the last status report of each Envoy
//! DIR/locks/<name>.lock         flock'd by the replica that is checking and publishing <name>
//! ```
//!
//! The served file is a copy rather than a link so that what GET serves stays one plain file, whose identity is
//! checked on every request (and read and hashed once per version, [`crate::objects`]): an operator (or a test)
//! can still put bytes there by hand. Every file is replaced atomically
//! (temporary file, fsync, rename, fsync of the directory); history lines are appended in one write each.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use portcullis_policies::{bundle, signing, Bundle};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock;
use crate::store;

/// The current pointer of a bundle name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pointer {
    /// The revision inside the current bundle.
    pub revision: u64,
    /// The bundle's content digest (the one the filter logs).
    pub sha256: String,
    /// The SHA-256 of the file bytes: the object's name and the served ETag.
    pub object: String,
}

/// One accepted push, as `DIR/history/<name>.jsonl` and `GET /v1/bundles/{name}/history` give it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The revision inside the pushed bundle.
    pub revision: u64,
    /// The bundle's content digest.
    pub sha256: String,
    /// The object holding the pushed bytes (`GET /v1/objects/{object}`).
    pub object: String,
    /// When the server accepted it, RFC 3339 UTC.
    pub pushed_at: String,
    /// The `X-Portcullis-Actor` the pusher named, if any (self-declared, for the audit trail).
    pub pushed_by: Option<String>,
    /// The key id in the signature envelope, if signed (verified only when the server trusts keys).
    pub signed_by: Option<String>,
    /// The revision whose content this push restores, for rollbacks.
    pub rollback_of: Option<u64>,
}

/// How a push relates to rollbacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rollback {
    /// A normal push: the revision must be newer than the current one.
    No,
    /// `?rollback=true`: an older (or equal) revision is accepted and recorded as a rollback to itself.
    Allow,
    /// `?rollback_of=R`: a normal forward push that restores revision `R`'s content (`portcullis rollback`).
    Of(u64),
}

/// A validated upload, ready to publish.
#[derive(Debug)]
pub struct Upload<'a> {
    /// The file bytes as received (signature envelope included).
    pub bytes: &'a [u8],
    /// The revision inside the bundle.
    pub revision: u64,
    /// The bundle's content digest, hex.
    pub sha256: String,
    /// The envelope's key id.
    pub signed_by: Option<String>,
    /// Who pushed, as declared.
    pub pushed_by: Option<String>,
    /// Whether this is a rollback.
    pub rollback: Rollback,
}

/// What [`DataDir::publish`] did.
#[derive(Debug)]
pub enum Outcome {
    /// A new current bundle, recorded in the history.
    Stored(HistoryEntry),
    /// The exact bytes already current: nothing recorded (a retried push), the served file re-checked.
    Unchanged(Pointer),
}

/// Why [`DataDir::publish`] refused.
#[derive(Debug)]
pub enum PublishError {
    /// The revision is not newer than the current one (anti-rollback).
    NotNewer {
        /// The current revision.
        current: u64,
    },
    /// `rollback_of` names a revision that is not in the history, or is not older than the push.
    UnknownRollbackTarget {
        /// The named revision.
        revision: u64,
    },
    /// The file system failed.
    Io(io::Error),
}

impl From<io::Error> for PublishError {
    fn from(e: io::Error) -> Self {
        PublishError::Io(e)
    }
}

/// The data directory.
#[derive(Clone, Debug)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// Opens `root`, creating it and its subdirectories if missing.
    ///
    /// # Errors
    ///
    /// If a directory cannot be created.
    pub fn open(root: &Path) -> io::Result<DataDir> {
        let dir = DataDir { root: root.to_owned() };
        for sub in ["bundles", "objects", "history", "status", "locks"] {
            fs::create_dir_all(dir.root.join(sub))?;
        }
        Ok(dir)
    }

    /// The directory given to `--data-dir`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file served for `name`: `bundles/<name>.bundle`.
    pub fn served_path(&self, name: &str) -> PathBuf {
        self.root.join("bundles").join(format!("{name}.bundle"))
    }

    fn pointer_path(&self, name: &str) -> PathBuf {
        self.root.join("bundles").join(format!("{name}.current"))
    }

    /// The object named `hash` (64 lower-case hex; check with [`is_object_name`] first).
    pub fn object_path(&self, hash: &str) -> PathBuf {
        self.root.join("objects").join(format!("{hash}.bundle"))
    }

    fn history_path(&self, name: &str) -> PathBuf {
        self.root.join("history").join(format!("{name}.jsonl"))
    }

    /// Where status reports live: `status/`.
    pub fn status_dir(&self) -> PathBuf {
        self.root.join("status")
    }

    /// The current pointer of `name`, if it has been pushed.
    ///
    /// # Errors
    ///
    /// If the pointer exists but cannot be read or parsed.
    pub fn read_pointer(&self, name: &str) -> io::Result<Option<Pointer>> {
        match fs::read(self.pointer_path(name)) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(io::Error::other),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every bundle name with a current pointer, and the pointer. Unreadable pointers are skipped.
    ///
    /// # Errors
    ///
    /// If `bundles/` cannot be listed.
    pub fn pointers(&self) -> io::Result<Vec<(String, Pointer)>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(self.root.join("bundles"))? {
            let entry = entry?;
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str().and_then(|n| n.strip_suffix(".current")) else {
                continue;
            };
            if let Ok(Some(pointer)) = self.read_pointer(name) {
                out.push((name.to_owned(), pointer));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// The history of `name`, oldest first; `None` if it was never pushed. Torn or unparsable lines are skipped.
    ///
    /// # Errors
    ///
    /// If the history exists but cannot be read.
    pub fn read_history(&self, name: &str) -> io::Result<Option<Vec<HistoryEntry>>> {
        let text = match fs::read_to_string(self.history_path(name)) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(Some(text.lines().filter_map(|line| serde_json::from_str(line).ok()).collect()))
    }

    /// Publishes `upload` as the current bundle of `name`, under the name's lock.
    ///
    /// In order: the object (if new), the history line, the pointer, the served file. A crash part-way leaves
    /// the previous bundle served, or the new one served with its history recorded; a retried push of the same
    /// bytes then completes the copy ([`Outcome::Unchanged`]).
    ///
    /// # Errors
    ///
    /// [`PublishError::NotNewer`] when the revision is not newer than the current one and no rollback is
    /// allowed, [`PublishError::UnknownRollbackTarget`] for a bad `rollback_of`, or an I/O error.
    pub fn publish(&self, name: &str, upload: &Upload<'_>) -> Result<Outcome, PublishError> {
        let _lock = store::lock_exclusive(&self.root.join("locks").join(format!("{name}.lock")))?;
        let object = bundle::hex(&Sha256::digest(upload.bytes));
        let current = match self.read_pointer(name)? {
            Some(pointer) => Some(pointer),
            None => self.legacy_pointer(name),
        };
        let mut rollback_of = None;
        if let Some(current) = &current {
            if upload.revision == current.revision && object == current.object {
                self.copy_to_served(name, upload.bytes)?;
                return Ok(Outcome::Unchanged(current.clone()));
            }
            if upload.revision <= current.revision {
                if upload.rollback != Rollback::Allow {
                    return Err(PublishError::NotNewer { current: current.revision });
                }
                rollback_of = Some(upload.revision);
            }
        }
        if let Rollback::Of(target) = upload.rollback {
            let known = self.read_history(name)?.unwrap_or_default().iter().any(|e| e.revision == target);
            if target >= upload.revision || !known {
                return Err(PublishError::UnknownRollbackTarget { revision: target });
            }
            rollback_of = Some(target);
        }
        let object_path = self.object_path(&object);
        // Objects are named by their bytes: one that exists already holds exactly these.
        if !object_path.exists() {
            store::write_atomically(
                &object_path,
                &store::temp_path(&self.root.join("objects"), &object),
                upload.bytes,
            )?;
        }
        let entry = HistoryEntry {
            revision: upload.revision,
            sha256: upload.sha256.clone(),
            object: object.clone(),
            pushed_at: clock::rfc3339(clock::now_ms()),
            pushed_by: upload.pushed_by.clone(),
            signed_by: upload.signed_by.clone(),
            rollback_of,
        };
        let mut line = serde_json::to_vec(&entry).map_err(io::Error::other)?;
        line.push(b'\n');
        store::append_durably(&self.history_path(name), &line)?;
        let pointer = Pointer { revision: upload.revision, sha256: upload.sha256.clone(), object };
        let pointer_bytes = serde_json::to_vec(&pointer).map_err(io::Error::other)?;
        let bundles = self.root.join("bundles");
        store::write_atomically(&self.pointer_path(name), &store::temp_path(&bundles, name), &pointer_bytes)?;
        self.copy_to_served(name, upload.bytes)?;
        Ok(Outcome::Stored(entry))
    }

    /// Writes `bytes` as the served file unless it already holds them.
    fn copy_to_served(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let target = self.served_path(name);
        if fs::read(&target).is_ok_and(|served| served == bytes) {
            return Ok(());
        }
        store::write_atomically(&target, &store::temp_path(&self.root.join("bundles"), name), bytes)
    }

    /// A pointer for a served file written before pointers existed, so an upgrade keeps its revision floor.
    fn legacy_pointer(&self, name: &str) -> Option<Pointer> {
        let bytes = fs::read(self.served_path(name)).ok()?;
        let envelope = signing::open(&bytes).ok()?;
        let loaded = Bundle::from_bytes(envelope.bundle).ok()?;
        Some(Pointer {
            revision: loaded.revision(),
            sha256: bundle::hex(loaded.digest()),
            object: bundle::hex(&Sha256::digest(&bytes)),
        })
    }
}

/// Whether `text` can name an object: 64 lower-case hex digits (and so cannot leave `objects/`).
pub fn is_object_name(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_policies::bundle::{encode, BundleContent};

    fn bundle_bytes(revision: u64) -> Vec<u8> {
        encode(&BundleContent { policy_name: "demo".into(), revision, ..Default::default() }).unwrap()
    }

    fn upload(bytes: &[u8], revision: u64, rollback: Rollback) -> Upload<'_> {
        Upload {
            bytes,
            revision,
            sha256: bundle::hex(&bundle::peek_digest(bytes).unwrap()),
            signed_by: None,
            pushed_by: Some("alice".into()),
            rollback,
        }
    }

    #[test]
    fn publishes_objects_pointer_history_and_served_file() {
        let root = tempfile::tempdir().unwrap();
        let dir = DataDir::open(root.path()).unwrap();
        let (one, two) = (bundle_bytes(1), bundle_bytes(2));
        assert!(matches!(dir.publish("demo", &upload(&one, 1, Rollback::No)), Ok(Outcome::Stored(_))));
        assert!(matches!(dir.publish("demo", &upload(&one, 1, Rollback::No)), Ok(Outcome::Unchanged(_))));
        assert!(matches!(dir.publish("demo", &upload(&two, 2, Rollback::No)), Ok(Outcome::Stored(_))));
        assert!(matches!(
            dir.publish("demo", &upload(&one, 1, Rollback::No)),
            Err(PublishError::NotNewer { current: 2 })
        ));
        assert_eq!(fs::read(dir.served_path("demo")).unwrap(), two);
        let pointer = dir.read_pointer("demo").unwrap().unwrap();
        assert_eq!(pointer.revision, 2);
        assert_eq!(fs::read(dir.object_path(&pointer.object)).unwrap(), two);
        let history = dir.read_history("demo").unwrap().unwrap();
        assert_eq!(history.iter().map(|e| e.revision).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(history[0].pushed_by.as_deref(), Some("alice"));

        // Forced: recorded as a rollback to itself.
        let Ok(Outcome::Stored(entry)) = dir.publish("demo", &upload(&one, 1, Rollback::Allow)) else { panic!() };
        assert_eq!(entry.rollback_of, Some(1));
        // A forward push restoring an old revision must name one that exists and is older.
        let three = bundle_bytes(3);
        assert!(matches!(
            dir.publish("demo", &upload(&three, 3, Rollback::Of(9))),
            Err(PublishError::UnknownRollbackTarget { revision: 9 })
        ));
        let Ok(Outcome::Stored(entry)) = dir.publish("demo", &upload(&three, 3, Rollback::Of(2))) else { panic!() };
        assert_eq!(entry.rollback_of, Some(2));
        assert_eq!(dir.pointers().unwrap(), [("demo".to_owned(), dir.read_pointer("demo").unwrap().unwrap())]);
    }

    #[test]
    fn a_served_file_without_pointer_sets_the_revision_floor() {
        let root = tempfile::tempdir().unwrap();
        let dir = DataDir::open(root.path()).unwrap();
        fs::write(dir.served_path("old"), bundle_bytes(5)).unwrap();
        assert!(matches!(
            dir.publish("old", &upload(&bundle_bytes(4), 4, Rollback::No)),
            Err(PublishError::NotNewer { current: 5 })
        ));
        assert!(dir.publish("old", &upload(&bundle_bytes(6), 6, Rollback::No)).is_ok());
    }

    #[test]
    fn object_names_are_plain_hex() {
        assert!(is_object_name(&"a1".repeat(32)));
        assert!(!is_object_name(&"A1".repeat(32)) && !is_object_name("../x") && !is_object_name(&"a".repeat(63)));
    }
}
