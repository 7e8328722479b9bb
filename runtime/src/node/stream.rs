//! `kubectl exec` and `kubectl attach` at the node: `GET /exec/{namespace}/{pod}/{container}`
//! and `GET /attach/...`, WebSocket sessions in the Kubernetes channel protocol, which the API
//! server's `pods/exec` and `pods/attach` pass through unchanged (ARCHITECTURE D11).
//!
//! Subprotocols `v5.channel.k8s.io` (kubectl 1.30+) and `v4.channel.k8s.io` (client
//! libraries). Every binary message starts with its channel: 0 stdin, 1 stdout, 2 stderr,
//! 3 the final status (a `metav1.Status`, `NonZeroExitCode` with the code as a cause), 4 the
//! terminal size. v5 adds 255: `[255, 0]` from the client closes stdin. The query is the
//! kubelet's: `command` (repeated), `stdin`, `stdout`, `stderr`, `tty`. The WebSocket side of a
//! session (channels, output back-pressure, keys) is `session.rs`.

use std::sync::{Arc, Mutex};

use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::exec::{Exec, Sandbox, Stdio};
use super::session::{Echo, Input, STDERR, STDOUT, Session};
use super::terminal::Terminal;
use crate::wasm::StdinPipe;

/// The subprotocols spoken, preferred first.
pub const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];
/// Exit code of an instance killed by Ctrl-C (128 + SIGINT).
pub const EXIT_INTERRUPTED: i32 = 130;

/// The session's query: the kubelet's parameters.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct StreamQuery {
    /// The command and its arguments.
    pub command: Vec<String>,
    /// Whether the client sends stdin.
    pub stdin: bool,
    /// Whether it wants stdout.
    pub stdout: bool,
    /// Whether it wants stderr.
    pub stderr: bool,
    /// Whether it is a terminal.
    pub tty: bool,
}

impl StreamQuery {
    /// Parses `command=sh&command=-c&stdin=true&...`.
    pub fn parse(query: &str) -> StreamQuery {
        let mut q = StreamQuery::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = decode(value);
            let flag = || value == "true" || value == "1";
            match key {
                "command" => q.command.push(value.clone()),
                "stdin" => q.stdin = flag(),
                "stdout" => q.stdout = flag(),
                "stderr" => q.stderr = flag(),
                "tty" => q.tty = flag(),
                _ => {}
            }
        }
        q
    }
}

/// A form-encoded value (`+` is a space).
fn decode(value: &str) -> String {
    let spaced = value.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

/// A Kubernetes `Status` error answer.
pub(super) fn status_error(code: StatusCode, reason: &str, message: String) -> Response {
    let body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    (code, axum::Json(body)).into_response()
}

/// A 400 `BadRequest` Status.
pub(super) fn bad_request(message: String) -> Response {
    status_error(StatusCode::BAD_REQUEST, "BadRequest", message)
}

/// What a session's ending reports on channel 3.
fn exit_status(command: &[String], code: i32) -> serde_json::Value {
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!(
            "command terminated with non-zero exit code: error executing command {command:?}, exit code {code}"
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

/// Sessions share the node's exec machinery.
pub type Upgrade = Result<WebSocketUpgrade, WebSocketUpgradeRejection>;

/// Checks the upgrade and the subprotocol, or says what is wrong.
fn accept(upgrade: Upgrade) -> Result<WebSocketUpgrade, String> {
    let upgrade =
        upgrade.map_err(|_| "Upgrade request required: exec and attach are WebSocket sessions")?;
    let upgrade = upgrade.protocols(PROTOCOLS);
    if upgrade.selected_protocol().is_none() {
        return Err(format!(
            "no supported WebSocket subprotocol: this node speaks {}",
            PROTOCOLS.join(", ")
        ));
    }
    Ok(upgrade)
}

/// The sandbox of a container running here, or a 404 `Status`.
#[allow(clippy::result_large_err, reason = "the error is the answer itself")]
fn running(
    exec: &Exec,
    namespace: &str,
    pod: &str,
    container: &str,
) -> Result<Arc<Sandbox>, Response> {
    exec.sandbox(namespace, pod, container)
        .map_err(|e| status_error(StatusCode::NOT_FOUND, "NotFound", e.to_string()))
}

/// `GET /exec/{namespace}/{pod}/{container}`.
pub async fn exec(
    State(exec): State<Arc<Exec>>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    upgrade: Upgrade,
) -> Response {
    let query = StreamQuery::parse(query.as_deref().unwrap_or(""));
    let sandbox = match running(&exec, &namespace, &pod, &container) {
        Ok(sandbox) => sandbox,
        Err(response) => return response,
    };
    if query.command.is_empty() {
        return bad_request("you must specify at least 1 command".into());
    }
    let upgrade = match accept(upgrade) {
        Ok(upgrade) => upgrade,
        Err(message) => return bad_request(message),
    };
    upgrade.on_upgrade(move |socket| async move {
        let v5 = socket.protocol().is_some_and(|p| p == PROTOCOLS[0]);
        let session = Session::new(socket, v5);
        let stop = CancellationToken::new();
        let stdin = query.stdin.then(|| StdinPipe::new(query.tty));
        let out = session.sink(STDOUT, query.stdout, query.tty);
        let err = if query.tty {
            out.clone()
        } else {
            session.sink(STDERR, query.stderr, false)
        };
        let stdio = Stdio {
            stdin: stdin.clone(),
            stdout: out.clone(),
            stderr: err,
            tty: query.tty,
        };
        let interrupted = Arc::new(Mutex::new(false));
        let input = Input {
            pipe: stdin,
            terminal: query.tty.then(|| Arc::new(Mutex::new(Terminal::default()))),
            echo: out,
            kill: Some((stop.clone(), interrupted.clone())),
        };
        let reader = tokio::spawn(session.clone().read(input, stop.clone(), true));
        let mut exit = exec
            .run(&sandbox, query.command.clone(), stdio, stop.clone())
            .await;
        if *interrupted.lock().unwrap_or_else(|e| e.into_inner()) {
            exit.code = EXIT_INTERRUPTED;
        }
        reader.abort();
        session.finish(exit_status(&query.command, exit.code)).await;
    })
}

/// `GET /attach/{namespace}/{pod}/{container}`.
pub async fn attach(
    State(exec): State<Arc<Exec>>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    upgrade: Upgrade,
) -> Response {
    let query = StreamQuery::parse(query.as_deref().unwrap_or(""));
    let sandbox = match running(&exec, &namespace, &pod, &container) {
        Ok(sandbox) => sandbox,
        Err(response) => return response,
    };
    let Some(attachable) = sandbox.attach.clone() else {
        return bad_request(format!(
            "container {container} of pod {pod} was not started with stdin: true; \
             `kubectl logs -f {pod} -c {container}` shows its output"
        ));
    };
    let upgrade = match accept(upgrade) {
        Ok(upgrade) => upgrade,
        Err(message) => return bad_request(message),
    };
    let container_stop = sandbox.stop.clone();
    upgrade.on_upgrade(move |socket| async move {
        let v5 = socket.protocol().is_some_and(|p| p == PROTOCOLS[0]);
        let session = Session::new(socket, v5);
        let mut output = attachable.subscribe();
        let out = session.sink(STDOUT, query.stdout, false);
        // An attached terminal's line discipline belongs to the container.
        let input = Input {
            pipe: query.stdin.then(|| attachable.stdin.clone()),
            terminal: attachable.terminal.clone(),
            echo: Arc::new(Echo(attachable.clone())),
            kill: None,
        };
        let stop = CancellationToken::new();
        let reader = tokio::spawn(session.clone().read(input, stop.clone(), false));
        loop {
            tokio::select! {
                chunk = output.recv() => match chunk {
                    Some(bytes) => { let _ = out.write(&bytes); }
                    None => break,
                },
                () = attachable.ended.cancelled() => break,
                () = container_stop.cancelled() => break,
                () = stop.cancelled() => break,
            }
        }
        // What the container wrote last is still queued.
        while let Ok(bytes) = output.try_recv() {
            let _ = out.write(&bytes);
        }
        reader.abort();
        if query.stdin && attachable.stdin_once {
            attachable.stdin.close();
        }
        session.finish(exit_status(&[], 0)).await;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_kubelet_query() {
        let q = StreamQuery::parse(
            "command=sh&command=-c&command=echo+%22a+b%22&stdin=true&stdout=true&stderr=1&tty=false&container=c",
        );
        assert_eq!(q.command, ["sh", "-c", "echo \"a b\""]);
        assert!(q.stdin && q.stdout && q.stderr && !q.tty);
        assert_eq!(StreamQuery::parse(""), StreamQuery::default());
    }

    #[test]
    fn exit_codes_become_statuses() {
        assert_eq!(exit_status(&[], 0)["status"], "Success");
        let failed = exit_status(&["sh".into()], 3);
        assert_eq!(failed["reason"], "NonZeroExitCode");
        assert_eq!(failed["details"]["causes"][0]["message"], "3");
    }
}
