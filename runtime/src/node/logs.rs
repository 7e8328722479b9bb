//! Container logs: one file per container start, in the CRI log format, read back by the
//! node's `/containerLogs` endpoint (server.rs).
//!
//! Layout: `<pod dir>/logs/<container>/<restart>.log`, the current start and the previous
//! one kept (`kubectl logs --previous`). Each line is `<RFC 3339 nano time> <stdout|stderr>
//! <F|P> <text>`, as containerd writes them, so `--timestamps` and `--since` need no extra
//! index and a line longer than 16 KiB is split into `P`artial pieces.
//!
//! Open files stay bounded (issue 3: thousands of containers must not need thousands of
//! fds): a [`ContainerLog`] opens its file per write and closes it again; a chatty guest
//! pays a few microseconds per write, an idle one costs nothing.
//!
//! [`LogStore`] is the index the endpoint reads: which pods and containers exist on this
//! node, which start is current and whether it is still running (so `follow` knows when to
//! stop). It is a small map behind a mutex, touched in short critical sections and never
//! across an `.await`.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::wasm::OutputSink;

/// Longest line piece written as one record.
const MAX_LINE: usize = 16 * 1024;

/// What can go wrong finding a container's log.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The pod is not on this node.
    #[error("pod {namespace}/{pod} not found on this node")]
    PodNotFound {
        /// Its namespace.
        namespace: String,
        /// Its name.
        pod: String,
    },
    /// The pod has no such container, or it has not started yet.
    #[error(
        "container {container:?} in pod {pod:?} has no logs (not started yet or not a container of the pod)"
    )]
    ContainerNotFound {
        /// The pod name.
        pod: String,
        /// The container name.
        container: String,
    },
    /// `previous=true` but the container never restarted.
    #[error("previous terminated container {container:?} in pod {pod:?} not found")]
    NoPrevious {
        /// The pod name.
        pod: String,
        /// The container name.
        container: String,
    },
    /// Creating the log file failed.
    #[error("log file {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A container's log as found by [`LogStore::locate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The file.
    pub path: PathBuf,
    /// Which start of the container it belongs to.
    pub restart: u32,
    /// Whether that start is still running (more lines may come).
    pub running: bool,
}

#[derive(Debug)]
struct PodLogs {
    uid: String,
    dir: PathBuf,
    /// Container name -> (current start, running).
    containers: HashMap<String, (u32, bool)>,
}

/// The node's index of container logs.
#[derive(Debug, Default)]
pub struct LogStore {
    pods: Mutex<HashMap<(String, String), PodLogs>>,
}

impl LogStore {
    /// An empty index.
    pub fn new() -> Arc<LogStore> {
        Arc::default()
    }

    fn pods(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), PodLogs>> {
        self.pods.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes a pod's logs (under `dir`, usually `<pod dir>/logs`) reachable.
    pub fn add_pod(&self, namespace: &str, pod: &str, uid: &str, dir: PathBuf) {
        let logs = PodLogs {
            uid: uid.to_string(),
            dir,
            containers: HashMap::new(),
        };
        self.pods()
            .insert((namespace.to_string(), pod.to_string()), logs);
    }

    /// Forgets a pod (its files go with its directory).
    pub fn remove_pod(&self, namespace: &str, pod: &str, uid: &str) {
        let mut pods = self.pods();
        let key = (namespace.to_string(), pod.to_string());
        if pods.get(&key).is_some_and(|p| p.uid == uid) {
            pods.remove(&key);
        }
    }

    /// Creates the log of start number `restart` of a container, keeping only the one
    /// before it, and marks it running.
    pub fn start(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        restart: u32,
    ) -> Result<Arc<ContainerLog>, Error> {
        let mut pods = self.pods();
        let logs = pods
            .get_mut(&(namespace.to_string(), pod.to_string()))
            .ok_or_else(|| Error::PodNotFound {
                namespace: namespace.into(),
                pod: pod.into(),
            })?;
        let dir = logs.dir.join(container);
        let path = dir.join(format!("{restart}.log"));
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        std::fs::File::create(&path).map_err(io)?;
        for old in starts(&dir)
            .into_iter()
            .filter(|n| *n != restart)
            .rev()
            .skip(1)
        {
            let _ = std::fs::remove_file(dir.join(format!("{old}.log")));
        }
        logs.containers
            .insert(container.to_string(), (restart, true));
        Ok(Arc::new(ContainerLog {
            path,
            partial: Mutex::new([Vec::new(), Vec::new()]),
        }))
    }

    /// Marks the current start of a container as ended.
    pub fn stopped(&self, namespace: &str, pod: &str, container: &str) {
        if let Some(logs) = self
            .pods()
            .get_mut(&(namespace.to_string(), pod.to_string()))
            && let Some(state) = logs.containers.get_mut(container)
        {
            state.1 = false;
        }
    }

    /// Finds the current (or previous) log of a container.
    pub fn locate(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        previous: bool,
    ) -> Result<Located, Error> {
        let pods = self.pods();
        let logs = pods
            .get(&(namespace.to_string(), pod.to_string()))
            .ok_or_else(|| Error::PodNotFound {
                namespace: namespace.into(),
                pod: pod.into(),
            })?;
        let dir = logs.dir.join(container);
        let mut all = starts(&dir);
        let (current, running) = match logs.containers.get(container) {
            Some(state) => *state,
            // Files from before an agent restart: readable, not running.
            None => (
                *all.last().ok_or_else(|| Error::ContainerNotFound {
                    pod: pod.into(),
                    container: container.into(),
                })?,
                false,
            ),
        };
        all.retain(|n| *n <= current);
        let restart = if previous {
            *all.iter()
                .rev()
                .find(|n| **n < current)
                .ok_or_else(|| Error::NoPrevious {
                    pod: pod.into(),
                    container: container.into(),
                })?
        } else {
            current
        };
        Ok(Located {
            path: dir.join(format!("{restart}.log")),
            restart,
            running: running && restart == current,
        })
    }

    /// Whether start `restart` of a container is still the running one.
    pub fn is_running(&self, namespace: &str, pod: &str, container: &str, restart: u32) -> bool {
        self.pods()
            .get(&(namespace.to_string(), pod.to_string()))
            .and_then(|logs| logs.containers.get(container))
            .is_some_and(|state| *state == (restart, true))
    }
}

/// The start numbers with a log file in `dir`, ascending.
fn starts(dir: &Path) -> Vec<u32> {
    let mut out: Vec<u32> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".log")?.parse().ok())
        .collect();
    out.sort_unstable();
    out
}

/// Which output a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout = 0,
    /// Standard error.
    Stderr = 1,
}

/// The log of one container start: two [`OutputSink`]s appending to one file.
#[derive(Debug)]
pub struct ContainerLog {
    path: PathBuf,
    /// Unterminated line per stream, waiting for its newline.
    partial: Mutex<[Vec<u8>; 2]>,
}

impl ContainerLog {
    /// The sink of one stream.
    pub fn sink(self: &Arc<Self>, stream: Stream) -> Arc<dyn OutputSink> {
        Arc::new(StreamSink {
            log: self.clone(),
            stream,
        })
    }

    /// Writes out what is left of unterminated lines (the container ended).
    pub fn finish(&self) {
        let mut partial = self.partial.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for stream in [Stream::Stdout, Stream::Stderr] {
            let rest = std::mem::take(&mut partial[stream as usize]);
            if !rest.is_empty() {
                out.extend(format_record(jiff::Timestamp::now(), stream, false, &rest));
            }
        }
        if !out.is_empty()
            && let Err(error) = self.append(&out)
        {
            tracing::debug!(path = %self.path.display(), error = %error, "writing container log failed");
        }
    }

    fn write(&self, stream: Stream, bytes: &[u8]) -> std::io::Result<()> {
        let now = jiff::Timestamp::now();
        let out = {
            let mut partial = self.partial.lock().unwrap_or_else(|e| e.into_inner());
            let buf = &mut partial[stream as usize];
            buf.extend_from_slice(bytes);
            let mut out = Vec::new();
            let mut start = 0;
            while let Some(nl) = buf[start..].iter().position(|b| *b == b'\n') {
                out.extend(format_record(now, stream, false, &buf[start..start + nl]));
                start += nl + 1;
            }
            while buf.len() - start >= MAX_LINE {
                out.extend(format_record(
                    now,
                    stream,
                    true,
                    &buf[start..start + MAX_LINE],
                ));
                start += MAX_LINE;
            }
            buf.drain(..start);
            out
        };
        if out.is_empty() {
            Ok(())
        } else {
            self.append(&out)
        }
    }

    fn append(&self, bytes: &[u8]) -> std::io::Result<()> {
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&self.path)?
            .write_all(bytes)
    }
}

struct StreamSink {
    log: Arc<ContainerLog>,
    stream: Stream,
}

impl OutputSink for StreamSink {
    fn write(&self, bytes: &[u8]) -> std::io::Result<()> {
        self.log.write(self.stream, bytes)
    }
}

/// One CRI log record: `<time> <stream> <F|P> <text>\n`.
pub fn format_record(time: jiff::Timestamp, stream: Stream, partial: bool, text: &[u8]) -> Vec<u8> {
    let stream = if stream == Stream::Stdout {
        "stdout"
    } else {
        "stderr"
    };
    let tag = if partial { 'P' } else { 'F' };
    let mut out = format!("{time} {stream} {tag} ").into_bytes();
    out.extend_from_slice(text);
    out.push(b'\n');
    out
}

/// How a log is read back (the query of `/containerLogs`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Only the last N lines.
    pub tail_lines: Option<usize>,
    /// Prefix each line with its time.
    pub timestamps: bool,
    /// Only lines newer than this time.
    pub since: Option<jiff::Timestamp>,
}

/// Turns CRI records (complete lines only) into what `kubectl logs` prints.
pub fn render(records: &[u8], options: &ReadOptions) -> Vec<u8> {
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut pending: Option<(jiff::Timestamp, Vec<u8>)> = None;
    for record in records.split(|b| *b == b'\n').filter(|r| !r.is_empty()) {
        let mut fields = record.splitn(4, |b| *b == b' ');
        let (Some(time), Some(_stream), Some(tag), text) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let Some(time) = std::str::from_utf8(time)
            .ok()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        else {
            continue;
        };
        let text = text.unwrap_or_default();
        let (first, mut line) = pending.take().unwrap_or((time, Vec::new()));
        line.extend_from_slice(text);
        if tag == b"P" {
            pending = Some((first, line));
            continue;
        }
        if options.since.is_some_and(|since| first < since) {
            continue;
        }
        let mut out = if options.timestamps {
            format!("{first} ").into_bytes()
        } else {
            Vec::new()
        };
        out.extend(line);
        out.push(b'\n');
        lines.push(out);
    }
    let skip = options
        .tail_lines
        .map_or(0, |n| lines.len().saturating_sub(n));
    lines.into_iter().skip(skip).flatten().collect()
}

/// The length of the prefix of `data` that ends with a complete record.
pub fn complete_prefix(data: &[u8]) -> usize {
    data.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1)
}

#[cfg(test)]
#[path = "logs_tests.rs"]
mod tests;
