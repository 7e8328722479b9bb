//! The HTTP server of `kv` and `api`: connections on the shared [`event_loop`], generic
//! over a [`Handler`] that turns a request and its body into a [`Response`].
//!
//! Unlike `web`, which skips request bodies, it reads them: a request is handed to the
//! handler once its whole body has arrived, `Expect: 100-continue` is answered, and a body
//! over [`Handler::MAX_BODY`] gets 413 without being read. A closing connection lingers (see
//! `Phase::Lingering`). The same code runs natively for the tests.

use crate::event_loop::{self, Connection, KEEPALIVE};
use crate::http::{self, Parse, Request};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant, SystemTime};

/// How long a closing connection keeps draining what the client still sends (see
/// [`Phase::Lingering`]).
const LINGER: Duration = Duration::from_secs(5);

/// What a [`Handler`] answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Headers besides `Server`, `Date`, `Content-Length` and `Connection`.
    pub headers: Vec<(&'static str, String)>,
    /// The body (dropped for `HEAD` and for statuses that have none).
    pub body: Vec<u8>,
}

impl Response {
    /// A response with a `Content-Type` and a body.
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            headers: vec![("Content-Type", content_type.to_string())],
            body: body.into(),
        }
    }

    /// A `text/plain` response.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self::new(status, "text/plain; charset=utf-8", body.into())
    }

    /// A response without a body (`201`, `204`).
    pub fn empty(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// The application behind the loop.
pub trait Handler {
    /// The program's name: `Server: wasmkube-NAME`, and the prefix of the loop's own log lines.
    const NAME: &'static str;
    /// The largest request body accepted; a longer one gets 413 before it is read.
    const MAX_BODY: usize;

    /// Answers one request whose body has fully arrived. `local` is the address the
    /// connection arrived on.
    fn handle(&mut self, req: &Request, body: &[u8], local: Option<SocketAddr>) -> Response;

    /// The response for a request the loop refuses itself (400, 411, 413, 431, 505).
    fn refuse(&mut self, status: u16) -> Response {
        Response::text(status, format!("{}\n", http::reason(status).to_lowercase()))
    }
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Reading requests and answering them.
    Open,
    /// Sending the last response; then the connection lingers.
    Closing,
    /// Our side is shut down; what the client still sends is read and dropped until it
    /// closes or [`LINGER`] passes. Closing a socket with unread input makes the kernel send
    /// a reset, which can destroy the response (a 413, say) before the client reads it.
    Lingering,
    /// Gone.
    Done,
}

/// One client connection.
struct Conn {
    stream: TcpStream,
    peer: String,
    local: Option<SocketAddr>,
    input: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    /// A request head whose body is still arriving, and the bytes the head took.
    pending: Option<(Request, usize)>,
    /// Whether `100 Continue` went out for `pending`.
    continued: bool,
    phase: Phase,
    eof: bool,
    last_active: Instant,
    linger_until: Instant,
}

impl Conn {
    fn new(stream: TcpStream, peer: String) -> Self {
        let local = stream.local_addr().ok();
        let now = Instant::now();
        Conn {
            stream,
            peer,
            local,
            input: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            pending: None,
            continued: false,
            phase: Phase::Open,
            eof: false,
            last_active: now,
            linger_until: now,
        }
    }

    /// Reads what has arrived, keeping at most `cap` bytes of input: the rest stays in the
    /// socket until the requests before it are answered.
    fn read_available(&mut self, cap: usize) {
        let mut buf = [0u8; 16 * 1024];
        let mut budget = cap;
        while budget > 0 {
            if self.phase == Phase::Open && self.input.len() >= cap {
                return;
            }
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    self.eof = true;
                    return;
                }
                Ok(n) => {
                    budget = budget.saturating_sub(n);
                    if self.phase == Phase::Open {
                        self.input.extend_from_slice(&buf[..n]);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    self.phase = Phase::Done;
                    return;
                }
            }
        }
    }

    /// Moves the connection forward as far as it can go without blocking.
    fn pump<H: Handler>(&mut self, handler: &mut H, server: &str) {
        loop {
            match self.phase {
                Phase::Done => return,
                Phase::Lingering => {
                    if self.eof || Instant::now() >= self.linger_until {
                        self.phase = Phase::Done;
                    }
                    return;
                }
                Phase::Open | Phase::Closing => {}
            }
            if self.out_pos < self.out.len() {
                match self.stream.write(&self.out[self.out_pos..]) {
                    Ok(0) => self.phase = Phase::Done,
                    Ok(n) => self.out_pos += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => self.phase = Phase::Done,
                }
                continue;
            }
            self.out.clear();
            self.out_pos = 0;
            if self.out.capacity() > 64 * 1024 {
                self.out.shrink_to(4096);
            }
            if self.phase == Phase::Closing {
                let _ = self.stream.shutdown(Shutdown::Write);
                self.input = Vec::new();
                self.phase = Phase::Lingering;
                self.linger_until = Instant::now() + LINGER;
                continue;
            }
            let (req, used) = match self.pending.take() {
                Some(p) => p,
                None => match http::parse_request(&self.input) {
                    Parse::Complete(req, used) => {
                        if req.content_length > H::MAX_BODY as u64 {
                            let resp = handler.refuse(413);
                            self.queue(server, Some(&req), resp, false);
                            continue;
                        }
                        self.continued = false;
                        (req, used)
                    }
                    Parse::Partial => {
                        if self.eof {
                            self.phase = Phase::Done;
                        }
                        return;
                    }
                    Parse::Error(status) => {
                        let resp = handler.refuse(status);
                        self.queue(server, None, resp, false);
                        continue;
                    }
                },
            };
            // Fits in usize: checked against MAX_BODY above.
            let need = used + req.content_length as usize;
            if self.input.len() < need {
                let go_ahead = req.expect_continue && req.minor == 1 && !self.continued;
                self.pending = Some((req, used));
                if go_ahead {
                    self.continued = true;
                    self.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                    continue;
                }
                if self.eof {
                    self.phase = Phase::Done;
                }
                return;
            }
            let resp = handler.handle(&req, &self.input[used..need], self.local);
            self.input.drain(..need);
            if self.input.capacity() > 64 * 1024 && self.input.len() < 16 * 1024 {
                self.input.shrink_to(16 * 1024);
            }
            self.queue(server, Some(&req), resp, req.keep_alive);
        }
    }

    /// Queues `resp` (without its body for `HEAD`) and writes the access-log line; a
    /// response that does not keep the connection closes it. `req` is `None` when the head
    /// could not be parsed.
    fn queue(&mut self, server: &str, req: Option<&Request>, resp: Response, keep: bool) {
        let head_only = req.is_some_and(|r| r.method == "HEAD");
        let headers: Vec<(&str, &str)> =
            resp.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        self.out = http::response_head(server, resp.status, &headers, resp.body.len() as u64, keep);
        let sent = if head_only || http::bodiless(resp.status) {
            0
        } else {
            self.out.extend_from_slice(&resp.body);
            resp.body.len()
        };
        self.out_pos = 0;
        if !keep {
            self.phase = Phase::Closing;
        }
        let (line, agent) = match req {
            Some(r) => (
                format!("{} {} HTTP/1.{}", r.method, r.target, r.minor),
                if r.user_agent.is_empty() {
                    "-"
                } else {
                    r.user_agent.as_str()
                },
            ),
            None => ("-".to_string(), "-"),
        };
        let date = http::log_date(SystemTime::now());
        println!(
            "{} - - [{date}] \"{line}\" {} {sent} \"{agent}\"",
            self.peer, resp.status
        );
    }
}

impl Connection for Conn {
    fn stream(&self) -> &TcpStream {
        &self.stream
    }

    fn wants_write(&self) -> bool {
        self.out_pos < self.out.len()
    }

    /// A request is in flight: partly read, or a response partly sent.
    fn busy(&self) -> bool {
        match self.phase {
            Phase::Open => self.wants_write() || !self.input.is_empty(),
            Phase::Closing => true,
            Phase::Lingering | Phase::Done => false,
        }
    }

    fn done(&self) -> bool {
        self.phase == Phase::Done
    }

    fn deadline(&self) -> Instant {
        match self.phase {
            Phase::Lingering => self.linger_until,
            _ => self.last_active + KEEPALIVE,
        }
    }
}

/// Serves `listener` with `handler` until it is closed (the node closes a terminating pod's
/// listeners, WASI's stand-in for SIGTERM); then finishes the requests in flight, closes idle
/// keep-alive connections and returns.
pub fn serve<H: Handler>(listener: TcpListener, handler: &mut H) -> io::Result<()> {
    let server = format!("wasmkube-{}", H::NAME);
    // A whole request: head (with the blank lines tolerated before it) plus body.
    let cap = 2 * http::MAX_HEAD + H::MAX_BODY;
    event_loop::run(H::NAME, listener, Conn::new, |c, now| {
        c.last_active = now;
        if !c.wants_write() {
            c.read_available(cap);
        }
        c.pump(handler, &server);
    })
}
