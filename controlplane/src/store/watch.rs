//! [`Watch`]: one subscriber's stream of store events: the kept history it asked for, then live
//! events as they commit.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::broadcast;

use super::{Error, Event};

/// A stream of [`Event`]s for keys under one prefix, in revision order.
pub struct Watch {
    prefix: String,
    backlog: VecDeque<Arc<Event>>,
    live: broadcast::Receiver<Arc<Event>>,
    last: u64,
}

impl Watch {
    pub(super) fn new(
        prefix: String,
        backlog: Vec<Arc<Event>>,
        live: broadcast::Receiver<Arc<Event>>,
    ) -> Self {
        Self {
            prefix,
            backlog: backlog.into(),
            live,
            last: 0,
        }
    }

    /// The next event, or an error when the store closed or this watcher fell so far behind
    /// that events were dropped ([`Error::Gone`]: the client must list again).
    pub async fn next(&mut self) -> Result<Arc<Event>, Error> {
        if let Some(e) = self.backlog.pop_front() {
            self.last = e.revision;
            return Ok(e);
        }
        loop {
            match self.live.recv().await {
                // The backlog and the live stream can overlap by the events that committed while
                // we subscribed; skip what was already delivered.
                Ok(e) if e.revision <= self.last || !e.key.starts_with(&self.prefix) => continue,
                Ok(e) => {
                    self.last = e.revision;
                    return Ok(e);
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    return Err(Error::Gone {
                        requested: self.last,
                        oldest: self.last + 1,
                    });
                }
                Err(broadcast::error::RecvError::Closed) => return Err(Error::Closed),
            }
        }
    }
}
