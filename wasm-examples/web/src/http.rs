//! The HTTP/1.x subset the server speaks: request-head parsing, response heads and dates.

use std::time::{SystemTime, UNIX_EPOCH};

/// The largest request head accepted; longer ones get 431.
pub const MAX_HEAD: usize = 16 * 1024;

/// A parsed request head.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// `GET`, `HEAD`, ...
    pub method: String,
    /// The request target as sent (`/path?query`).
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
    /// `User-Agent`, for the access log.
    pub user_agent: String,
    /// Bytes of request body that follow the head (skipped by the server).
    pub content_length: u64,
}

/// The outcome of looking at the start of a connection's input.
#[derive(Debug, PartialEq)]
pub enum Parse {
    /// A request and how many bytes its head took.
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
    let buf_rest = &buf[skip..];
    let Some(end) = head_end(buf_rest) else {
        return if buf.len() > MAX_HEAD {
            Parse::Error(431)
        } else {
            Parse::Partial
        };
    };
    if end > MAX_HEAD {
        return Parse::Error(431);
    }
    let Ok(head) = std::str::from_utf8(&buf_rest[..end]) else {
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
    };
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
                Ok(n) => req.content_length = n,
                Err(_) => return Parse::Error(400),
            },
            // A chunked request body cannot be skipped without decoding it; nothing here needs one.
            "transfer-encoding" => return Parse::Error(411),
            "user-agent" => req.user_agent = value.to_string(),
            _ => {}
        }
    }
    Parse::Complete(req, skip + end)
}

/// The reason phrase for the statuses this server sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Not Allowed",
        411 => "Length Required",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Builds a response head with `Content-Length` and the connection decision.
pub fn response_head(
    status: u16,
    headers: &[(&str, &str)],
    content_length: u64,
    keep_alive: bool,
) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nServer: wasmkube-web\r\nDate: {}\r\nContent-Length: {content_length}\r\n",
        reason(status),
        http_date(SystemTime::now())
    );
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

/// A small HTML body for error statuses, in nginx's style.
pub fn error_body(status: u16) -> String {
    let title = format!("{status} {}", reason(status));
    format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n\
         <hr><center>wasmkube-web</center>\r\n</body>\r\n</html>\r\n"
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
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

struct Parts {
    year: i64,
    month: u32,
    day: u32,
    hms: (i64, i64, i64),
    weekday: usize,
}

fn parts(t: SystemTime) -> Parts {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    Parts {
        year,
        month,
        day,
        hms: (rem / 3600, rem % 3600 / 60, rem % 60),
        weekday: days.rem_euclid(7) as usize,
    }
}

/// An IMF-fixdate for the `Date` header: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn http_date(t: SystemTime) -> String {
    let p = parts(t);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[p.weekday],
        p.day,
        MONTHS[p.month as usize - 1],
        p.year,
        p.hms.0,
        p.hms.1,
        p.hms.2
    )
}

/// The access-log time: `06/Nov/1994:08:49:37 +0000`.
pub fn log_date(t: SystemTime) -> String {
    let p = parts(t);
    format!(
        "{:02}/{}/{}:{:02}:{:02}:{:02} +0000",
        p.day,
        MONTHS[p.month as usize - 1],
        p.year,
        p.hms.0,
        p.hms.1,
        p.hms.2
    )
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
        assert!(
            !complete("GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
                .0
                .keep_alive
        );
        assert!(!complete("GET / HTTP/1.0\r\n\r\n").0.keep_alive);
        assert!(
            complete("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
                .0
                .keep_alive
        );
    }

    #[test]
    fn accepts_bare_newlines_and_leading_blank_lines() {
        let (r, n) = complete("\r\nHEAD / HTTP/1.1\nHost: x\n\n");
        assert_eq!(r.method, "HEAD");
        assert_eq!(n, 27, "the whole input is one head");
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
            parse_request(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Parse::Error(411)
        );
        assert_eq!(parse_request(&vec![b'a'; MAX_HEAD + 1]), Parse::Error(431));
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
    fn response_head_has_length_and_connection() {
        let h = String::from_utf8(response_head(
            404,
            &[("Content-Type", "text/html")],
            12,
            false,
        ))
        .unwrap();
        assert!(h.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(h.contains("Content-Length: 12\r\n"));
        assert!(h.contains("Content-Type: text/html\r\n"));
        assert!(h.ends_with("Connection: close\r\n\r\n"));
    }
}
