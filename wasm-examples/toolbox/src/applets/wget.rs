//! `wget`: HTTP/1.1 GET over std's `TcpStream` (no TLS), following redirects and decoding
//! chunked bodies, with busybox's messages and exit statuses.

use super::nc::connect;
use crate::io::{Io, Output, describe, open_output};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::time::Duration;

/// An `http://host[:port]/path` URL.
#[derive(Debug, PartialEq)]
pub struct Url {
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port, 80 by default.
    pub port: u16,
    /// Path and query, at least `/`.
    pub path: String,
}

/// Parses an `http://` URL (a bare `host/path` is taken as http too).
pub fn parse_url(url: &str) -> Result<Url, String> {
    let rest = match url.split_once("://") {
        Some(("http", rest)) => rest,
        Some(("https", _)) => return Err("https is not supported (no TLS in the toolbox)".into()),
        Some(_) => return Err(format!("not an http url: {url}")),
        None => url,
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path
    };
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or(format!("bad address in {url}"))?;
        (h, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p.parse().map_err(|_| format!("bad port in {url}"))?,
        None => 80,
    };
    if host.is_empty() {
        return Err(format!("no host in {url}"));
    }
    Ok(Url {
        host: host.to_string(),
        port,
        path,
    })
}

pub struct Chunked<R> {
    inner: R,
    left: u64,
    done: bool,
}

impl<R: BufRead> Chunked<R> {
    /// Wraps the reader positioned after the response head.
    pub fn new(inner: R) -> Self {
        Chunked {
            inner,
            left: 0,
            done: false,
        }
    }
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let mut line = String::new();
            self.inner.read_line(&mut line)?;
            let size = line.trim().split(';').next().unwrap_or("");
            self.left = u64::from_str_radix(size, 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
            if self.left == 0 {
                self.done = true;
                return Ok(0);
            }
        }
        let want = buf.len().min(self.left as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.left -= n as u64;
        if self.left == 0 {
            let mut crlf = String::new();
            self.inner.read_line(&mut crlf)?;
        }
        Ok(n)
    }
}

/// `wget [-q] [-O FILE] [-T SEC] [-U AGENT] [--header H] [--post-data DATA] [--spider] URL`.
pub fn wget(io: &mut Io, args: &[String]) -> i32 {
    let (mut quiet, mut spider, mut out_file, mut timeout) = (false, false, None::<String>, None);
    let (mut agent, mut headers, mut url) = ("Wget".to_string(), Vec::new(), None::<String>);
    let mut post = None::<String>;
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let mut next = |name: &str| {
            it.next()
                .cloned()
                .ok_or(format!("option requires an argument -- {name}"))
        };
        let r: Result<(), String> = match a.as_str() {
            "-q" | "--quiet" => {
                quiet = true;
                Ok(())
            }
            "-qO-" | "-O-" => {
                quiet |= a.starts_with("-q");
                out_file = Some("-".into());
                Ok(())
            }
            "-qO" => {
                quiet = true;
                next("O").map(|v| out_file = Some(v))
            }
            "-O" | "--output-document" => next("O").map(|v| out_file = Some(v)),
            "-T" | "--timeout" => {
                next("T").map(|v| timeout = v.parse().ok().map(Duration::from_secs_f64))
            }
            "-U" | "--user-agent" => next("U").map(|v| agent = v),
            "--header" => next("header").map(|v| headers.push(v)),
            "--post-data" => next("post-data").map(|v| post = Some(v)),
            "--spider" => {
                spider = true;
                Ok(())
            }
            "-S" | "-s" | "-c" | "--no-check-certificate" => Ok(()),
            s if s.starts_with("-O") => {
                out_file = Some(s[2..].to_string());
                Ok(())
            }
            s if s.starts_with("--output-document=") => {
                out_file = Some(s[18..].to_string());
                Ok(())
            }
            s if s.starts_with("--post-data=") => {
                post = Some(s[12..].to_string());
                Ok(())
            }
            s if s.starts_with("--timeout=") => {
                timeout = s[10..].parse().ok().map(Duration::from_secs_f64);
                Ok(())
            }
            s if s.starts_with('-') && s.len() > 1 => Err(format!("unrecognized option '{s}'")),
            s => {
                url = Some(s.to_string());
                Ok(())
            }
        };
        if let Err(e) = r {
            io.error("wget", e);
            return 1;
        }
    }
    let Some(mut url) = url else {
        io.error("wget", "missing URL");
        return 1;
    };
    for _ in 0..6 {
        let u = match parse_url(&url) {
            Ok(u) => u,
            Err(e) => {
                io.error("wget", e);
                return 1;
            }
        };
        let (stream, addr) = match connect(&u.host, u.port, timeout) {
            Ok(c) => c,
            Err(e) => {
                io.error(
                    "wget",
                    format!(
                        "can't connect to remote host ({}): {}",
                        u.host,
                        describe(&e)
                    ),
                );
                return 1;
            }
        };
        if !quiet {
            io.error("Connecting to", format!("{}:{} ({addr})", u.host, u.port));
        }
        let host = if u.port == 80 {
            u.host.clone()
        } else {
            format!("{}:{}", u.host, u.port)
        };
        let method = match (&post, spider) {
            (Some(_), _) => "POST",
            (None, true) => "HEAD",
            (None, false) => "GET",
        };
        let mut req = format!(
            "{method} {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {agent}\r\nAccept: */*\r\nConnection: close\r\n",
            u.path
        );
        for h in &headers {
            req.push_str(&format!("{h}\r\n"));
        }
        if let Some(data) = &post {
            req.push_str(&format!(
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{data}",
                data.len()
            ));
        } else {
            req.push_str("\r\n");
        }
        let mut r = BufReader::new(stream);
        let head = r
            .get_mut()
            .write_all(req.as_bytes())
            .and_then(|_| read_head(&mut r));
        let (status_line, resp_headers) = match head {
            Ok(h) => h,
            Err(e) => {
                io.error("wget", format!("error getting response: {}", describe(&e)));
                return 1;
            }
        };
        let code: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let header = |name: &str| {
            resp_headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        if matches!(code, 301 | 302 | 303 | 307 | 308)
            && let Some(loc) = header("location")
        {
            url = if loc.contains("://") {
                loc
            } else {
                format!("http://{host}{loc}")
            };
            continue;
        }
        if !(200..300).contains(&code) {
            io.error("wget", format!("server returned error: {status_line}"));
            return 1;
        }
        if spider {
            return 0;
        }
        let name = out_file.clone().unwrap_or_else(|| {
            let p = u
                .path
                .split('?')
                .next()
                .unwrap_or("")
                .rsplit('/')
                .next()
                .unwrap_or("");
            if p.is_empty() {
                "index.html".into()
            } else {
                p.to_string()
            }
        });
        let mut out: Output = match open_output(io, &name, false) {
            Ok(o) => o,
            Err(e) => {
                io.error("wget", format!("can't open '{name}': {}", describe(&e)));
                return 1;
            }
        };
        if !quiet && name != "-" {
            io.error("saving to", format!("'{name}'"));
        }
        let chunked =
            header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let length = header("content-length").and_then(|v| v.parse::<u64>().ok());
        let copied = if chunked {
            io::copy(&mut Chunked::new(r), &mut out)
        } else if let Some(len) = length {
            io::copy(&mut r.take(len), &mut out).and_then(|n| {
                if n < len {
                    Err(io::ErrorKind::UnexpectedEof.into())
                } else {
                    Ok(n)
                }
            })
        } else {
            io::copy(&mut r, &mut out)
        };
        let _ = out.flush();
        return match copied {
            Ok(_) => 0,
            Err(e) => {
                io.error("wget", format!("error reading body: {}", describe(&e)));
                1
            }
        };
    }
    io.error("wget", "too many redirections");
    1
}

fn read_head(r: &mut impl BufRead) -> io::Result<(String, Vec<(String, String)>)> {
    let mut status = String::new();
    if r.read_line(&mut status)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Ok((status.trim_end().to_string(), headers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::applets::run;
    use std::net::TcpListener;

    #[test]
    fn parses_urls() {
        let url = |host: &str, port, path: &str| Url {
            host: host.into(),
            port,
            path: path.into(),
        };
        assert_eq!(parse_url("http://web").unwrap(), url("web", 80, "/"));
        assert_eq!(
            parse_url("http://web.ns:8080/a?b").unwrap(),
            url("web.ns", 8080, "/a?b")
        );
        assert_eq!(parse_url("10.0.0.1:81").unwrap().port, 81);
        assert_eq!(parse_url("http://[::1]:8080/x").unwrap().host, "::1");
        assert_eq!(parse_url("http://h?q").unwrap().path, "/?q");
        assert!(parse_url("https://x").is_err());
        assert!(parse_url("http://:80/").is_err());
    }

    #[test]
    fn decodes_chunked_bodies() {
        let raw = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n";
        let mut out = String::new();
        Chunked::new(&raw[..]).read_to_string(&mut out).unwrap();
        assert_eq!(out, "hello, world");
    }

    /// Serves the canned responses, one per connection, and returns the port.
    fn serve(responses: Vec<&'static str>) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for resp in responses {
                let (mut s, _) = l.accept().unwrap();
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                s.write_all(resp.as_bytes()).unwrap();
            }
        });
        port
    }

    #[test]
    fn follows_redirects_decodes_bodies_and_fails_on_errors() {
        let port = serve(vec![
            "HTTP/1.1 302 Found\r\nLocation: /there\r\nContent-Length: 0\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
        ]);
        let url = format!("http://127.0.0.1:{port}/here");
        assert_eq!(
            run(wget, &["wget", "-qO-", &url], ""),
            (0, "abc".into(), String::new())
        );
        let (code, _, err) = run(wget, &["wget", "-q", "-O", "-", &url], "");
        assert_eq!(code, 1);
        assert!(
            err.contains("server returned error: HTTP/1.1 404 Not Found"),
            "{err}"
        );
    }
}
