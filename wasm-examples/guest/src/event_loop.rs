//! The readiness loop under `web`, `kv` and `api`: one thread, non-blocking sockets and
//! `poll(2)`.
//!
//! wasip2 has no threads, so concurrency comes from readiness polling. Rust std's
//! `set_nonblocking` reaches wasi-libc's `ioctl(FIONBIO)`, which flips the TCP socket's
//! blocking flag (accept/read/write then return `WouldBlock` instead of blocking on a
//! pollable), and wasi-libc's `poll` subscribes to the listening socket and to each
//! connection's input or output stream and waits in one `wasi:io/poll.poll` call. So an idle
//! server is parked in the host and costs no CPU. The same code runs natively for the tests.
//!
//! [`run`] owns the listener, the connection list and the poll set; what a connection does
//! when it is ready (read, parse, answer) is the program's, behind [`Connection`].

use std::io::{self, ErrorKind};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Connections idle longer than this are closed (nginx's `keepalive_timeout` default).
pub const KEEPALIVE: Duration = Duration::from_secs(75);
/// At most this many open connections; beyond it new ones wait in the listen backlog.
const MAX_CONNS: usize = 1024;

/// One client connection as the loop sees it.
pub trait Connection {
    /// The socket, for the poll set.
    fn stream(&self) -> &TcpStream;
    /// Whether output is waiting (the loop then polls for writability, else for input).
    fn wants_write(&self) -> bool;
    /// Whether a request is in flight: after the listener closes, only busy connections stay.
    fn busy(&self) -> bool;
    /// Whether the connection is finished and can be dropped.
    fn done(&self) -> bool;
    /// When the connection is closed if nothing happens.
    fn deadline(&self) -> Instant;
}

#[allow(
    unsafe_code,
    reason = "poll(2) has no std wrapper; this is the only unsafe call in the guests' loops"
)]
fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<usize> {
    // SAFETY: `fds` is a valid, exclusively borrowed slice of initialised `pollfd`s for the
    // whole call and its length is passed alongside it.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Serves `listener` until it is closed (the node closes a terminating pod's listeners,
/// WASI's stand-in for SIGTERM); then, like nginx on SIGTERM, finishes the requests in
/// flight, closes idle keep-alive connections and returns.
///
/// `accept` makes a connection from a new socket and its peer's IP; `ready` is called with
/// a connection the poll found ready and the time the poll returned. `name` prefixes the
/// loop's own log lines.
pub fn run<C: Connection>(
    name: &str,
    listener: TcpListener,
    mut accept: impl FnMut(TcpStream, String) -> C,
    mut ready: impl FnMut(&mut C, Instant),
) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let mut conns: Vec<C> = Vec::new();
    let mut fds: Vec<libc::pollfd> = Vec::new();
    let mut closed = false;
    loop {
        if closed {
            conns.retain(|c| c.busy());
            if conns.is_empty() {
                return Ok(());
            }
        }
        fds.clear();
        let accepting = if conns.len() < MAX_CONNS && !closed {
            libc::POLLIN
        } else {
            0
        };
        fds.push(libc::pollfd {
            fd: listener.as_raw_fd(),
            events: accepting,
            revents: 0,
        });
        for c in &conns {
            let events = if c.wants_write() {
                libc::POLLOUT
            } else {
                libc::POLLIN
            };
            fds.push(libc::pollfd {
                fd: c.stream().as_raw_fd(),
                events,
                revents: 0,
            });
        }
        let now = Instant::now();
        let timeout = conns
            .iter()
            .map(|c| c.deadline().saturating_duration_since(now))
            .min()
            .map_or(-1, |d| i32::try_from(d.as_millis() + 1).unwrap_or(i32::MAX));
        match poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        let now = Instant::now();
        for (c, fd) in conns.iter_mut().zip(&fds[1..]) {
            if fd.revents != 0 {
                ready(c, now);
            }
        }
        conns.retain(|c| !c.done() && now < c.deadline());
        if fds[0].revents != 0 && !closed && accept_all(name, &listener, &mut conns, &mut accept) {
            println!(
                "{name}: listener closed, finishing {} connection(s)",
                conns.iter().filter(|c| c.busy()).count()
            );
            closed = true;
        }
    }
}

/// Accepts what is pending. Returns true once the listener is closed.
fn accept_all<C>(
    name: &str,
    listener: &TcpListener,
    conns: &mut Vec<C>,
    accept: &mut impl FnMut(TcpStream, String) -> C,
) -> bool {
    while conns.len() < MAX_CONNS {
        match listener.accept() {
            Ok((stream, peer)) => {
                if stream.set_nonblocking(true).is_ok() {
                    conns.push(accept(stream, peer.ip().to_string()));
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // EINVAL/EBADF: the socket no longer listens.
            Err(e)
                if e.kind() == ErrorKind::InvalidInput || e.raw_os_error() == Some(libc::EBADF) =>
            {
                return true;
            }
            Err(e) => {
                // Out of descriptors or similar: back off instead of spinning on a ready listener.
                eprintln!("{name}: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
                return false;
            }
        }
    }
    false
}
