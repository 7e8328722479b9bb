//! The client side of `kv`: the `KV_URL` address and `POST /keys/K/incr` over a fresh
//! connection per call.
//!
//! The host may be a name (`kv`, the Service): std's `ToSocketAddrs` resolves it, which on
//! wasip2 goes through wasi-libc's `getaddrinfo` to `wasi:sockets/ip-name-lookup`. Connect,
//! read and write all have timeouts (wasi-libc implements `SO_RCVTIMEO`/`SO_SNDTIMEO` and
//! std's `connect_timeout` over its `poll`), so a dead kv costs a request a few seconds,
//! not forever.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// How long to wait for kv to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long to wait for each read or write once connected.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// The most of kv's response that is read.
const MAX_RESPONSE: u64 = 64 * 1024;

/// Where kv listens, parsed from `KV_URL` (`http://kv:8080`, `127.0.0.1:8080`, `http://[::1]:8080/prefix`).
#[derive(Debug, Clone, PartialEq)]
pub struct KvUrl {
    /// A name or an IP address (IPv6 without brackets).
    pub host: String,
    /// The port; 80 when the URL has none.
    pub port: u16,
    /// A path the API is mounted under, without a trailing slash; usually empty.
    pub prefix: String,
}

impl KvUrl {
    /// Parses `KV_URL`. The scheme may be left out; only `http` is spoken.
    pub fn parse(s: &str) -> Result<KvUrl, String> {
        let s = s.trim();
        let rest = match s.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) => {
                return Err(format!(
                    "scheme {scheme:?} is not supported: kv speaks plain http"
                ));
            }
            None => s,
        };
        if rest.contains(['?', '#']) {
            return Err("a query or fragment has no meaning here".into());
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err("credentials in the URL are not supported".into());
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or("an IPv6 address needs its closing bracket")?;
            match after {
                "" => (host, None),
                p => (
                    host,
                    Some(p.strip_prefix(':').ok_or("junk after the IPv6 address")?),
                ),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err("the host is missing".into());
        }
        let port = match port {
            Some(p) => p.parse().map_err(|_| format!("invalid port {p:?}"))?,
            None => 80,
        };
        Ok(KvUrl {
            host: host.to_string(),
            port,
            prefix: path.trim_end_matches('/').to_string(),
        })
    }

    /// `host:port` as the `Host` header wants it.
    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for KvUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.authority(), self.prefix)
    }
}

/// Why a call to kv failed.
#[derive(Debug)]
pub enum KvError {
    /// The host name did not resolve.
    ResolveFailed {
        /// The name.
        host: String,
        /// The cause.
        source: io::Error,
    },
    /// No address of the host accepted a connection.
    ConnectFailed {
        /// The last address tried.
        addr: SocketAddr,
        /// The cause.
        source: io::Error,
    },
    /// The connection broke or timed out mid-exchange.
    ExchangeFailed(io::Error),
    /// The answer was not HTTP, or not a number.
    BadResponse(String),
    /// kv answered with an error status.
    Status {
        /// The status code.
        status: u16,
        /// The start of the body.
        body: String,
    },
}

impl KvError {
    /// Whether kv could not be reached at all (503), as opposed to answering badly (502).
    pub fn unreachable(&self) -> bool {
        matches!(
            self,
            KvError::ResolveFailed { .. }
                | KvError::ConnectFailed { .. }
                | KvError::ExchangeFailed(_)
        )
    }
}

impl fmt::Display for KvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KvError::ResolveFailed { host, source } => write!(
                f,
                "cannot resolve {host:?} ({source}); is there a Service of that name?"
            ),
            KvError::ConnectFailed { addr, source } => {
                write!(f, "cannot connect to {addr}: {source}")
            }
            KvError::ExchangeFailed(e) => write!(f, "no answer: {e}"),
            KvError::BadResponse(why) => write!(f, "bad response: {why}"),
            KvError::Status { status, body } => write!(f, "answered {status}: {body}"),
        }
    }
}

/// Atomically adds 1 to the counter `key` in kv and returns the new value.
pub fn incr(url: &KvUrl, key: &str) -> Result<i64, KvError> {
    let path = format!("{}/keys/{key}/incr", url.prefix);
    let (status, body) = post(url, &path)?;
    let text = String::from_utf8_lossy(&body).trim().to_string();
    if status != 200 {
        let body = text.chars().take(200).collect();
        return Err(KvError::Status { status, body });
    }
    text.parse()
        .map_err(|_| KvError::BadResponse(format!("{text:?} is not a number")))
}

/// Sends `POST path` with an empty body and returns kv's status and body.
fn post(url: &KvUrl, path: &str) -> Result<(u16, Vec<u8>), KvError> {
    let addrs: Vec<SocketAddr> = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|source| KvError::ResolveFailed {
            host: url.host.clone(),
            source,
        })?
        .collect();
    let mut last = Err(KvError::ResolveFailed {
        host: url.host.clone(),
        source: io::Error::new(io::ErrorKind::NotFound, "no addresses"),
    });
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(stream) => {
                last = Ok(stream);
                break;
            }
            Err(source) => last = Err(KvError::ConnectFailed { addr, source }),
        }
    }
    let mut stream = last?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: wasmkube-api/{}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n",
        url.authority(),
        env!("CARGO_PKG_VERSION")
    );
    let mut raw = Vec::new();
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)))
        .and_then(|()| stream.write_all(request.as_bytes()))
        .and_then(|()| (&mut stream).take(MAX_RESPONSE).read_to_end(&mut raw))
        .map_err(KvError::ExchangeFailed)?;
    parse_response(&raw).map_err(KvError::BadResponse)
}

/// Splits a whole HTTP/1.1 response (read until the server closed) into status and body.
pub fn parse_response(raw: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no complete response head")?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| "the head is not text")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|s| s.get(2..5))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let body = &raw[end + 4..];
    for line in lines {
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-length")
        {
            let len: usize = value
                .trim()
                .parse()
                .map_err(|_| format!("bad Content-Length {value:?}"))?;
            let body = body.get(..len).ok_or("the body is cut short")?;
            return Ok((status, body.to_vec()));
        }
    }
    Ok((status, body.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(host: &str, port: u16, prefix: &str) -> KvUrl {
        KvUrl {
            host: host.into(),
            port,
            prefix: prefix.into(),
        }
    }

    #[test]
    fn parses_kv_urls() {
        assert_eq!(KvUrl::parse("http://kv:8080"), Ok(url("kv", 8080, "")));
        assert_eq!(
            KvUrl::parse(" HTTP://127.0.0.1:8080/ "),
            Ok(url("127.0.0.1", 8080, ""))
        );
        assert_eq!(KvUrl::parse("kv:6379"), Ok(url("kv", 6379, "")));
        assert_eq!(
            KvUrl::parse("http://kv.default.svc.cluster.local"),
            Ok(url("kv.default.svc.cluster.local", 80, ""))
        );
        assert_eq!(
            KvUrl::parse("http://[::1]:8080/v1/"),
            Ok(url("::1", 8080, "/v1"))
        );
        assert_eq!(KvUrl::parse("http://[fd00::1]"), Ok(url("fd00::1", 80, "")));
        for bad in [
            "https://kv:8080",
            "redis://kv:6379",
            "http://:8080",
            "http://kv:port",
            "http://kv:99999",
            "http://user:pw@kv:8080",
            "http://[::1:8080",
            "http://kv:8080/?x=1",
            "",
        ] {
            assert!(KvUrl::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn prints_urls_back() {
        assert_eq!(url("kv", 8080, "").to_string(), "http://kv:8080");
        assert_eq!(url("::1", 80, "/v1").to_string(), "http://[::1]:80/v1");
    }

    #[test]
    fn parses_responses() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n7\n";
        assert_eq!(parse_response(ok), Ok((200, b"7\n".to_vec())));
        let no_length = b"HTTP/1.0 409 Conflict\r\n\r\nnot an integer\n";
        assert_eq!(
            parse_response(no_length),
            Ok((409, b"not an integer\n".to_vec()))
        );
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n1").is_err());
        assert!(parse_response(b"SSH-2.0-OpenSSH\r\n").is_err());
        assert!(parse_response(b"garbage\r\n\r\n").is_err());
    }
}
