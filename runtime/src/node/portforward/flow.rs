//! SPDY/3.1 flow control for one connection: the peer's windows, which limit what this side
//! sends, and the WINDOW_UPDATEs that give the peer back its own as its data reaches the pod.
//!
//! Every byte sent is counted against the stream's and the session's windows, but a send only
//! waits on a window once the peer has shown it keeps them: a WINDOW_UPDATE for a stream (or
//! an initial window in SETTINGS) for stream windows, one for stream 0 for the session
//! window. client-go's spdystream does neither, and never reads a window, so with it nothing
//! ever waits; a peer that does keep windows gets them respected from its first update on.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;

use super::frame::{DEFAULT_WINDOW, Frame};

/// The largest window SPDY allows (2^31 - 1).
const MAX_WINDOW: i64 = 0x7fff_ffff;

/// Both directions' windows of one connection.
pub(super) struct Flow {
    state: Mutex<State>,
    changed: Notify,
}

struct State {
    /// Whether the peer keeps stream windows.
    streams_kept: bool,
    /// Whether the peer keeps the session window.
    session_kept: bool,
    /// The window a new stream starts with.
    initial: i64,
    /// The peer's session window: what this side may still send in all.
    session: i64,
    /// The peer's window per open stream.
    windows: HashMap<u32, i64>,
    /// Bytes of the peer's that reached the pod and have not been given back to the
    /// session window yet.
    session_unacked: usize,
}

impl Default for Flow {
    fn default() -> Self {
        Flow {
            state: Mutex::new(State {
                streams_kept: false,
                session_kept: false,
                initial: i64::from(DEFAULT_WINDOW),
                session: i64::from(DEFAULT_WINDOW),
                windows: HashMap::new(),
                session_unacked: 0,
            }),
            changed: Notify::new(),
        }
    }
}

impl Flow {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A stream opened: it starts with the initial window.
    pub(super) fn open(&self, stream: u32) {
        let mut state = self.state();
        let initial = state.initial;
        state.windows.insert(stream, initial);
    }

    /// A stream closed: anything waiting on its window stops waiting.
    pub(super) fn close(&self, stream: u32) {
        self.state().windows.remove(&stream);
        self.changed.notify_waiters();
    }

    /// SETTINGS_INITIAL_WINDOW_SIZE: every open stream's window moves by the difference.
    pub(super) fn set_initial(&self, value: u32) {
        let mut state = self.state();
        let delta = i64::from(value) - state.initial;
        state.initial = i64::from(value);
        state.streams_kept = true;
        for window in state.windows.values_mut() {
            *window += delta;
        }
        drop(state);
        self.changed.notify_waiters();
    }

    /// A WINDOW_UPDATE (stream 0: the session). `false` if it grew a window past 2^31 - 1,
    /// the peer's FLOW_CONTROL_ERROR.
    pub(super) fn grant(&self, stream: u32, delta: u32) -> bool {
        let mut state = self.state();
        let ok = if stream == 0 {
            state.session_kept = true;
            state.session += i64::from(delta);
            state.session <= MAX_WINDOW
        } else {
            state.streams_kept = true;
            match state.windows.get_mut(&stream) {
                Some(window) => {
                    *window += i64::from(delta);
                    *window <= MAX_WINDOW
                }
                // An update for a stream that has ended here is harmless.
                None => true,
            }
        };
        drop(state);
        self.changed.notify_waiters();
        ok
    }

    /// Waits until `stream` may send, and takes up to `want` bytes (at least 1) of its
    /// windows. A stream that is not open does not wait.
    pub(super) async fn reserve(&self, stream: u32, want: usize) -> usize {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = self.state();
                let want = want.max(1) as i64;
                let Some(window) = state.windows.get(&stream).copied() else {
                    return want as usize;
                };
                let stream_room = if state.streams_kept { window } else { i64::MAX };
                let session_room = if state.session_kept {
                    state.session
                } else {
                    i64::MAX
                };
                let room = stream_room.min(session_room);
                if room > 0 {
                    let n = want.min(room);
                    state.session -= n;
                    if let Some(window) = state.windows.get_mut(&stream) {
                        *window -= n;
                    }
                    return n as usize;
                }
            }
            notified.await;
        }
    }

    /// `len` bytes the peer sent on `stream` (None: a stream already gone) were used up:
    /// the WINDOW_UPDATEs that give them back. The stream's goes at once (callers batch);
    /// the session's once a quarter window has built up.
    pub(super) fn consumed(&self, stream: Option<u32>, len: usize) -> Vec<Frame> {
        let mut updates = Vec::new();
        if len == 0 {
            return updates;
        }
        if let Some(stream) = stream {
            updates.push(Frame::WindowUpdate {
                stream,
                delta: len as u32,
            });
        }
        let mut state = self.state();
        state.session_unacked += len;
        if state.session_unacked >= DEFAULT_WINDOW as usize / 4 {
            updates.push(Frame::WindowUpdate {
                stream: 0,
                delta: state.session_unacked as u32,
            });
            state.session_unacked = 0;
        }
        updates
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_peer_that_never_updates_is_never_waited_for() {
        let flow = Flow::default();
        flow.open(1);
        let mut sent = 0;
        while sent < 1 << 20 {
            sent += flow.reserve(1, 32 * 1024).await;
        }
        assert_eq!(sent, 1 << 20);
    }

    #[tokio::test]
    async fn a_peer_that_updates_is_held_to_its_windows() {
        let flow = Arc::new(Flow::default());
        flow.open(1);
        assert!(flow.grant(1, 1));
        assert_eq!(flow.reserve(1, 100_000).await, DEFAULT_WINDOW as usize + 1);
        let waiting = tokio::spawn({
            let flow = flow.clone();
            async move { flow.reserve(1, 10).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        assert!(flow.grant(1, 4));
        assert_eq!(waiting.await.unwrap(), 4);
        // The session window binds once the peer updates it too.
        // 5 bytes past the session window were sent before the peer kept it.
        assert!(flow.grant(0, 100));
        assert!(flow.grant(1, 1 << 20));
        assert_eq!(flow.reserve(1, 1 << 20).await, 95);
        // Past 2^31 - 1 is the peer's error.
        assert!(!flow.grant(1, 0x7fff_ffff));
    }

    #[tokio::test]
    async fn settings_move_open_windows_and_closing_releases_waiters() {
        let flow = Arc::new(Flow::default());
        flow.open(3);
        flow.set_initial(10);
        assert_eq!(flow.reserve(3, 100).await, 10);
        let waiting = tokio::spawn({
            let flow = flow.clone();
            async move { flow.reserve(3, 5).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        flow.close(3);
        assert_eq!(waiting.await.unwrap(), 5);
    }

    #[test]
    fn session_updates_are_batched() {
        let flow = Flow::default();
        let first = flow.consumed(Some(1), 1000);
        assert_eq!(
            first,
            vec![Frame::WindowUpdate {
                stream: 1,
                delta: 1000
            }]
        );
        let second = flow.consumed(None, 20_000);
        assert_eq!(
            second,
            vec![Frame::WindowUpdate {
                stream: 0,
                delta: 21_000
            }]
        );
    }
}
