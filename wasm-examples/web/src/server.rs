//! The event loop: one thread, non-blocking sockets and `poll(2)`.
//!
//! wasip2 has no threads, so concurrency comes from readiness polling. Rust std's
//! `set_nonblocking` reaches wasi-libc's `ioctl(FIONBIO)`, which flips the TCP socket's
//! blocking flag (accept/read/write then return `WouldBlock` instead of blocking on a
//! pollable), and wasi-libc's `poll` subscribes to the listening socket and to each
//! connection's input or output stream and waits in one `wasi:io/poll.poll` call. So an idle
//! server is parked in the host and costs no CPU. The same code runs natively for the tests.

use crate::files::{self, Resolved};
use crate::http::{self, Parse, Request};
use std::fs::File;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

/// Connections idle longer than this are closed (nginx's `keepalive_timeout` default).
pub const KEEPALIVE: Duration = Duration::from_secs(75);
/// At most this many open connections; beyond it new ones wait in the listen backlog.
const MAX_CONNS: usize = 1024;
/// Bytes of file read into memory per write burst.
const CHUNK: usize = 64 * 1024;

/// What the server serves and the facts shown on the default page.
#[derive(Debug, Clone)]
pub struct Site {
    /// The document root.
    pub root: PathBuf,
    /// Pod name (`HOSTNAME`).
    pub pod: String,
    /// Pod IP (`POD_IP`); when unset, the address the connection arrived on.
    pub pod_ip: Option<String>,
    /// Node name (`NODE_NAME`).
    pub node: String,
    /// CPU work per GET (`BURN_PER_REQUEST`): 0 serves files; more answers every GET with
    /// `OK!` after that many square roots, the HPA walkthrough's load target.
    pub burn: u64,
}

#[allow(
    unsafe_code,
    reason = "poll(2) has no std wrapper; this is the only unsafe call in the guest"
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

/// One client connection and the response in flight on it.
struct Conn {
    stream: TcpStream,
    peer: String,
    input: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    /// File bytes still to send after `out`.
    body: Option<(File, u64)>,
    /// Request-body bytes still to discard before the next request.
    skip: u64,
    close_after: bool,
    eof: bool,
    done: bool,
    last_active: Instant,
}

impl Conn {
    fn new(stream: TcpStream, peer: String) -> Self {
        Conn {
            stream,
            peer,
            input: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            body: None,
            skip: 0,
            close_after: false,
            eof: false,
            done: false,
            last_active: Instant::now(),
        }
    }

    /// Whether a request is in flight (partly read, or a response partly sent).
    fn busy(&self) -> bool {
        !self.done && (self.wants_write() || !self.input.is_empty() || self.skip > 0)
    }

    fn wants_write(&self) -> bool {
        self.out_pos < self.out.len() || self.body.is_some()
    }

    fn read_available(&mut self) {
        let mut buf = [0u8; 8192];
        // Bounded so one fast client cannot balloon memory; the rest stays in the socket.
        while self.input.len() < 2 * http::MAX_HEAD {
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    self.eof = true;
                    return;
                }
                Ok(n) => self.input.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    self.done = true;
                    return;
                }
            }
        }
    }

    /// Moves the connection forward as far as it can go without blocking.
    fn pump(&mut self, site: &Site) {
        while !self.done {
            if self.out_pos < self.out.len() {
                match self.stream.write(&self.out[self.out_pos..]) {
                    Ok(0) => self.done = true,
                    Ok(n) => self.out_pos += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => self.done = true,
                }
                continue;
            }
            if let Some((file, remaining)) = &mut self.body {
                if *remaining == 0 {
                    self.body = None;
                    continue;
                }
                self.out.resize(CHUNK.min(*remaining as usize), 0);
                self.out_pos = 0;
                match file.read(&mut self.out) {
                    Ok(n) if n > 0 => {
                        self.out.truncate(n);
                        *remaining -= n as u64;
                    }
                    // The file shrank under us: the promised length cannot be met.
                    _ => self.done = true,
                }
                continue;
            }
            self.out.clear();
            self.out_pos = 0;
            if self.out.capacity() > CHUNK {
                self.out.shrink_to(1024);
            }
            if self.close_after {
                self.done = true;
                return;
            }
            if self.skip > 0 {
                let n = self
                    .input
                    .len()
                    .min(self.skip.try_into().unwrap_or(usize::MAX));
                self.input.drain(..n);
                self.skip -= n as u64;
                if self.skip > 0 {
                    self.done = self.eof;
                    return;
                }
            }
            match http::parse_request(&self.input) {
                Parse::Complete(req, used) => {
                    self.input.drain(..used);
                    self.skip = req.content_length;
                    self.respond(&req, site);
                }
                Parse::Partial => {
                    self.done = self.eof;
                    return;
                }
                Parse::Error(status) => {
                    let body = http::error_body(status);
                    self.out = http::response_head(
                        status,
                        &[("Content-Type", "text/html")],
                        body.len() as u64,
                        false,
                    );
                    self.out.extend_from_slice(body.as_bytes());
                    self.close_after = true;
                    self.log("-", status, body.len() as u64, "-");
                }
            }
        }
    }

    fn respond(&mut self, req: &Request, site: &Site) {
        let head_only = req.method == "HEAD";
        self.close_after = !req.keep_alive;
        let keep = req.keep_alive;
        let (status, sent) = if site.burn > 0 && req.method == "GET" {
            // The HPA walkthrough's php-apache: some CPU work per request, then "OK!".
            burn(site.burn);
            self.simple(200, &[], "OK!".to_string(), false, keep)
        } else if req.method != "GET" && !head_only {
            self.simple(
                405,
                &[("Allow", "GET, HEAD")],
                http::error_body(405),
                head_only,
                keep,
            )
        } else {
            match files::sanitize(&req.target) {
                None => self.simple(400, &[], http::error_body(400), head_only, keep),
                Some((rel, slash)) => match files::resolve(&site.root, &rel, slash) {
                    Resolved::File {
                        file,
                        len,
                        content_type,
                    } => {
                        self.out =
                            http::response_head(200, &[("Content-Type", content_type)], len, keep);
                        if !head_only && len > 0 {
                            self.body = Some((file, len));
                        }
                        (200, if head_only { 0 } else { len })
                    }
                    Resolved::Redirect(location) => self.simple(
                        301,
                        &[("Location", &location)],
                        http::error_body(301),
                        head_only,
                        keep,
                    ),
                    Resolved::DefaultPage => {
                        let page = default_page(site, &self.stream);
                        self.simple(200, &[], page, head_only, keep)
                    }
                    Resolved::NotFound => {
                        self.simple(404, &[], http::error_body(404), head_only, keep)
                    }
                },
            }
        };
        let line = format!("{} {} HTTP/1.{}", req.method, req.target, req.minor);
        let agent = if req.user_agent.is_empty() {
            "-"
        } else {
            &req.user_agent
        };
        self.log(&line, status, sent, agent);
    }

    /// Queues an in-memory HTML response; returns the status and body bytes sent.
    fn simple(
        &mut self,
        status: u16,
        headers: &[(&str, &str)],
        body: String,
        head_only: bool,
        keep: bool,
    ) -> (u16, u64) {
        let mut all = vec![("Content-Type", "text/html; charset=utf-8")];
        all.extend_from_slice(headers);
        self.out = http::response_head(status, &all, body.len() as u64, keep);
        if head_only {
            return (status, 0);
        }
        self.out.extend_from_slice(body.as_bytes());
        (status, body.len() as u64)
    }

    fn log(&self, request_line: &str, status: u16, bytes: u64, agent: &str) {
        let date = http::log_date(SystemTime::now());
        println!(
            "{} - - [{date}] \"{request_line}\" {status} {bytes} \"{agent}\"",
            self.peer
        );
    }
}

/// Burns CPU the way `registry.k8s.io/hpa-example` does per request: `iterations` square
/// roots.
pub fn burn(iterations: u64) -> f64 {
    let mut x = 0.0001_f64;
    for _ in 0..iterations {
        x = std::hint::black_box(x + x.sqrt());
    }
    x
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The page for `/` when the document root has no `index.html`.
fn default_page(site: &Site, stream: &TcpStream) -> String {
    let ip = site
        .pod_ip
        .clone()
        .or_else(|| stream.local_addr().ok().map(|a| a.ip().to_string()))
        .unwrap_or_else(|| "unknown".into());
    let (pod, ip, node) = (
        html_escape(&site.pod),
        html_escape(&ip),
        html_escape(&site.node),
    );
    format!(
        "<!DOCTYPE html>\n<html>\n<head><title>Welcome to wasmkube!</title></head>\n<body>\n\
         <h1>Welcome to wasmkube!</h1>\n<p>This page is served by a WebAssembly pod.</p>\n\
         <table>\n<tr><th>Pod</th><td id=\"pod\">{pod}</td></tr>\n\
         <tr><th>Pod IP</th><td id=\"pod-ip\">{ip}</td></tr>\n\
         <tr><th>Node</th><td id=\"node\">{node}</td></tr>\n</table>\n\
         <p>Put an <code>index.html</code> in <code>{}</code> to replace this page.</p>\n</body>\n</html>\n",
        html_escape(&site.root.display().to_string())
    )
}

/// Serves `listener` until it is closed (the node closes a terminating pod's listeners,
/// WASI's stand-in for SIGTERM); then, like nginx on SIGTERM, finishes the requests in
/// flight, closes idle keep-alive connections and returns.
pub fn serve(listener: TcpListener, site: &Site) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let mut conns: Vec<Conn> = Vec::new();
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
                fd: c.stream.as_raw_fd(),
                events,
                revents: 0,
            });
        }
        let timeout = conns
            .iter()
            .map(|c| KEEPALIVE.saturating_sub(c.last_active.elapsed()))
            .min()
            .map_or(-1, |d| i32::try_from(d.as_millis() + 1).unwrap_or(i32::MAX));
        match poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        let now = Instant::now();
        for (c, fd) in conns.iter_mut().zip(&fds[1..]) {
            if fd.revents == 0 {
                continue;
            }
            c.last_active = now;
            if !c.wants_write() {
                c.read_available();
            }
            c.pump(site);
        }
        conns.retain(|c| !c.done && c.last_active.elapsed() < KEEPALIVE);
        if fds[0].revents != 0 && !closed && accept_all(&listener, &mut conns) {
            println!(
                "web: listener closed, finishing {} connection(s)",
                conns.iter().filter(|c| c.busy()).count()
            );
            closed = true;
        }
    }
}

/// Accepts what is pending. Returns true once the listener is closed.
fn accept_all(listener: &TcpListener, conns: &mut Vec<Conn>) -> bool {
    while conns.len() < MAX_CONNS {
        match listener.accept() {
            Ok((stream, peer)) => {
                if stream.set_nonblocking(true).is_ok() {
                    conns.push(Conn::new(stream, peer.ip().to_string()));
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
                eprintln!("web: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
                return false;
            }
        }
    }
    false
}
