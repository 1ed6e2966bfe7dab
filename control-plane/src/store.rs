//! Files written so that a reader sees the old bytes or the new bytes, never a mix.

use std::collections::hash_map::RandomState;
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A hidden temporary path in `dir` for `stem`: `dir/.{stem}.tmp-<random>`.
pub fn temp_path(dir: &Path, stem: &str) -> PathBuf {
    dir.join(format!(".{stem}.tmp-{:016x}", random_u64()))
}

/// Writes `bytes` to `target` atomically through `temp` (which must be in the same directory).
///
/// Writes and fsyncs `temp`, renames it over `target`, then fsyncs the directory so that the rename itself
/// survives a crash. The temporary file is removed if any step fails.
///
/// # Errors
///
/// The first I/O error; `target` then still holds its previous contents (or does not exist).
pub fn write_atomically(target: &Path, temp: &Path, bytes: &[u8]) -> io::Result<()> {
    let result = write_then_rename(target, temp, bytes);
    if result.is_err() {
        // Best effort: the write already failed, and a stray hidden file is harmless.
        let _ = fs::remove_file(temp);
    }
    result
}

fn write_then_rename(target: &Path, temp: &Path, bytes: &[u8]) -> io::Result<()> {
    // create_new: never follow or reuse a file someone else put at the temporary name.
    let mut file = OpenOptions::new().write(true).create_new(true).open(temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(temp, target)?;
    sync_parent(target)
}

#[cfg(unix)]
fn sync_parent(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_parent(_path: &Path) -> io::Result<()> {
    // Directories cannot be opened for fsync on this platform; the rename is as durable as it gets.
    Ok(())
}

/// 64 unpredictable-enough bits for temporary names: replicas sharing a directory must not pick the same one.
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // RandomState is seeded from the OS per process; the counter and clock separate calls within one.
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    hasher.write_u32(std::process::id());
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_contents_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("x.bundle");
        write_atomically(&target, &temp_path(dir.path(), "x"), b"one").unwrap();
        write_atomically(&target, &temp_path(dir.path(), "x"), b"two").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn temporary_names_are_hidden_and_distinct() {
        let a = temp_path(Path::new("d"), "x");
        let b = temp_path(Path::new("d"), "x");
        assert_ne!(a, b);
        assert!(a.file_name().unwrap().to_str().unwrap().starts_with(".x.tmp-"));
    }
}
