//! The HTTP/1.1 subset the servers speak (`web`, `kv`, `api`): request heads, response
//! heads, error pages and dates.
//!
//! Nothing here knows about files, keys or routes. Bodies are framed by `Content-Length`
//! only; a chunked request is refused with 411, which every client answers by sending a
//! length. `web` reads `content_length` only to skip a body it does not want.

use std::time::{SystemTime, UNIX_EPOCH};

/// The largest request head accepted; longer ones get 431.
pub const MAX_HEAD: usize = 16 * 1024;

/// A parsed request head.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// `GET`, `PUT`, ...
    pub method: String,
    /// The request target as sent (`/path?query`).
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
    /// `User-Agent`, for the access log.
    pub user_agent: String,
    /// Bytes of request body that follow the head.
    pub content_length: u64,
    /// `Expect: 100-continue`: the client waits for a go-ahead before sending its body.
    pub expect_continue: bool,
}

impl Request {
    /// The target without its query string.
    pub fn path(&self) -> &str {
        self.target
            .split_once('?')
            .map_or(self.target.as_str(), |(p, _)| p)
    }
}

/// The outcome of looking at the start of a connection's input.
#[derive(Debug, PartialEq)]
pub enum Parse {
    /// A request head and how many bytes it took (its body follows).
    Complete(Request, usize),
    /// The head has not fully arrived yet.
    Partial,
    /// Unparseable: answer with this status and close.
    Error(u16),
}

fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|p| p + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Parses one request head from the front of `buf`.
pub fn parse_request(buf: &[u8]) -> Parse {
    // Tolerate blank lines between pipelined requests (RFC 9112 section 2.2).
    let skip = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    let rest = &buf[skip..];
    let Some(end) = head_end(rest) else {
        return if buf.len() > MAX_HEAD {
            Parse::Error(431)
        } else {
            Parse::Partial
        };
    };
    if end > MAX_HEAD {
        return Parse::Error(431);
    }
    let Ok(head) = std::str::from_utf8(&rest[..end]) else {
        return Parse::Error(400);
    };
    let mut lines = head.lines();
    let mut parts = lines.next().unwrap_or("").split_ascii_whitespace();
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Parse::Error(400);
    };
    let minor = match version {
        "HTTP/1.1" => 1,
        "HTTP/1.0" => 0,
        v if v.starts_with("HTTP/") => return Parse::Error(505),
        _ => return Parse::Error(400),
    };
    let mut req = Request {
        method: method.to_string(),
        target: target.to_string(),
        minor,
        keep_alive: minor == 1,
        user_agent: String::new(),
        content_length: 0,
        expect_continue: false,
    };
    let mut length_seen = false;
    for line in lines.filter(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            return Parse::Error(400);
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "connection" => {
                for token in value.split(',').map(|t| t.trim().to_ascii_lowercase()) {
                    match token.as_str() {
                        "close" => req.keep_alive = false,
                        "keep-alive" => req.keep_alive = true,
                        _ => {}
                    }
                }
            }
            "content-length" => match value.parse() {
                // Two different lengths make the framing ambiguous (request smuggling).
                Ok(n) if !length_seen || n == req.content_length => {
                    req.content_length = n;
                    length_seen = true;
                }
                _ => return Parse::Error(400),
            },
            "transfer-encoding" => return Parse::Error(411),
            "expect" => req.expect_continue = value.eq_ignore_ascii_case("100-continue"),
            "user-agent" => req.user_agent = value.to_string(),
            _ => {}
        }
    }
    Parse::Complete(req, skip + end)
}

/// The reason phrase for the statuses these servers send.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Whether a response with `status` never has a body (RFC 9110 section 6.4.1).
pub fn bodiless(status: u16) -> bool {
    (100..200).contains(&status) || status == 204 || status == 304
}

/// Builds a response head: `Content-Length` (not for 204), the connection decision, and
/// `server` (`wasmkube-kv`) as the `Server` header.
pub fn response_head(
    server: &str,
    status: u16,
    headers: &[(&str, &str)],
    content_length: u64,
    keep_alive: bool,
) -> Vec<u8> {
    response_head_with_reason(
        server,
        status,
        reason(status),
        headers,
        content_length,
        keep_alive,
    )
}

/// [`response_head`] with a reason phrase of the caller's (`web` says `405 Not Allowed`, as
/// nginx does).
pub fn response_head_with_reason(
    server: &str,
    status: u16,
    reason: &str,
    headers: &[(&str, &str)],
    content_length: u64,
    keep_alive: bool,
) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nServer: {server}\r\nDate: {}\r\n",
        http_date(SystemTime::now())
    );
    if !bodiless(status) {
        head.push_str(&format!("Content-Length: {content_length}\r\n"));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(if keep_alive {
        "Connection: keep-alive\r\n\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
    head.into_bytes()
}

/// A small HTML body for error statuses, in nginx's style, signed by `server`.
pub fn error_body(server: &str, status: u16, reason: &str) -> String {
    let title = format!("{status} {reason}");
    format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n\
         <hr><center>{server}</center>\r\n</body>\r\n</html>\r\n"
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];

/// (year, month name, day, hour, minute, second, weekday name) of `t` in UTC.
fn parts(t: SystemTime) -> (i64, &'static str, u32, i64, i64, i64, &'static str) {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    (
        year,
        MONTHS[month as usize - 1],
        day,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        WEEKDAYS[days.rem_euclid(7) as usize],
    )
}

/// An IMF-fixdate for the `Date` header: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn http_date(t: SystemTime) -> String {
    let (y, mon, d, h, min, s, wd) = parts(t);
    format!("{wd}, {d:02} {mon} {y} {h:02}:{min:02}:{s:02} GMT")
}

/// The access-log time: `06/Nov/1994:08:49:37 +0000`.
pub fn log_date(t: SystemTime) -> String {
    let (y, mon, d, h, min, s, _) = parts(t);
    format!("{d:02}/{mon}/{y}:{h:02}:{min:02}:{s:02} +0000")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn complete(raw: &str) -> (Request, usize) {
        match parse_request(raw.as_bytes()) {
            Parse::Complete(r, n) => (r, n),
            other => panic!("expected a request, got {other:?}"),
        }
    }

    #[test]
    fn parses_a_put_with_its_body_length() {
        let raw = "PUT /keys/a?x=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\
                   User-Agent: curl/8\r\nExpect: 100-continue\r\n\r\nhello";
        let (r, n) = complete(raw);
        assert_eq!(
            (r.method.as_str(), r.path(), r.minor, r.content_length),
            ("PUT", "/keys/a", 1, 5)
        );
        assert!(r.keep_alive && r.expect_continue);
        assert_eq!(r.user_agent, "curl/8");
        assert_eq!(&raw[n..], "hello");
    }

    #[test]
    fn parses_a_keep_alive_get() {
        let raw = "GET /index.html?a=1 HTTP/1.1\r\nHost: x\r\nUser-Agent: curl/8\r\n\r\nGET /next";
        let (r, n) = complete(raw);
        assert_eq!(
            (r.method.as_str(), r.target.as_str(), r.minor),
            ("GET", "/index.html?a=1", 1)
        );
        assert!(r.keep_alive);
        assert_eq!(r.user_agent, "curl/8");
        assert_eq!(&raw[n..], "GET /next");
    }

    #[test]
    fn connection_header_decides_keep_alive() {
        let close = complete("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").0;
        assert!(!close.keep_alive);
        assert!(!complete("GET / HTTP/1.0\r\n\r\n").0.keep_alive);
        let ka = complete("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").0;
        assert!(ka.keep_alive);
    }

    #[test]
    fn accepts_bare_newlines_and_leading_blank_lines() {
        let raw = "\r\nGET /keys HTTP/1.1\nHost: x\n\n";
        let (r, n) = complete(raw);
        assert_eq!((r.method.as_str(), r.path()), ("GET", "/keys"));
        assert_eq!(n, raw.len(), "the whole input is one head");
        let (r, n) = complete("\r\nHEAD / HTTP/1.1\nHost: x\n\n");
        assert_eq!(r.method, "HEAD");
        assert_eq!(n, 27, "the whole input is one head");
    }

    #[test]
    fn reads_content_length_so_bodies_can_be_skipped() {
        assert_eq!(
            complete("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")
                .0
                .content_length,
            5
        );
    }

    #[test]
    fn partial_and_malformed_heads() {
        assert_eq!(parse_request(b"GET / HTTP/1.1\r\nHost:"), Parse::Partial);
        assert_eq!(parse_request(b"GARBAGE\r\n\r\n"), Parse::Error(400));
        assert_eq!(parse_request(b"GET / HTTP/2.0\r\n\r\n"), Parse::Error(505));
        assert_eq!(
            parse_request(b"GET / HTTP/1.1\r\nBad header\r\n\r\n"),
            Parse::Error(400)
        );
        assert_eq!(
            parse_request(b"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Parse::Error(411)
        );
        assert_eq!(
            parse_request(b"PUT / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            Parse::Error(400)
        );
        assert_eq!(
            parse_request(b"PUT / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
            Parse::Error(400)
        );
        assert_eq!(parse_request(&vec![b'a'; MAX_HEAD + 1]), Parse::Error(431));
    }

    #[test]
    fn formats_dates() {
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(log_date(t), "06/Nov/1994:08:49:37 +0000");
        assert_eq!(
            http_date(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "Tue, 29 Feb 2000 00:00:00 GMT"
        );
    }

    #[test]
    fn response_head_has_length_except_for_no_content() {
        let h = String::from_utf8(response_head(
            "wasmkube-kv",
            404,
            &[("Content-Type", "text/plain")],
            12,
            false,
        ))
        .unwrap();
        assert!(h.starts_with("HTTP/1.1 404 Not Found\r\nServer: wasmkube-kv\r\n"));
        assert!(h.contains("Content-Length: 12\r\n"));
        assert!(h.contains("Content-Type: text/plain\r\n"));
        assert!(h.ends_with("Connection: close\r\n\r\n"));
        let h = String::from_utf8(response_head("s", 204, &[], 0, true)).unwrap();
        assert!(!h.contains("Content-Length"));
        assert!(h.ends_with("Connection: keep-alive\r\n\r\n"));
    }

    #[test]
    fn web_keeps_nginx_reason_and_error_page() {
        let h = String::from_utf8(response_head_with_reason(
            "wasmkube-web",
            405,
            "Not Allowed",
            &[("Content-Type", "text/html")],
            12,
            false,
        ))
        .unwrap();
        assert!(h.starts_with("HTTP/1.1 405 Not Allowed\r\nServer: wasmkube-web\r\n"));
        assert!(h.contains("Content-Length: 12\r\n"));
        assert!(h.contains("Content-Type: text/html\r\n"));
        assert!(h.ends_with("Connection: close\r\n\r\n"));
        let page = error_body("wasmkube-web", 404, reason(404));
        assert!(page.contains("<title>404 Not Found</title>"));
        assert!(page.contains("<center>wasmkube-web</center>"));
    }
}
