//! The JSON API: `GET /healthz`, `GET /` (who answered) and `GET /visits` (a counter kept
//! in kv). Pure request-to-response logic apart from the call to kv, so tests call
//! [`Api::route`] without a socket.

use crate::kv::{self, KvUrl};
use guest::http::Request;
use guest::server::{Handler, Response};
use std::net::SocketAddr;

/// The program's [`Handler`].
#[derive(Debug, Clone)]
pub struct Api {
    /// Where kv is, or why it is not known (`KV_URL` unset or invalid).
    pub kv: Result<KvUrl, String>,
    /// The pod name (`HOSTNAME`).
    pub hostname: Option<String>,
    /// The pod IP (`POD_IP`); when unset, the address the connection arrived on.
    pub pod_ip: Option<String>,
}

impl Handler for Api {
    const NAME: &'static str = "api";
    // Nothing here reads a body; small ones are skipped, large ones refused.
    const MAX_BODY: usize = 64 * 1024;

    fn handle(&mut self, req: &Request, _body: &[u8], local: Option<SocketAddr>) -> Response {
        self.route(&req.method, req.path(), local)
    }

    fn refuse(&mut self, status: u16) -> Response {
        error(status, &guest::http::reason(status).to_lowercase())
    }
}

/// `s` as a JSON string literal.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_or_null(s: Option<&str>) -> String {
    s.map_or_else(|| "null".to_string(), json_string)
}

fn json(status: u16, body: String) -> Response {
    Response::new(status, "application/json", body)
}

fn error(status: u16, message: &str) -> Response {
    json(status, format!("{{\"error\":{}}}", json_string(message)))
}

impl Api {
    /// Answers one request. `HEAD` is answered like `GET` except on `/visits`, which counts.
    pub fn route(&mut self, method: &str, path: &str, local: Option<SocketAddr>) -> Response {
        let read = matches!(method, "GET" | "HEAD");
        match path {
            "/healthz" | "/" if !read => {
                error(405, "method not allowed").with_header("Allow", "GET, HEAD")
            }
            "/visits" if method != "GET" => {
                error(405, "method not allowed").with_header("Allow", "GET")
            }
            "/healthz" => json(200, r#"{"status":"ok"}"#.to_string()),
            "/" => {
                let local_ip = local.map(|a| a.ip().to_string());
                let pod_ip = self.pod_ip.as_deref().or(local_ip.as_deref());
                json(
                    200,
                    format!(
                        r#"{{"service":"api","hostname":{},"pod_ip":{}}}"#,
                        json_or_null(self.hostname.as_deref()),
                        json_or_null(pod_ip)
                    ),
                )
            }
            "/visits" => self.visits(),
            _ => error(404, &format!("no route {path}: try /, /healthz or /visits")),
        }
    }

    fn visits(&self) -> Response {
        let url = match &self.kv {
            Ok(url) => url,
            Err(why) => {
                eprintln!("api: /visits: {why}");
                return error(503, why);
            }
        };
        match kv::incr(url, "visits") {
            Ok(n) => json(200, format!(r#"{{"visits":{n}}}"#)),
            Err(e) => {
                let message = format!("kv at {url} (KV_URL): {e}");
                eprintln!("api: /visits: {message}");
                error(if e.unreachable() { 503 } else { 502 }, &message)
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::mpsc;

    /// A stand-in kv that answers each connection with the next of `responses` and reports
    /// the request lines it saw.
    pub(crate) fn fake_kv(responses: Vec<&'static str>) -> (KvUrl, mpsc::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for response in responses {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let _ = tx.send(line.trim_end().to_string());
                loop {
                    let mut header = String::new();
                    reader.read_line(&mut header).unwrap();
                    if header.trim_end().is_empty() {
                        break;
                    }
                }
                reader.get_mut().write_all(response.as_bytes()).unwrap();
            }
        });
        (
            KvUrl::parse(&format!("http://127.0.0.1:{port}")).unwrap(),
            rx,
        )
    }

    fn api(kv: Result<KvUrl, String>) -> Api {
        Api {
            kv,
            hostname: Some("api-7d9f".into()),
            pod_ip: None,
        }
    }

    fn get(api: &mut Api, path: &str) -> (u16, String) {
        let local = "10.244.1.5:3000".parse().ok();
        let r = api.route("GET", path, local);
        assert!(
            r.headers
                .contains(&("Content-Type", "application/json".into())),
            "{path}"
        );
        (r.status, String::from_utf8(r.body).unwrap())
    }

    #[test]
    fn answers_health_and_identity_in_json() {
        let mut a = api(Err("unset".into()));
        assert_eq!(get(&mut a, "/healthz"), (200, r#"{"status":"ok"}"#.into()));
        assert_eq!(
            get(&mut a, "/"),
            (
                200,
                r#"{"service":"api","hostname":"api-7d9f","pod_ip":"10.244.1.5"}"#.into()
            )
        );
        a.pod_ip = Some("10.0.0.9".into());
        a.hostname = None;
        assert_eq!(
            get(&mut a, "/").1,
            r#"{"service":"api","hostname":null,"pod_ip":"10.0.0.9"}"#
        );
        assert_eq!(get(&mut a, "/nope").0, 404);
        assert_eq!(a.route("POST", "/", None).status, 405);
        assert_eq!(a.route("HEAD", "/visits", None).status, 405);
    }

    #[test]
    fn escapes_json_strings() {
        assert_eq!(json_string("a\"b\\c\nd\u{1}é"), r#""a\"b\\c\nd\u0001é""#);
    }

    #[test]
    fn visits_count_in_kv() {
        let (url, seen) = fake_kv(vec![
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n7\n",
            "HTTP/1.1 409 Conflict\r\nContent-Length: 15\r\n\r\nnot an integer\n",
        ]);
        let mut a = api(Ok(url));
        assert_eq!(get(&mut a, "/visits"), (200, r#"{"visits":7}"#.into()));
        assert_eq!(seen.recv().unwrap(), "POST /keys/visits/incr HTTP/1.1");
        let (status, body) = get(&mut a, "/visits");
        assert_eq!(status, 502);
        assert!(body.contains("answered 409: not an integer"), "{body}");
    }

    #[test]
    fn visits_without_kv_is_503_with_a_reason() {
        let mut a = api(Err(
            "KV_URL is not set: point it at kv, e.g. KV_URL=http://kv:8080".into(),
        ));
        let (status, body) = get(&mut a, "/visits");
        assert_eq!(status, 503);
        assert!(body.starts_with(r#"{"error":"KV_URL is not set"#), "{body}");

        // A port nobody listens on.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut a = api(KvUrl::parse(&format!("127.0.0.1:{port}")));
        let (status, body) = get(&mut a, "/visits");
        assert_eq!(status, 503);
        assert!(body.contains("cannot connect to 127.0.0.1"), "{body}");

        let mut a = api(KvUrl::parse("http://no-such-host.invalid:8080"));
        let (status, body) = get(&mut a, "/visits");
        assert_eq!(status, 503);
        assert!(body.contains("cannot resolve"), "{body}");
    }
}
