//! `wasmkube/web`: a static HTTP/1.1 file server, the nginx of wasmkube pods.
//!
//! Serves the files under the document root (`WEB_ROOT`, else the first argument, else
//! `/usr/share/nginx/html`, so a volume mounted where nginx expects its content is served)
//! on port `PORT` (default 80): `GET` and `HEAD`, `index.html` for directories, a redirect
//! for directories named without their slash, 404 otherwise, `Content-Type` by extension,
//! keep-alive with `Content-Length`. With `BURN_PER_REQUEST=N` every GET instead answers
//! `OK!` after N square roots: the CPU load target of the HPA walkthrough
//! (`registry.k8s.io/hpa-example` runs as this). When the root has no `index.html`, `/` answers with a
//! default page naming the pod (`HOSTNAME`), its IP (`POD_IP`, else the address the
//! connection arrived on) and its node (`NODE_NAME`). One access-log line per request goes to
//! stdout. Many keep-alive connections are served concurrently from one thread (see
//! `server.rs`). `web --version` (or `-V`) prints the version and exits, which is what
//! `kubectl exec POD -- web --version` runs: `web` is the command this image declares in its
//! `wasmkube:commands` section.
//!
//! ```yaml
//! apiVersion: v1
//! kind: Pod
//! metadata:
//!   name: web
//! spec:
//!   containers:
//!   - name: web
//!     image: wasmkube/web
//!     ports:
//!     - containerPort: 80
//!     env:
//!     - name: POD_IP
//!       valueFrom: {fieldRef: {fieldPath: status.podIP}}
//!     - name: NODE_NAME
//!       valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
//!     volumeMounts:
//!     - name: content
//!       mountPath: /usr/share/nginx/html
//!   volumes:
//!   - name: content
//!     configMap: {name: web-content}
//! ```

mod files;
mod server;

use guest::exit;
use std::net::TcpListener;
use std::path::PathBuf;

guest::commands!(
    /// The commands this image provides, for `kubectl exec`: the node agent reads this custom
    /// section (names separated by `\n`) from the component.
    COMMANDS = b"web"
);

/// What `web --version` prints.
fn version() -> String {
    guest::version("web", env!("CARGO_PKG_VERSION"))
}

/// Where nginx images keep their content, so manifests written for nginx work unchanged.
const DEFAULT_ROOT: &str = "/usr/share/nginx/html";

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

/// Reads the configuration: env first, then arguments, then defaults.
fn config(
    args: &[String],
    env: impl Fn(&str) -> Option<String>,
) -> Result<(u16, server::Site), String> {
    let port = match non_empty(env("PORT")) {
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| format!("invalid PORT {p:?}"))?,
        None => 80,
    };
    let root = non_empty(env("WEB_ROOT"))
        .or_else(|| args.first().cloned())
        .unwrap_or_else(|| DEFAULT_ROOT.to_string());
    let site = server::Site {
        root: PathBuf::from(root),
        pod: non_empty(env("HOSTNAME")).unwrap_or_else(|| "unknown".into()),
        pod_ip: non_empty(env("POD_IP")),
        node: non_empty(env("NODE_NAME")).unwrap_or_else(|| "unknown".into()),
        burn: match non_empty(env("BURN_PER_REQUEST")) {
            Some(n) => n
                .parse()
                .map_err(|_| format!("invalid BURN_PER_REQUEST {n:?}"))?,
            None => 0,
        },
    };
    Ok((port, site))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if matches!(args.first().map(String::as_str), Some("--version" | "-V")) {
        println!("{}", version());
        exit(0)
    }
    let (port, site) = match config(&args, |k| std::env::var(k).ok()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("web: {e}");
            exit(2)
        }
    };
    let listener = match TcpListener::bind(("0.0.0.0", port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("web: cannot listen on port {port}: {e}");
            exit(1)
        }
    };
    println!(
        "web: serving {} on port {port} (pod {}, node {})",
        site.root.display(),
        site.pod,
        site.node
    );
    if let Err(e) = server::serve(listener, &site) {
        eprintln!("web: {e}");
        exit(1)
    }
    println!("web: stopped");
    exit(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpStream;

    #[test]
    fn declares_its_command_and_its_version() {
        assert_eq!(&COMMANDS, b"web");
        assert_eq!(version(), "web (wasmkube) 0.1.0");
    }

    #[test]
    fn config_prefers_env_then_args_then_defaults() {
        let none = |_: &str| None;
        let (port, site) = config(&[], none).unwrap();
        assert_eq!((port, site.root.to_str().unwrap()), (80, DEFAULT_ROOT));
        let (_, site) = config(&["/srv".into()], none).unwrap();
        assert_eq!(site.root, PathBuf::from("/srv"));
        let env = |k: &str| match k {
            "PORT" => Some("8080".into()),
            "WEB_ROOT" => Some("/data".into()),
            "HOSTNAME" => Some("web-1".into()),
            _ => None,
        };
        let (port, site) = config(&["/srv".into()], env).unwrap();
        assert_eq!(
            (port, site.root.to_str().unwrap(), site.pod.as_str()),
            (8080, "/data", "web-1")
        );
        assert!(config(&[], |k: &str| (k == "PORT").then(|| "http".into())).is_err());
        let burn = |v: &str| {
            let v = v.to_string();
            config(&[], move |k: &str| {
                (k == "BURN_PER_REQUEST").then(|| v.clone())
            })
        };
        assert_eq!(burn("1000").unwrap().1.burn, 1000);
        assert!(burn("lots").is_err());
        assert!(server::burn(1000) > 1.0);
    }

    /// Reads one response from a keep-alive connection: (status line, headers, body).
    fn read_response(
        r: &mut BufReader<TcpStream>,
        head_only: bool,
    ) -> (String, Vec<String>, Vec<u8>) {
        let mut status = String::new();
        r.read_line(&mut status).unwrap();
        let mut headers = Vec::new();
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            let line = line.trim_end().to_string();
            if line.is_empty() {
                break;
            }
            if let Some(v) = line.strip_prefix("Content-Length: ") {
                len = v.parse().unwrap();
            }
            headers.push(line);
        }
        let mut body = vec![0; if head_only { 0 } else { len }];
        r.read_exact(&mut body).unwrap();
        (status.trim_end().to_string(), headers, body)
    }

    /// Runs the real event loop on a loopback port with many concurrent keep-alive clients.
    #[test]
    fn serves_files_concurrently_over_keep_alive() {
        let root = std::env::temp_dir().join(format!("web-serve-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("docs")).unwrap();
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(root.join("big.bin"), &big).unwrap();
        std::fs::write(root.join("docs/index.html"), "<h1>docs</h1>").unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let site = server::Site {
            root: root.clone(),
            pod: "web-0".into(),
            pod_ip: None,
            node: "node-a".into(),
            burn: 0,
        };
        std::thread::spawn(move || server::serve(listener, &site));

        // Open many connections first so they are all live at once.
        let mut clients: Vec<BufReader<TcpStream>> = (0..50)
            .map(|_| BufReader::new(TcpStream::connect(addr).unwrap()))
            .collect();
        for round in 0..3 {
            for c in clients.iter_mut() {
                c.get_mut()
                    .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nHEAD /big.bin HTTP/1.1\r\n\r\n")
                    .unwrap();
            }
            for c in clients.iter_mut() {
                let (status, headers, body) = read_response(c, false);
                assert_eq!(status, "HTTP/1.1 200 OK", "round {round}");
                assert!(headers.contains(&"Connection: keep-alive".to_string()));
                let page = String::from_utf8(body).unwrap();
                assert!(
                    page.contains("web-0") && page.contains("node-a") && page.contains("127.0.0.1")
                );
                let (status, headers, _) = read_response(c, true);
                assert_eq!(status, "HTTP/1.1 200 OK");
                assert!(headers.contains(&"Content-Length: 300000".to_string()));
            }
        }

        let mut c = BufReader::new(TcpStream::connect(addr).unwrap());
        c.get_mut()
            .write_all(b"GET /big.bin HTTP/1.1\r\n\r\nGET /docs HTTP/1.1\r\n\r\n")
            .unwrap();
        let (_, headers, body) = read_response(&mut c, false);
        assert!(headers.contains(&"Content-Type: application/octet-stream".to_string()));
        assert_eq!(body, big);
        let (status, headers, _) = read_response(&mut c, false);
        assert_eq!(status, "HTTP/1.1 301 Moved Permanently");
        assert!(headers.contains(&"Location: /docs/".to_string()));
        c.get_mut()
            .write_all(b"GET /docs/ HTTP/1.1\r\n\r\nGET /../etc/passwd HTTP/1.1\r\n\r\n")
            .unwrap();
        assert_eq!(read_response(&mut c, false).2, b"<h1>docs</h1>");
        assert_eq!(read_response(&mut c, false).0, "HTTP/1.1 400 Bad Request");
        c.get_mut()
            .write_all(b"DELETE / HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\nConnection: close\r\n\r\n")
            .unwrap();
        assert_eq!(read_response(&mut c, false).0, "HTTP/1.1 405 Not Allowed");
        assert_eq!(read_response(&mut c, false).0, "HTTP/1.1 404 Not Found");
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "server closes after Connection: close");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
