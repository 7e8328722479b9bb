//! `wasmkube/api`: a small JSON web service, the stand-in for the "my-node-app" or "my-api"
//! of tutorials, and the client half of the `kv` demo.
//!
//! Listens on `PORT` (else `--port N`, else 3000) and answers `GET /healthz` with
//! `{"status":"ok"}`, `GET /` with `{"service":"api","hostname":...,"pod_ip":...}` (`HOSTNAME`
//! and `POD_IP`, else the address the connection arrived on) and `GET /visits` with
//! `{"visits":N}` after counting the visit in kv (`POST /keys/visits/incr` at `KV_URL`, e.g.
//! `http://kv:8080`; `kv.rs`). Without `KV_URL`, or when kv cannot be reached, `/visits`
//! answers 503 with `{"error":...}` saying why; other errors are JSON too. Connections are
//! served by the same one-thread event loop as kv (the call to kv blocks it for at most a
//! few seconds); one access-log line per request goes to stdout. `api --version` prints the
//! version: `api` is the command this image declares in its `wasmkube:commands` section.
//!
//! ```yaml
//! apiVersion: apps/v1
//! kind: Deployment
//! metadata:
//!   name: api
//! spec:
//!   replicas: 2
//!   selector:
//!     matchLabels: {app: api}
//!   template:
//!     metadata:
//!       labels: {app: api}
//!     spec:
//!       containers:
//!       - name: api
//!         image: wasmkube/api
//!         ports:
//!         - containerPort: 3000
//!         env:
//!         - name: KV_URL
//!           value: http://kv:8080
//!         - name: POD_IP
//!           valueFrom: {fieldRef: {fieldPath: status.podIP}}
//!         readinessProbe:
//!           httpGet: {path: /healthz, port: 3000}
//! ```

mod kv;
mod routes;

use guest::exit;
use std::net::TcpListener;

guest::commands!(
    /// The commands this image provides, for `kubectl exec`: the node agent reads this custom
    /// section (names separated by `\n`) from the component.
    COMMANDS = b"api"
);

/// What `api --version` prints.
fn version() -> String {
    guest::version("api", env!("CARGO_PKG_VERSION"))
}

const USAGE: &str = "usage: api [--port N]  (env PORT wins; KV_URL=http://HOST:PORT for /visits)";

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

fn parse_port(s: &str, what: &str) -> Result<u16, String> {
    s.parse().map_err(|_| format!("invalid {what} {s:?}"))
}

/// Reads the configuration: env first, then flags, then defaults. A bad `KV_URL` is not an
/// error here: the service still answers, and `/visits` explains.
fn config(
    args: &[String],
    env: impl Fn(&str) -> Option<String>,
) -> Result<(u16, routes::Api), String> {
    let mut port = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--port" => {
                let v = it.next().ok_or("--port needs a value")?;
                port = Some(parse_port(v, "--port")?);
            }
            a if a.starts_with("--port=") => port = Some(parse_port(&a[7..], "--port")?),
            other => return Err(format!("unexpected argument {other:?}\n{USAGE}")),
        }
    }
    let port = match non_empty(env("PORT")) {
        Some(p) => parse_port(&p, "PORT")?,
        None => port.unwrap_or(3000),
    };
    let kv = match non_empty(env("KV_URL")) {
        None => Err("KV_URL is not set: point it at the kv service, \
                     e.g. KV_URL=http://kv:8080"
            .to_string()),
        Some(u) => kv::KvUrl::parse(&u).map_err(|e| format!("KV_URL {u:?} is invalid: {e}")),
    };
    let api = routes::Api {
        kv,
        hostname: non_empty(env("HOSTNAME")),
        pod_ip: non_empty(env("POD_IP")),
    };
    Ok((port, api))
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
    let (port, mut api) = match config(&args, |k| std::env::var(k).ok()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("api: {e}");
            exit(2)
        }
    };
    let listener = match TcpListener::bind(("0.0.0.0", port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("api: cannot listen on port {port}: {e}");
            exit(1)
        }
    };
    match &api.kv {
        Ok(url) => println!("api: serving on :{port} (kv at {url})"),
        Err(why) => println!("api: serving on :{port}; /visits answers 503: {why}"),
    }
    if let Err(e) = guest::server::serve(listener, &mut api) {
        eprintln!("api: {e}");
        exit(1)
    }
    println!("api: stopped");
    exit(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    #[test]
    fn declares_its_command_and_its_version() {
        assert_eq!(&COMMANDS, b"api");
        assert_eq!(version(), "api (wasmkube) 0.1.0");
    }

    #[test]
    fn config_prefers_env_then_flags_then_defaults() {
        let none = |_: &str| None;
        let (port, api) = config(&[], none).unwrap();
        assert_eq!(port, 3000);
        assert!(api.kv.unwrap_err().contains("KV_URL is not set"));
        let flag = ["--port".to_string(), "8000".to_string()];
        assert_eq!(config(&flag, none).unwrap().0, 8000);
        assert_eq!(config(&["--port=81".into()], none).unwrap().0, 81);
        let env = |k: &str| match k {
            "PORT" => Some("9000".into()),
            "KV_URL" => Some("http://kv:8080".into()),
            "HOSTNAME" => Some("api-0".into()),
            _ => None,
        };
        let (port, api) = config(&flag, env).unwrap();
        assert_eq!(port, 9000);
        assert_eq!(api.kv.unwrap().to_string(), "http://kv:8080");
        assert_eq!(api.hostname.as_deref(), Some("api-0"));
        let bad_url = |k: &str| (k == "KV_URL").then(|| "https://kv".into());
        assert!(
            config(&[], bad_url)
                .unwrap()
                .1
                .kv
                .unwrap_err()
                .contains("invalid")
        );
        assert!(config(&["--port".into()], none).is_err());
        assert!(config(&["extra".into()], none).is_err());
    }

    /// Runs the real event loop and asks it for visits, counted by a stand-in kv.
    #[test]
    fn serves_visits_over_http() {
        let (url, _seen) = routes::tests::fake_kv(vec![
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n1\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n2\n",
        ]);
        let mut api = routes::Api {
            kv: Ok(url),
            hostname: Some("api-0".into()),
            pod_ip: None,
        };
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || guest::server::serve(listener, &mut api));
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut c = BufReader::new(stream);
        c.get_mut()
            .write_all(b"GET /visits HTTP/1.1\r\n\r\nGET /visits HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut all = String::new();
        c.read_to_string(&mut all).unwrap();
        let bodies: Vec<&str> = all
            .split("HTTP/1.1 ")
            .skip(1)
            .map(|r| r.split("\r\n\r\n").nth(1).unwrap())
            .collect();
        assert_eq!(
            bodies,
            [
                r#"{"visits":1}"#,
                r#"{"visits":2}"#,
                r#"{"service":"api","hostname":"api-0","pod_ip":"127.0.0.1"}"#
            ]
        );
        assert_eq!(all.matches("200 OK").count(), 3);
    }
}
