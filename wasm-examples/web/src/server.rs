//! `web`'s connections: static files streamed from disk, request bodies skipped, on the
//! one-thread `poll(2)` loop of `guest::event_loop` (which explains why that works on
//! wasip2). The same code runs natively for the tests.

use crate::files::{self, Resolved};
use guest::event_loop::{self, Connection, KEEPALIVE};
use guest::http::{self, Parse, Request};
use std::fs::File;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Instant, SystemTime};

/// The `Server` header and the signature of the error pages.
const SERVER: &str = "wasmkube-web";
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

/// nginx's reason phrases: the standard ones, but `405 Not Allowed`.
fn reason(status: u16) -> &'static str {
    match status {
        405 => "Not Allowed",
        _ => http::reason(status),
    }
}

/// An nginx-style HTML page for an error status.
fn error_body(status: u16) -> String {
    http::error_body(SERVER, status, reason(status))
}

/// A response head with `web`'s `Server` header and nginx's reason phrases.
fn response_head(status: u16, headers: &[(&str, &str)], len: u64, keep: bool) -> Vec<u8> {
    http::response_head_with_reason(SERVER, status, reason(status), headers, len, keep)
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
                    let body = error_body(status);
                    self.out = response_head(
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
                error_body(405),
                head_only,
                keep,
            )
        } else {
            match files::sanitize(&req.target) {
                None => self.simple(400, &[], error_body(400), head_only, keep),
                Some((rel, slash)) => match files::resolve(&site.root, &rel, slash) {
                    Resolved::File {
                        file,
                        len,
                        content_type,
                    } => {
                        self.out = response_head(200, &[("Content-Type", content_type)], len, keep);
                        if !head_only && len > 0 {
                            self.body = Some((file, len));
                        }
                        (200, if head_only { 0 } else { len })
                    }
                    Resolved::Redirect(location) => self.simple(
                        301,
                        &[("Location", &location)],
                        error_body(301),
                        head_only,
                        keep,
                    ),
                    Resolved::DefaultPage => {
                        let page = default_page(site, &self.stream);
                        self.simple(200, &[], page, head_only, keep)
                    }
                    Resolved::NotFound => self.simple(404, &[], error_body(404), head_only, keep),
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
        self.out = response_head(status, &all, body.len() as u64, keep);
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

impl Connection for Conn {
    fn stream(&self) -> &TcpStream {
        &self.stream
    }

    fn wants_write(&self) -> bool {
        self.out_pos < self.out.len() || self.body.is_some()
    }

    /// A request is in flight: partly read, its body being skipped, or a response partly
    /// sent.
    fn busy(&self) -> bool {
        !self.done && (self.wants_write() || !self.input.is_empty() || self.skip > 0)
    }

    fn done(&self) -> bool {
        self.done
    }

    fn deadline(&self) -> Instant {
        self.last_active + KEEPALIVE
    }
}

/// Serves `listener` until it is closed (the node closes a terminating pod's listeners,
/// WASI's stand-in for SIGTERM); then, like nginx on SIGTERM, finishes the requests in
/// flight, closes idle keep-alive connections and returns.
pub fn serve(listener: TcpListener, site: &Site) -> io::Result<()> {
    event_loop::run("web", listener, Conn::new, |c, now| {
        c.last_active = now;
        if !c.wants_write() {
            c.read_available();
        }
        c.pump(site);
    })
}
