//! Files written so that a reader sees the old bytes or the new bytes, never a mix, and the lock that lets
//! replicas sharing a directory take turns.

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

/// Writes an output file of a command atomically (a watcher of `output` never sees half a bundle), with an
/// error message naming the file.
///
/// # Errors
///
/// [`ErrorKind::Io`](crate::error::ErrorKind::Io) naming `output`.
pub fn write_file(output: &Path, bytes: &[u8]) -> crate::error::Result<()> {
    let dir = match output.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let stem = output.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "bundle".to_owned());
    write_atomically(output, &temp_path(dir, &stem), bytes).map_err(|e| {
        crate::error::Error::new(crate::error::ErrorKind::Io, format!("cannot write {}: {e}", output.display()))
    })
}

/// Like [`write_atomically`] without the fsyncs: atomic for readers, but may be lost in a crash. For state that
/// is re-sent anyway (fleet status reports).
///
/// # Errors
///
/// The first I/O error; `target` then still holds its previous contents (or does not exist).
pub fn replace_quickly(target: &Path, temp: &Path, bytes: &[u8]) -> io::Result<()> {
    let result = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(temp)
        .and_then(|mut file| file.write_all(bytes))
        .and_then(|()| fs::rename(temp, target));
    if result.is_err() {
        let _ = fs::remove_file(temp);
    }
    result
}

/// Appends `line` (which must end in a newline) to `path` in one write, then fsyncs.
///
/// One `O_APPEND` write per line: concurrent appenders never interleave inside a line. A crash may leave a
/// torn last line, which readers skip.
///
/// # Errors
///
/// The first I/O error.
pub fn append_durably(path: &Path, line: &[u8]) -> io::Result<()> {
    let created = !path.exists();
    let mut file = OpenOptions::new().append(true).create(true).open(path)?;
    file.write_all(line)?;
    file.sync_data()?;
    // A new file's directory entry must survive a crash too.
    if created {
        sync_parent(path)?;
    }
    Ok(())
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

/// An exclusive lock on a file, held until dropped (the kernel releases it when the descriptor closes).
pub struct FileLock {
    _file: File,
}

/// Takes an exclusive `flock(2)` on `path` (created if missing), waiting for other holders.
///
/// Replicas of `portcullis serve` sharing a data directory take this lock around a bundle's check-and-write, so
/// two concurrent pushes cannot both pass the revision check.
///
/// # Errors
///
/// If the file cannot be opened or locked.
pub fn lock_exclusive(path: &Path) -> io::Result<FileLock> {
    let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
    flock(&file)?;
    Ok(FileLock { _file: file })
}

#[cfg(unix)]
fn flock(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    loop {
        // SAFETY: the descriptor is valid for the duration of the call (`file` is borrowed); flock has no other
        // memory effects.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc == 0 {
            return Ok(());
        }
        let error = io::Error::last_os_error();
        // A signal interrupted the wait; wait again.
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

#[cfg(not(unix))]
fn flock(_file: &File) -> io::Result<()> {
    // No flock here: a single replica per data directory is the supported setup on this platform.
    Ok(())
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
    fn appends_whole_lines_and_releases_locks_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("h.jsonl");
        append_durably(&log, b"one\n").unwrap();
        append_durably(&log, b"two\n").unwrap();
        assert_eq!(fs::read(&log).unwrap(), b"one\ntwo\n");
        let lock = dir.path().join("x.lock");
        drop(lock_exclusive(&lock).unwrap());
        drop(lock_exclusive(&lock).unwrap());
    }

    #[test]
    fn temporary_names_are_hidden_and_distinct() {
        let a = temp_path(Path::new("d"), "x");
        let b = temp_path(Path::new("d"), "x");
        assert_ne!(a, b);
        assert!(a.file_name().unwrap().to_str().unwrap().starts_with(".x.tmp-"));
    }
}
