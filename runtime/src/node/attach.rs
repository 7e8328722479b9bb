//! The standard streams of a container started with `stdin: true`, for `kubectl attach`,
//! `kubectl run -it` and `kubectl debug -it`.
//!
//! The container's stdin is a [`StdinPipe`] that attach sessions write into (through the
//! container's [`Terminal`] when it has `tty: true`); its output goes to its log as always
//! and to every attached session. With `stdinOnce`, stdin closes when the first session
//! that attached it ends, as the kubelet does.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::terminal::Terminal;
use crate::wasm::{OutputSink, StdinPipe};

/// What attached sessions receive.
type Listener = mpsc::Sender<Vec<u8>>;

/// Chunks of output held for one session. A session that falls this far behind loses
/// output rather than slowing the container down (or growing the agent without bound).
const SESSION_BACKLOG: usize = 1024;

/// A container's stdin and output, open to attach sessions.
pub struct Attachable {
    /// The container's stdin.
    pub stdin: StdinPipe,
    /// The container's line discipline, with `tty: true`.
    pub terminal: Option<Arc<Mutex<Terminal>>>,
    /// `stdinOnce`: stdin closes after the first session.
    pub stdin_once: bool,
    /// Cancelled when the container's instance has ended: sessions end with it.
    pub ended: CancellationToken,
    listeners: Mutex<Vec<Listener>>,
    log: Arc<dyn OutputSink>,
}

impl Attachable {
    /// Streams for a container whose output is also written to `log`.
    pub fn new(tty: bool, stdin_once: bool, log: Arc<dyn OutputSink>) -> Arc<Attachable> {
        Arc::new(Attachable {
            stdin: StdinPipe::new(tty),
            terminal: tty.then(|| Arc::new(Mutex::new(Terminal::default()))),
            stdin_once,
            ended: CancellationToken::new(),
            listeners: Mutex::default(),
            log,
        })
    }

    fn listeners(&self) -> MutexGuard<'_, Vec<Listener>> {
        self.listeners.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new session: it receives the container's output from now on.
    pub fn subscribe(&self) -> mpsc::Receiver<Vec<u8>> {
        let (tx, rx) = mpsc::channel(SESSION_BACKLOG);
        self.listeners().push(tx);
        rx
    }

    /// Output for the log and the sessions (the terminal's echo goes to sessions only).
    pub fn broadcast(&self, bytes: &[u8]) {
        self.listeners().retain(|listener| {
            !matches!(
                listener.try_send(bytes.to_vec()),
                Err(mpsc::error::TrySendError::Closed(_))
            )
        });
    }
}

impl OutputSink for Attachable {
    fn write(&self, bytes: &[u8]) -> std::io::Result<()> {
        let bytes = match &self.terminal {
            Some(_) => super::terminal::onlcr(bytes),
            None => bytes.to_vec(),
        };
        self.broadcast(&bytes);
        self.log.write(&bytes)
    }
}
