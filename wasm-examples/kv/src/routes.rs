//! The HTTP API over the store: which method and path do what, and the status each outcome
//! gets. Pure request-to-response logic, so tests call [`route`] without a socket.
//!
//! | request | answer |
//! |---|---|
//! | `GET /healthz` | 200 `ok` (503 once the log is unwritable) |
//! | `GET /keys` | 200, the keys one per line, sorted |
//! | `GET /keys/K` | 200 with the value, 404 |
//! | `PUT /keys/K` | 201 new, 204 replaced; 413 over 1 MiB |
//! | `DELETE /keys/K` | 204, 404 |
//! | `POST /keys/K/incr` | 200 with the new value; a missing key counts as 0; 409 if not an integer |
//!
//! `K` is one path segment, percent-decoded (`a%2Fb` is the key `a/b`).

use crate::log::{MAX_KEY, MAX_VALUE};
use crate::store::{Error, Store};
use guest::http::Request;
use guest::server::{Handler, Response};
use std::net::SocketAddr;

/// The program's [`Handler`]: the store behind the HTTP API.
#[derive(Debug)]
pub struct Kv {
    /// The data.
    pub store: Store,
}

impl Handler for Kv {
    const NAME: &'static str = "kv";
    const MAX_BODY: usize = MAX_VALUE;

    fn handle(&mut self, req: &Request, body: &[u8], _local: Option<SocketAddr>) -> Response {
        route(&mut self.store, &req.method, req.path(), body)
    }

    fn refuse(&mut self, status: u16) -> Response {
        match status {
            413 => Response::text(413, "value too large: the limit is 1 MiB\n"),
            _ => Response::text(
                status,
                format!("{}\n", guest::http::reason(status).to_lowercase()),
            ),
        }
    }
}

/// What a path names.
#[derive(Debug, PartialEq)]
enum Target {
    Health,
    List,
    Key(String),
    Incr(String),
    BadKey(String),
    Unknown,
}

fn target(path: &str) -> Target {
    if path == "/healthz" {
        return Target::Health;
    }
    let Some(rest) = path.strip_prefix("/keys") else {
        return Target::Unknown;
    };
    if rest.is_empty() || rest == "/" {
        return Target::List;
    }
    let Some(rest) = rest.strip_prefix('/') else {
        return Target::Unknown;
    };
    let (segment, incr) = match rest.split_once('/') {
        None => (rest, false),
        Some((segment, "incr")) => (segment, true),
        Some(_) => return Target::Unknown,
    };
    match decode_key(segment) {
        Ok(key) if incr => Target::Incr(key),
        Ok(key) => Target::Key(key),
        Err(why) => Target::BadKey(why),
    }
}

/// Percent-decodes a key and checks it can be listed one per line.
fn decode_key(segment: &str) -> Result<String, String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent-encoding in key {segment:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let key = String::from_utf8(out).map_err(|_| format!("key {segment:?} is not UTF-8"))?;
    if key.is_empty() {
        return Err("empty key".into());
    }
    if key.len() > MAX_KEY {
        return Err(format!("key longer than {MAX_KEY} bytes"));
    }
    if key.chars().any(char::is_control) {
        return Err("keys cannot contain control characters".into());
    }
    Ok(key)
}

fn not_allowed(allow: &str) -> Response {
    Response::text(405, "method not allowed\n").with_header("Allow", allow)
}

fn store_error(e: Error) -> Response {
    let status = match e {
        Error::NotAnInteger { .. } | Error::Overflow { .. } => 409,
        Error::Unavailable(_) => 503,
        _ => 500,
    };
    Response::text(status, format!("{e}\n"))
}

/// Answers one request. `HEAD` is routed like `GET` (the loop drops the body).
pub fn route(store: &mut Store, method: &str, path: &str, body: &[u8]) -> Response {
    let read = matches!(method, "GET" | "HEAD");
    match target(path) {
        Target::Health if read => match store.broken() {
            None => Response::text(200, "ok\n"),
            Some(why) => Response::text(503, format!("the log is unwritable: {why}\n")),
        },
        Target::List if read => {
            let mut list = String::new();
            for key in store.keys() {
                list.push_str(key);
                list.push('\n');
            }
            Response::text(200, list)
        }
        Target::Health | Target::List => not_allowed("GET, HEAD"),
        Target::Key(key) => match method {
            "GET" | "HEAD" => match store.get(&key) {
                Some(value) => Response::new(200, "application/octet-stream", value),
                None => Response::text(404, format!("no key {key:?}\n")),
            },
            "PUT" => match store.put(&key, body) {
                Ok(true) => Response::empty(201),
                Ok(false) => Response::empty(204),
                Err(e) => store_error(e),
            },
            "DELETE" => match store.delete(&key) {
                Ok(true) => Response::empty(204),
                Ok(false) => Response::text(404, format!("no key {key:?}\n")),
                Err(e) => store_error(e),
            },
            _ => not_allowed("GET, HEAD, PUT, DELETE"),
        },
        Target::Incr(key) => match method {
            "POST" => match store.incr(&key) {
                Ok(n) => Response::text(200, format!("{n}\n")),
                Err(e) => store_error(e),
            },
            _ => not_allowed("POST"),
        },
        Target::BadKey(why) => Response::text(400, format!("{why}\n")),
        Target::Unknown => Response::text(404, "not found: try /keys or /healthz\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{COMPACT_MIN, tests::temp_dir};

    #[test]
    fn paths_name_keys_lists_and_counters() {
        assert_eq!(target("/healthz"), Target::Health);
        assert_eq!(target("/keys"), Target::List);
        assert_eq!(target("/keys/"), Target::List);
        assert_eq!(target("/keys/a"), Target::Key("a".into()));
        assert_eq!(target("/keys/a%2Fb%20c"), Target::Key("a/b c".into()));
        assert_eq!(target("/keys/visits/incr"), Target::Incr("visits".into()));
        assert_eq!(target("/keys/a/b"), Target::Unknown);
        assert_eq!(target("/keysx"), Target::Unknown);
        assert_eq!(target("/"), Target::Unknown);
        assert!(matches!(target("/keys/%zz"), Target::BadKey(_)));
        assert!(matches!(target("/keys/a%0Ab"), Target::BadKey(_)));
        assert!(matches!(target("/keys/%FF"), Target::BadKey(_)));
        let long = "k".repeat(MAX_KEY + 1);
        assert!(matches!(
            target(&format!("/keys/{long}")),
            Target::BadKey(_)
        ));
    }

    #[test]
    fn statuses_follow_the_api() {
        let dir = temp_dir("routes");
        let (mut s, _) = Store::open(&dir, COMPACT_MIN).unwrap();
        let mut call = |m: &str, p: &str, b: &str| {
            let r = route(&mut s, m, p, b.as_bytes());
            (r.status, String::from_utf8(r.body).unwrap())
        };
        assert_eq!(call("GET", "/healthz", ""), (200, "ok\n".into()));
        assert_eq!(call("PUT", "/keys/b", "x").0, 201);
        assert_eq!(call("PUT", "/keys/b", "hello").0, 204);
        assert_eq!(call("GET", "/keys/b", ""), (200, "hello".into()));
        assert_eq!(call("GET", "/keys/nope", "").0, 404);
        assert_eq!(call("POST", "/keys/visits/incr", ""), (200, "1\n".into()));
        assert_eq!(call("POST", "/keys/visits/incr", ""), (200, "2\n".into()));
        assert_eq!(call("POST", "/keys/b/incr", "").0, 409);
        assert_eq!(call("GET", "/keys", ""), (200, "b\nvisits\n".into()));
        assert_eq!(call("DELETE", "/keys/b", "").0, 204);
        assert_eq!(call("DELETE", "/keys/b", "").0, 404);
        assert_eq!(call("POST", "/keys/b", "").0, 405);
        assert_eq!(call("GET", "/keys/b/incr", "").0, 405);
        assert_eq!(call("PUT", "/keys", "").0, 405);
        assert_eq!(call("GET", "/keys/%zz", "").0, 400);
        assert_eq!(call("GET", "/other", "").0, 404);
        let allow = route(&mut s, "PATCH", "/keys/b", b"");
        assert!(
            allow
                .headers
                .contains(&("Allow", "GET, HEAD, PUT, DELETE".into()))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
