//! One shared, immutable copy of each served bundle: serving costs neither a read nor a hash per request, and a
//! waiting long poll holds no bytes at all.
//!
//! GET used to read and SHA-256 the whole served file on every request and keep that copy alive while it waited
//! (2.45 MiB per waiter with a 2.5 MB bundle). Now bodies are [`Bytes`] keyed by their SHA-256, which is also
//! their object name and their ETag: every response of one version shares one allocation. A served file is read
//! and hashed once per version, when its identity ([`FileId`]: inode, length, modification time) is one this
//! replica has not read yet, so a push by another replica, or bytes put there by hand, are served exactly as they
//! are on disk. Reads are done one at a time: ten thousand waiters woken by one push cause one read.
//!
//! Memory is bounded: at most [`MAX_BODIES`] bodies (each at most a bundle, 16 MiB) and [`MAX_FILES`] known
//! files; a body dropped from the cache lives on only while responses still send it.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Bytes;
use portcullis_policies::bundle;
use sha2::{Digest, Sha256};

use crate::longpoll::FileId;

/// Most bodies kept: the current version of a few bundle names, and the one being replaced.
pub const MAX_BODIES: usize = 4;
/// Most served files whose identity is remembered; past it the table starts over.
pub const MAX_FILES: usize = 1024;

/// One version of a served file or object.
#[derive(Clone, Debug)]
pub struct Served {
    /// The identity of the file that was read.
    pub id: FileId,
    /// The quoted SHA-256 of the bytes: `"<64 hex>"`, the object's name.
    pub etag: Arc<str>,
    /// The bytes, shared by every response that sends them.
    pub body: Bytes,
}

/// The cache.
#[derive(Default)]
pub struct Objects {
    cache: Mutex<Cache>,
    /// Held while reading a file, so that concurrent misses read it once.
    reading: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Cache {
    /// Served path: the identity last read there and the ETag of its bytes.
    files: HashMap<PathBuf, (FileId, Arc<str>)>,
    /// Bodies by ETag, least recently used first.
    bodies: Vec<(Arc<str>, Bytes)>,
}

impl Cache {
    fn body(&mut self, etag: &str) -> Option<Bytes> {
        let at = self.bodies.iter().position(|(tag, _)| &**tag == etag)?;
        let entry = self.bodies.remove(at);
        let body = entry.1.clone();
        self.bodies.push(entry);
        Some(body)
    }

    fn file(&mut self, path: &Path, id: FileId) -> Option<Served> {
        let (known, etag) = self.files.get(path)?.clone();
        if known != id {
            return None;
        }
        let body = self.body(&etag)?;
        Some(Served { id, etag, body })
    }

    fn insert(&mut self, path: Option<&Path>, served: &Served) {
        if let Some(path) = path {
            if self.files.len() >= MAX_FILES && !self.files.contains_key(path) {
                self.files.clear();
            }
            self.files.insert(path.to_owned(), (served.id, Arc::clone(&served.etag)));
        }
        if self.body(&served.etag).is_none() {
            if self.bodies.len() >= MAX_BODIES {
                self.bodies.remove(0);
            }
            self.bodies.push((Arc::clone(&served.etag), served.body.clone()));
        }
    }
}

impl Objects {
    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What the file at `path` holds now.
    ///
    /// # Errors
    ///
    /// If the file does not exist (`NotFound`) or cannot be read.
    pub async fn served(self: &Arc<Self>, path: &Path) -> io::Result<Served> {
        let owned = path.to_owned();
        let id = blocking(move || std::fs::metadata(owned).map(|m| FileId::of(&m))).await?;
        if let Some(hit) = self.cache().file(path, id) {
            return Ok(hit);
        }
        let _reading = self.reading.lock().await;
        // Another request may have read this version while this one waited for its turn.
        if let Some(hit) = self.cache().file(path, id) {
            return Ok(hit);
        }
        let (objects, owned) = (Arc::clone(self), path.to_owned());
        blocking(move || {
            // The identity and the bytes come from one open descriptor, so they describe the same version.
            let mut file = File::open(&owned)?;
            let id = FileId::of(&file.metadata()?);
            if let Some(hit) = objects.cache().file(&owned, id) {
                return Ok(hit);
            }
            let served = read(&mut file, id)?;
            objects.cache().insert(Some(&owned), &served);
            Ok(served)
        })
        .await
    }

    /// The object named `hash` (checked with [`crate::datadir::is_object_name`]) stored at `path`.
    ///
    /// # Errors
    ///
    /// If the object does not exist (`NotFound`) or cannot be read.
    pub async fn object(self: &Arc<Self>, hash: &str, path: &Path) -> io::Result<(Arc<str>, Bytes)> {
        let etag: Arc<str> = Arc::from(format!("\"{hash}\""));
        if let Some(body) = self.cache().body(&etag) {
            return Ok((etag, body));
        }
        let _reading = self.reading.lock().await;
        if let Some(body) = self.cache().body(&etag) {
            return Ok((etag, body));
        }
        let (objects, owned) = (Arc::clone(self), path.to_owned());
        blocking(move || {
            let mut file = File::open(owned)?;
            let id = FileId::of(&file.metadata()?);
            let served = read(&mut file, id)?;
            // Objects are never rewritten, but a damaged one must not be cached under a name it does not have.
            if served.etag == etag {
                objects.cache().insert(None, &served);
            }
            Ok((etag, served.body))
        })
        .await
    }
}

/// Reads the rest of `file` and names it by its SHA-256.
fn read(file: &mut File, id: FileId) -> io::Result<Served> {
    let mut bytes = Vec::with_capacity(usize::try_from(id.size()).unwrap_or(0));
    file.read_to_end(&mut bytes)?;
    let etag = Arc::from(format!("\"{}\"", bundle::hex(&Sha256::digest(&bytes))));
    Ok(Served { id, etag, body: Bytes::from(bytes) })
}

/// Runs file-system work on the blocking pool.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    tokio::task::spawn_blocking(work).await.map_err(io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().build().unwrap()
    }

    #[test]
    fn one_version_is_read_once_and_shared() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.bundle");
        std::fs::write(&path, b"one").unwrap();
        let objects = Arc::new(Objects::default());
        runtime().block_on(async {
            let a = objects.served(&path).await.unwrap();
            let b = objects.served(&path).await.unwrap();
            assert_eq!(a.body, &b"one"[..]);
            // The same allocation, not a copy.
            assert_eq!(a.body.as_ptr(), b.body.as_ptr());
            assert_eq!(&*a.etag, format!("\"{}\"", bundle::hex(&Sha256::digest(b"one"))));

            // Replaced on disk (as another replica or an operator would): served as it is now.
            let temp = dir.path().join(".x.tmp");
            std::fs::write(&temp, b"two").unwrap();
            std::fs::rename(&temp, &path).unwrap();
            let c = objects.served(&path).await.unwrap();
            assert_eq!(c.body, &b"two"[..]);
            assert_ne!(c.id, a.id);

            // The object of the same bytes shares the body.
            let hash = bundle::hex(&Sha256::digest(b"two"));
            let object = dir.path().join("object");
            std::fs::write(&object, b"two").unwrap();
            let (_, d) = objects.object(&hash, &object).await.unwrap();
            assert_eq!(d.as_ptr(), c.body.as_ptr());
            assert_eq!(objects.served(&dir.path().join("missing")).await.unwrap_err().kind(), io::ErrorKind::NotFound);
        });
    }

    #[test]
    fn bodies_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let objects = Arc::new(Objects::default());
        runtime().block_on(async {
            for i in 0..(MAX_BODIES + 3) {
                let path = dir.path().join(format!("{i}.bundle"));
                std::fs::write(&path, i.to_string()).unwrap();
                objects.served(&path).await.unwrap();
            }
        });
        assert_eq!(objects.cache().bodies.len(), MAX_BODIES);
    }

    #[test]
    fn a_damaged_object_is_served_but_not_cached() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("object");
        std::fs::write(&path, b"not what the name says").unwrap();
        let objects = Arc::new(Objects::default());
        let hash = "a".repeat(64);
        let (etag, _) = runtime().block_on(objects.object(&hash, &path)).unwrap();
        assert_eq!(&*etag, format!("\"{hash}\""));
        assert!(objects.cache().bodies.is_empty());
    }
}
