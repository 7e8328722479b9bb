//! `wasmkube/kv`: a durable key-value store over HTTP/1.1, the stand-in for the database
//! (postgres, redis, mysql) of tutorial apps.
//!
//! Listens on `PORT` (else `--port N`, else 8080) and keeps its data in `DATA_DIR` (else
//! `--data-dir D`, else `/data`, which a volume should back). The API (`routes.rs`):
//! `PUT /keys/K` with the value as body, `GET /keys/K`, `DELETE /keys/K`, `GET /keys` (the
//! keys, one per line), `POST /keys/K/incr` (an atomic counter) and `GET /healthz`. Every
//! change is appended to `DIR/kv.log` and synced before it is acknowledged, so an
//! acknowledged write survives a kill at any moment; on start the log is replayed, a record
//! torn by a crash is cut off, and a log mostly made of overwritten data is compacted
//! (`store.rs`). Many keep-alive connections are served from one thread (`server.rs`); one
//! access-log line per request goes to stdout. `kv --version` prints the version: `kv` is the
//! command this image declares in its `wasmkube:commands` section.
//!
//! ```yaml
//! apiVersion: v1
//! kind: Pod
//! metadata:
//!   name: kv
//!   labels: {app: kv}
//! spec:
//!   containers:
//!   - name: kv
//!     image: wasmkube/kv
//!     ports:
//!     - containerPort: 8080
//!     readinessProbe:
//!       httpGet: {path: /healthz, port: 8080}
//!     volumeMounts:
//!     - name: data
//!       mountPath: /data
//!   volumes:
//!   - name: data
//!     emptyDir: {}
//! ---
//! apiVersion: v1
//! kind: Service
//! metadata:
//!   name: kv
//! spec:
//!   selector: {app: kv}
//!   ports:
//!   - port: 8080
//! ```

mod log;
mod routes;
mod store;

use guest::exit;
use std::net::TcpListener;
use std::path::PathBuf;

guest::commands!(
    /// The commands this image provides, for `kubectl exec`: the node agent reads this custom
    /// section (names separated by `\n`) from the component.
    COMMANDS = b"kv"
);

/// What `kv --version` prints.
fn version() -> String {
    guest::version("kv", env!("CARGO_PKG_VERSION"))
}

const USAGE: &str = "usage: kv [--port N] [--data-dir DIR]  (env PORT and DATA_DIR win)";

/// Where the data lives unless told otherwise; mount a volume here.
const DEFAULT_DATA_DIR: &str = "/data";

/// The validated command line and environment.
#[derive(Debug, PartialEq)]
struct Config {
    port: u16,
    data_dir: PathBuf,
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

fn parse_port(s: &str, what: &str) -> Result<u16, String> {
    s.parse().map_err(|_| format!("invalid {what} {s:?}"))
}

/// Reads the configuration: env first, then flags, then defaults.
fn config(args: &[String], env: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
    let (mut port, mut data_dir) = (None, None);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or(format!("{flag} needs a value"))
        };
        match flag {
            "--port" => port = Some(parse_port(&value()?, "--port")?),
            "--data-dir" => data_dir = Some(value()?),
            other => return Err(format!("unexpected argument {other:?}\n{USAGE}")),
        }
    }
    let port = match non_empty(env("PORT")) {
        Some(p) => parse_port(&p, "PORT")?,
        None => port.unwrap_or(8080),
    };
    let data_dir = non_empty(env("DATA_DIR"))
        .or(data_dir)
        .unwrap_or_else(|| DEFAULT_DATA_DIR.into());
    Ok(Config {
        port,
        data_dir: PathBuf::from(data_dir),
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--version" | "-V") => {
            println!("{}", version());
            exit(0)
        }
        Some("--help" | "-h") => {
            println!("{USAGE}");
            exit(0)
        }
        _ => {}
    }
    let cfg = match config(&args, |k| std::env::var(k).ok()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kv: {e}");
            exit(2)
        }
    };
    let dir = cfg.data_dir.display();
    let (store, truncation) = match store::Store::open(&cfg.data_dir, store::COMPACT_MIN) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kv: {e}");
            if matches!(e, store::Error::OpenFailed { .. }) {
                eprintln!("kv: mount a writable volume at {dir} or set DATA_DIR");
            }
            exit(1)
        }
    };
    if let Some(t) = truncation {
        println!(
            "kv: the log ended in a torn record ({}); cut {} byte(s) at offset {}",
            t.reason, t.dropped, t.offset
        );
    }
    let listener = match TcpListener::bind(("0.0.0.0", cfg.port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("kv: cannot listen on port {}: {e}", cfg.port);
            exit(1)
        }
    };
    println!(
        "kv: serving on :{}, data in {dir} ({} keys recovered)",
        cfg.port,
        store.len()
    );
    if let Err(e) = guest::server::serve(listener, &mut routes::Kv { store }) {
        eprintln!("kv: {e}");
        exit(1)
    }
    println!("kv: stopped");
    exit(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    #[test]
    fn declares_its_command_and_its_version() {
        assert_eq!(&COMMANDS, b"kv");
        assert_eq!(version(), "kv (wasmkube) 0.1.0");
    }

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn config_prefers_env_then_flags_then_defaults() {
        let none = |_: &str| None;
        let want = |port, dir: &str| Config {
            port,
            data_dir: PathBuf::from(dir),
        };
        assert_eq!(config(&[], none).unwrap(), want(8080, "/data"));
        let flags = args(&["--port", "6379", "--data-dir=/var/lib/kv"]);
        assert_eq!(config(&flags, none).unwrap(), want(6379, "/var/lib/kv"));
        let env = |k: &str| match k {
            "PORT" => Some("5432".into()),
            "DATA_DIR" => Some("/pg".into()),
            _ => None,
        };
        assert_eq!(config(&flags, env).unwrap(), want(5432, "/pg"));
        let empty = |_: &str| Some(String::new());
        assert_eq!(config(&[], empty).unwrap(), want(8080, "/data"));
        assert!(config(&args(&["--port"]), none).is_err());
        assert!(config(&args(&["--port", "http"]), none).is_err());
        assert!(config(&args(&["/data"]), none).is_err());
        assert!(config(&[], |k: &str| (k == "PORT").then(|| "x".into())).is_err());
    }

    /// One response from a keep-alive connection: (status, body).
    fn response(r: &mut BufReader<TcpStream>) -> (u16, String) {
        let mut status = String::new();
        r.read_line(&mut status).unwrap();
        let code = status.split(' ').nth(1).unwrap().parse().unwrap();
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some(v) = line.strip_prefix("Content-Length: ") {
                len = v.parse().unwrap();
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        (code, String::from_utf8(body).unwrap())
    }

    fn send(c: &mut BufReader<TcpStream>, raw: &str) {
        c.get_mut().write_all(raw.as_bytes()).unwrap();
    }

    /// Runs the real event loop on a loopback port and talks HTTP to it.
    #[test]
    fn serves_the_api_over_keep_alive_connections() {
        let dir = std::env::temp_dir().join(format!("kv-serve-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (store, _) = store::Store::open(&dir, store::COMPACT_MIN).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || guest::server::serve(listener, &mut routes::Kv { store }));
        let connect = || {
            let s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            BufReader::new(s)
        };

        // A client that sent half a request must not hold up the others.
        let mut slow = connect();
        send(
            &mut slow,
            "PUT /keys/slow HTTP/1.1\r\nContent-Length: 4\r\n\r\nab",
        );

        let mut c = connect();
        send(
            &mut c,
            "PUT /keys/greeting HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello\
             GET /keys/greeting HTTP/1.1\r\n\r\n\
             PUT /keys/greeting HTTP/1.1\r\nContent-Length: 3\r\n\r\nhey",
        );
        assert_eq!(response(&mut c), (201, String::new()));
        assert_eq!(response(&mut c), (200, "hello".into()));
        assert_eq!(response(&mut c).0, 204);
        for n in 1..=3 {
            send(&mut c, "POST /keys/visits/incr HTTP/1.1\r\n\r\n");
            assert_eq!(response(&mut c), (200, format!("{n}\n")));
        }
        send(
            &mut c,
            "GET /keys HTTP/1.1\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n",
        );
        assert_eq!(response(&mut c), (200, "greeting\nvisits\n".into()));
        assert_eq!(response(&mut c), (200, "ok\n".into()));

        // Many clients counting at once all get distinct numbers.
        let mut clients: Vec<_> = (0..20).map(|_| connect()).collect();
        for c in clients.iter_mut() {
            send(c, "POST /keys/visits/incr HTTP/1.1\r\n\r\n");
        }
        let mut seen: Vec<u64> = clients
            .iter_mut()
            .map(|c| response(c).1.trim().parse().unwrap())
            .collect();
        seen.sort();
        assert_eq!(seen, (4..24).collect::<Vec<u64>>());

        // The slow client finishes its body and gets its answer.
        send(&mut slow, "cd");
        assert_eq!(response(&mut slow).0, 201);

        // `Expect: 100-continue` gets the go-ahead before the body is sent.
        send(
            &mut c,
            "PUT /keys/big HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n",
        );
        assert_eq!(response(&mut c).0, 100);
        send(&mut c, "abc");
        assert_eq!(response(&mut c).0, 201);

        // A value over 1 MiB is refused before its body is read, and the 413 arrives.
        let mut big = connect();
        let too_big = log::MAX_VALUE + 1;
        send(
            &mut big,
            &format!("PUT /keys/huge HTTP/1.1\r\nContent-Length: {too_big}\r\n\r\n"),
        );
        let _ = big.get_mut().write_all(&vec![b'x'; 256 * 1024]);
        assert_eq!(response(&mut big).0, 413);
        let mut rest = Vec::new();
        let _ = big.read_to_end(&mut rest);
        assert!(rest.is_empty(), "the connection closes after a 413");

        // Everything acknowledged is on disk.
        let (reopened, cut) = store::Store::open(&dir, store::COMPACT_MIN).unwrap();
        assert_eq!(cut, None);
        assert_eq!(reopened.get("greeting"), Some(&b"hey"[..]));
        assert_eq!(reopened.get("visits"), Some(&b"23"[..]));
        assert_eq!(reopened.get("slow"), Some(&b"abcd"[..]));
        assert_eq!(reopened.get("huge"), None);

        send(
            &mut c,
            "DELETE /keys/greeting HTTP/1.1\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(response(&mut c).0, 204);
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "the server closes after Connection: close");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
