//! File system steps the store is built from, each one crash-safe on its own: writing a file
//! atomically (temp file, `sync_all`, `rename`, sync the directory), listing a directory that
//! may not exist yet, removing a file that may already be gone.
//!
//! Everything blocking runs in `spawn_blocking` or through `tokio::fs`, so the executor never
//! waits on the disk.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::error::Error;

/// Writes `bytes` to `dest` so that a crash leaves either the old file or the new one, never
/// half of either: the bytes go to `tmp` (same file system) first.
pub async fn write_atomic(tmp: PathBuf, dest: PathBuf, bytes: Vec<u8>) -> Result<(), Error> {
    blocking(move || {
        let written = write_synced(&tmp, &bytes).and_then(|()| rename_durably(&tmp, &dest));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    })
    .await
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::io::Write as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
    }
    let mut file = std::fs::File::create(path).map_err(|e| Error::io("create", path, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io("write", path, e))
}

/// Moves `from` to `to` (creating `to`'s directory) and syncs `to`'s directory, so the new name
/// survives a crash. `from` must already be synced.
pub fn rename_durably(from: &Path, to: &Path) -> Result<(), Error> {
    let dir = to.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
    std::fs::rename(from, to).map_err(|e| Error::io("rename into", to, e))?;
    sync_dir(dir)
}

/// Makes a directory's entries (a rename, a new file) durable.
pub fn sync_dir(dir: &Path) -> Result<(), Error> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("sync directory", dir, e))
}

/// Whether `path` exists.
pub async fn exists(path: &Path) -> Result<bool, Error> {
    tokio::fs::try_exists(path)
        .await
        .map_err(|e| Error::io("look up", path, e))
}

/// Removes a file; `false` if it was not there.
pub async fn remove(path: &Path) -> Result<bool, Error> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("remove", path, e)),
    }
}

/// Reads a small file as text; `None` if it is not there.
pub async fn read_text(path: &Path) -> Result<Option<String>, Error> {
    match tokio::fs::read_to_string(path).await {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

/// The UTF-8 names in a directory, sorted; empty if the directory does not exist.
pub async fn list(dir: &Path) -> Result<Vec<String>, Error> {
    let mut entries = match tokio::fs::read_dir(dir).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("list", dir, e)),
    };
    let mut names = Vec::new();
    while let Some(entry) = entries
        .next_entry()
        .await
        .map_err(|e| Error::io("list", dir, e))?
    {
        if let Ok(name) = entry.file_name().into_string() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Whether a directory has at least one entry; `false` if it does not exist.
pub fn has_entries(dir: &Path) -> Result<bool, Error> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_some()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("list", dir, e)),
    }
}

/// Runs blocking file work off the executor.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(Error::io(
            "run a file task for",
            PathBuf::new(),
            std::io::Error::other(e.to_string()),
        ))
    })
}
