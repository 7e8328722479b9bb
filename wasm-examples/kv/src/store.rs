//! The store: every key in memory, every change appended to `kv.log` (format in `log.rs`)
//! and synced to disk before it is acknowledged.
//!
//! On open the log is replayed. A bad record at the end of the log is what a crash in the
//! middle of an append leaves (the file ends inside the record, or its pages never reached
//! the disk and read back as zeros or stale bytes): it is cut off, and everything before it
//! survives. A bad record with good records after it is damage, not a crash, and the store
//! refuses to open rather than silently drop the acknowledged writes after it. When the log grows past
//! [`COMPACT_RATIO`] times the live data it is rewritten (temp file, sync, rename).

use crate::log::{self, Next, Record};
use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The log's file name in the data directory.
pub const LOG_FILE: &str = "kv.log";
/// Where compaction writes the new log before renaming it over the old one.
const COMPACT_FILE: &str = "kv.log.compact";
/// The log is compacted when it is more than this many times the size of the live data.
pub const COMPACT_RATIO: u64 = 4;
/// Logs smaller than this are never compacted: rewriting them would cost more than it saves.
pub const COMPACT_MIN: u64 = 64 * 1024;

/// What went wrong in the store.
#[derive(Debug)]
pub enum Error {
    /// The data directory or the log could not be created, opened or read.
    OpenFailed {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The file is not a log this program wrote (or one of a newer format).
    NotALog {
        /// The file.
        path: PathBuf,
    },
    /// A bad record with more data after it: damage that recovery must not paper over.
    LogCorrupt {
        /// The file.
        path: PathBuf,
        /// Where the bad record starts.
        offset: u64,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Appending or syncing a record failed; the change was not applied.
    WriteFailed(io::Error),
    /// A failed write could not be undone, so the log's end is unknown; every write is
    /// refused until the program restarts and recovers the log.
    Unavailable(String),
    /// `incr` of a value that is not a decimal integer.
    NotAnInteger {
        /// The key.
        key: String,
    },
    /// `incr` past `i64::MAX`.
    Overflow {
        /// The key.
        key: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::OpenFailed { path, source } => {
                write!(f, "cannot open {}: {source}", path.display())
            }
            Error::NotALog { path } => write!(
                f,
                "{} is not a kv log (or is of a newer format); move it away to start empty",
                path.display()
            ),
            Error::LogCorrupt {
                path,
                offset,
                reason,
            } => write!(
                f,
                "{} is damaged at byte {offset} ({reason}) and has data after it; \
                 move the file away to start empty, or truncate it to {offset} bytes to keep \
                 the records before the damage",
                path.display()
            ),
            Error::WriteFailed(e) => write!(f, "cannot write the log: {e}"),
            Error::Unavailable(why) => write!(f, "the log is unwritable until restart: {why}"),
            Error::NotAnInteger { key } => write!(f, "the value of {key:?} is not an integer"),
            Error::Overflow { key } => write!(f, "incrementing {key:?} would overflow"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::OpenFailed { source, .. } | Error::WriteFailed(source) => Some(source),
            _ => None,
        }
    }
}

/// A torn record cut off the end of the log on open.
#[derive(Debug, Clone, PartialEq)]
pub struct Truncation {
    /// Where the torn record started: the log's new length.
    pub offset: u64,
    /// How many bytes were cut off.
    pub dropped: u64,
    /// What was wrong with the record.
    pub reason: &'static str,
}

/// The key-value data and its log.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    /// The log, opened for appending.
    file: File,
    data: BTreeMap<String, Vec<u8>>,
    /// Bytes in the log (all valid: a failed append is undone).
    log_len: u64,
    /// Bytes the live data takes as put records, plus the header: the compacted size.
    live_len: u64,
    /// Logs below this size are not compacted.
    compact_min: u64,
    /// Set when a failed write could not be undone.
    broken: Option<String>,
}

fn open_failed(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::OpenFailed {
        path: path.to_path_buf(),
        source,
    }
}

/// Syncs a directory so a file created or renamed in it survives a crash. Best effort: not
/// every host lets a directory be synced, and the data itself is already on disk.
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

impl Store {
    /// Opens the store in `dir` (created if missing), recovering the log. Returns the store
    /// and the torn record cut off the end of the log, if there was one. Logs smaller than
    /// `compact_min` bytes are never compacted ([`COMPACT_MIN`] outside tests).
    pub fn open(dir: &Path, compact_min: u64) -> Result<(Store, Option<Truncation>), Error> {
        fs::create_dir_all(dir).map_err(open_failed(dir))?;
        // A leftover of a compaction that crashed before its rename; the log is intact.
        let _ = fs::remove_file(dir.join(COMPACT_FILE));
        let path = dir.join(LOG_FILE);
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .map_err(open_failed(&path))?;
        let mut store = Store {
            dir: dir.to_path_buf(),
            file,
            data: BTreeMap::new(),
            log_len: 0,
            live_len: log::HEADER_LEN,
            compact_min,
            broken: None,
        };
        let len = store.file.metadata().map_err(open_failed(&path))?.len();
        let header = log::header();
        let mut reader = BufReader::new(File::open(&path).map_err(open_failed(&path))?);
        let mut start = vec![0u8; header.len().min(len as usize)];
        reader.read_exact(&mut start).map_err(open_failed(&path))?;
        if start != header[..start.len()] {
            return Err(Error::NotALog { path });
        }
        if len < log::HEADER_LEN {
            // New, or its creation was cut short before the header was complete.
            let write = |f: &mut File| {
                f.set_len(0)?;
                f.write_all(&header)?;
                f.sync_data()
            };
            write(&mut store.file).map_err(open_failed(&path))?;
            sync_dir(dir);
            store.log_len = log::HEADER_LEN;
            return Ok((store, None));
        }
        let mut offset = log::HEADER_LEN;
        loop {
            match log::read_record(&mut reader).map_err(open_failed(&path))? {
                Next::Record(record, n) => {
                    store.apply(record);
                    offset += n;
                }
                Next::End => {
                    store.log_len = offset;
                    return Ok((store, None));
                }
                Next::Bad(reason) => {
                    if !torn_tail(&path, offset, len).map_err(open_failed(&path))? {
                        return Err(Error::LogCorrupt {
                            path,
                            offset,
                            reason,
                        });
                    }
                    store
                        .file
                        .set_len(offset)
                        .and_then(|()| store.file.sync_data())
                        .map_err(open_failed(&path))?;
                    store.log_len = offset;
                    let cut = Truncation {
                        offset,
                        dropped: len - offset,
                        reason,
                    };
                    return Ok((store, Some(cut)));
                }
            }
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.data.get(key).map(Vec::as_slice)
    }

    /// All keys, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.data.keys().map(String::as_str)
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Why writes are refused, if they are.
    pub fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    /// Bytes in the log file.
    #[cfg(test)]
    pub fn log_len(&self) -> u64 {
        self.log_len
    }

    /// Sets `key` to `value`, durably. Returns whether the key is new.
    pub fn put(&mut self, key: &str, value: &[u8]) -> Result<bool, Error> {
        self.append(&log::encode_put(key, value))?;
        let created = self.apply(Record::Put {
            key: key.to_string(),
            value: value.to_vec(),
        });
        self.maybe_compact();
        Ok(created)
    }

    /// Removes `key`, durably. Returns whether it existed.
    pub fn delete(&mut self, key: &str) -> Result<bool, Error> {
        if !self.data.contains_key(key) {
            return Ok(false);
        }
        self.append(&log::encode_delete(key))?;
        self.apply(Record::Delete {
            key: key.to_string(),
        });
        self.maybe_compact();
        Ok(true)
    }

    /// Adds 1 to the decimal integer in `key` (a missing key counts as 0), durably, and
    /// returns the new value. One thread owns the store, so read-modify-write is atomic.
    pub fn incr(&mut self, key: &str) -> Result<i64, Error> {
        let current = match self.data.get(key) {
            None => 0,
            Some(v) => std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .ok_or_else(|| Error::NotAnInteger {
                    key: key.to_string(),
                })?,
        };
        let next = current.checked_add(1).ok_or_else(|| Error::Overflow {
            key: key.to_string(),
        })?;
        self.put(key, next.to_string().as_bytes())?;
        Ok(next)
    }

    /// Applies a record to the in-memory data. Returns whether a put created its key.
    fn apply(&mut self, record: Record) -> bool {
        match record {
            Record::Put { key, value } => {
                let replaced = self.data.get(&key).map(|old| log::put_len(&key, old));
                self.live_len += log::put_len(&key, &value);
                self.live_len -= replaced.unwrap_or(0);
                self.data.insert(key, value);
                replaced.is_none()
            }
            Record::Delete { key } => {
                if let Some(old) = self.data.remove(&key) {
                    self.live_len -= log::put_len(&key, &old);
                }
                false
            }
        }
    }

    /// Appends encoded records and syncs them. On failure the append is undone, so the log
    /// never holds a half record followed by good ones.
    fn append(&mut self, bytes: &[u8]) -> Result<(), Error> {
        if let Some(why) = &self.broken {
            return Err(Error::Unavailable(why.clone()));
        }
        let written = self
            .file
            .write_all(bytes)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            let undone = self
                .file
                .set_len(self.log_len)
                .and_then(|()| self.file.sync_data());
            if let Err(undo) = undone {
                self.broken = Some(format!(
                    "a write failed ({e}) and undoing it failed ({undo})"
                ));
            }
            return Err(Error::WriteFailed(e));
        }
        self.log_len += bytes.len() as u64;
        Ok(())
    }

    fn maybe_compact(&mut self) {
        if self.log_len < self.compact_min || self.log_len <= COMPACT_RATIO * self.live_len {
            return;
        }
        let before = self.log_len;
        match self.compact() {
            Ok(()) => println!(
                "kv: compacted the log from {before} to {} bytes ({} keys)",
                self.log_len,
                self.data.len()
            ),
            Err(e) => {
                eprintln!("kv: compaction failed, keeping the old log: {e}");
                // Do not retry on every write; try again once the log has doubled.
                self.compact_min = self.log_len.saturating_mul(2);
            }
        }
    }

    /// Rewrites the log with only the live data: a temp file, synced, then renamed over the
    /// log. A crash at any point leaves either the old log or the new one, both complete.
    pub fn compact(&mut self) -> io::Result<()> {
        let tmp = self.dir.join(COMPACT_FILE);
        let _ = fs::remove_file(&tmp);
        let result = (|| {
            // Append mode so the handle, which becomes the log after the rename, keeps
            // appending at the end.
            let file = OpenOptions::new()
                .append(true)
                .create_new(true)
                .open(&tmp)?;
            let mut w = BufWriter::new(&file);
            let mut len = log::HEADER_LEN;
            w.write_all(&log::header())?;
            for (key, value) in &self.data {
                let rec = log::encode_put(key, value);
                len += rec.len() as u64;
                w.write_all(&rec)?;
            }
            w.flush()?;
            drop(w);
            file.sync_all()?;
            fs::rename(&tmp, self.dir.join(LOG_FILE))?;
            Ok((file, len))
        })();
        match result {
            Ok((file, len)) => {
                sync_dir(&self.dir);
                self.file = file;
                self.log_len = len;
                self.live_len = len;
                Ok(())
            }
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(e)
            }
        }
    }
}

/// Whether the bad record at `offset` is a torn tail rather than damage. A crash tears at
/// most the one record being appended (a failed append is undone, and recovery cuts a torn
/// one off before anything else is written), so a torn tail is no longer than a record and
/// no good record follows it. Or the file was extended but its pages never written, which
/// leaves zeros of any length.
fn torn_tail(path: &Path, offset: u64, len: u64) -> io::Result<bool> {
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(offset))?;
    if len - offset > log::MAX_RECORD {
        let mut buf = [0u8; 64 * 1024];
        loop {
            match f.read(&mut buf)? {
                0 => return Ok(true),
                n if buf[..n].iter().any(|&b| b != 0) => return Ok(false),
                _ => {}
            }
        }
    }
    let mut tail = Vec::new();
    f.read_to_end(&mut tail)?;
    Ok(!(1..tail.len()).any(|p| log::checks_out(&tail[p..])))
}

#[cfg(test)]
#[path = "store_tests.rs"]
pub(crate) mod tests;
