//! `kubectl exec` and `kubectl attach` at the node: `GET /exec/{namespace}/{pod}/{container}`
//! and `GET /attach/...`, WebSocket sessions in the Kubernetes channel protocol, which the API
//! server's `pods/exec` and `pods/attach` pass through unchanged (ARCHITECTURE D11).
//!
//! Subprotocols `v5.channel.k8s.io` (kubectl 1.30+) and `v4.channel.k8s.io` (client
//! libraries). Every binary message starts with its channel: 0 stdin, 1 stdout, 2 stderr,
//! 3 the final status (a `metav1.Status`, `NonZeroExitCode` with the code as a cause), 4 the
//! terminal size. v5 adds 255: `[255, 0]` from the client closes stdin. The query is the
//! kubelet's: `command` (repeated), `stdin`, `stdout`, `stderr`, `tty`.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{
    CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code,
    rejection::WebSocketUpgradeRejection,
};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::{SinkExt as _, StreamExt as _};
use serde_json::json;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::attach::Attachable;
use super::exec::{Exec, Stdio};
use super::terminal::{Terminal, onlcr};
use crate::wasm::{Discard, OutputSink, StdinPipe};

/// The subprotocols spoken, preferred first.
pub const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];
const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const STATUS: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;
/// Exit code of an instance killed by Ctrl-C (128 + SIGINT).
pub const EXIT_INTERRUPTED: i32 = 130;

/// How long a guest has to read a Ctrl-C before its instance is killed.
const INTERRUPT_GRACE: Duration = Duration::from_millis(500);

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
fn status_error(code: StatusCode, reason: &str, message: String) -> Response {
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

fn bad_request(message: String) -> Response {
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

/// `GET /exec/{namespace}/{pod}/{container}`.
pub async fn exec(
    State(exec): State<Arc<Exec>>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    upgrade: Upgrade,
) -> Response {
    let query = StreamQuery::parse(query.as_deref().unwrap_or(""));
    let sandbox = match exec.sandbox(&namespace, &pod, &container) {
        Ok(sandbox) => sandbox,
        Err(e) => return status_error(StatusCode::NOT_FOUND, "NotFound", e.to_string()),
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
        let reader = tokio::spawn(session.clone().read(input, stop.clone()));
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
    let sandbox = match exec.sandbox(&namespace, &pod, &container) {
        Ok(sandbox) => sandbox,
        Err(e) => return status_error(StatusCode::NOT_FOUND, "NotFound", e.to_string()),
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
        let input = Input {
            pipe: query.stdin.then(|| attachable.stdin.clone()),
            terminal: None,
            echo: Arc::new(Echo(attachable.clone())),
            kill: None,
        };
        let stop = CancellationToken::new();
        let reader = tokio::spawn(session.clone().read_attached(
            input,
            attachable.clone(),
            stop.clone(),
        ));
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

/// The echo of an attached terminal goes to every session, not to the log.
struct Echo(Arc<Attachable>);

impl OutputSink for Echo {
    fn write(&self, bytes: &[u8]) -> std::io::Result<()> {
        self.0.broadcast(bytes);
        Ok(())
    }
}

/// Where a session's keys go.
struct Input {
    pipe: Option<StdinPipe>,
    terminal: Option<Arc<Mutex<Terminal>>>,
    echo: Arc<dyn OutputSink>,
    /// For an exec: how to kill the instance when Ctrl-C is not read, and the flag saying so.
    kill: Option<(CancellationToken, Arc<Mutex<bool>>)>,
}

impl Input {
    /// Handles one stdin message; `false` once input has ended.
    fn keys(&self, bytes: &[u8]) -> bool {
        let Some(pipe) = &self.pipe else {
            return true;
        };
        let Some(terminal) = &self.terminal else {
            pipe.write(bytes);
            return true;
        };
        let fed = terminal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .feed(bytes);
        let _ = self.echo.write(&fed.echo);
        pipe.write(&fed.deliver);
        if fed.interrupt
            && let Some((stop, interrupted)) = self.kill.clone()
        {
            // The guest has this long to read everything sent so far, the 0x03 included.
            let target = pipe.consumed() + pipe.pending() as u64;
            let pipe = pipe.clone();
            tokio::spawn(async move {
                tokio::time::sleep(INTERRUPT_GRACE).await;
                if pipe.consumed() < target {
                    *interrupted.lock().unwrap_or_else(|e| e.into_inner()) = true;
                    stop.cancel();
                }
            });
        }
        if fed.eof {
            pipe.close();
            return false;
        }
        true
    }

    fn resize(&self, message: &[u8]) {
        if let Some(terminal) = &self.terminal {
            terminal
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .resize(message);
        }
    }

    fn close(&self) {
        if let Some(pipe) = &self.pipe {
            pipe.close();
        }
    }
}

/// The most output a session holds for a slow client; beyond it the guest's writes wait.
const BACKLOG_LIMIT: usize = 1 << 20;

/// Output queued for a session's client and not sent yet.
#[derive(Default)]
struct Backlog {
    bytes: AtomicUsize,
    /// The client is gone: output is dropped, writes never wait.
    gone: AtomicBool,
    sent: Notify,
}

impl Backlog {
    fn room(&self) -> usize {
        if self.gone.load(Ordering::SeqCst) {
            return usize::MAX;
        }
        BACKLOG_LIMIT.saturating_sub(self.bytes.load(Ordering::SeqCst))
    }

    async fn writable(&self) {
        loop {
            let sent = self.sent.notified();
            if self.room() > 0 {
                return;
            }
            sent.await;
        }
    }

    fn sent(&self, len: usize) {
        self.bytes.fetch_sub(len, Ordering::SeqCst);
        self.sent.notify_waiters();
    }

    fn close(&self) {
        self.gone.store(true, Ordering::SeqCst);
        self.sent.notify_waiters();
    }
}

/// One WebSocket session: a writer task fed through a channel, and the reading half.
struct Session {
    outgoing: mpsc::UnboundedSender<Message>,
    backlog: Arc<Backlog>,
    incoming: Mutex<Option<futures::stream::SplitStream<WebSocket>>>,
    writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
    v5: bool,
}

/// Output on one channel of a session.
struct ChannelSink {
    channel: u8,
    tty: bool,
    outgoing: mpsc::UnboundedSender<Message>,
    backlog: Arc<Backlog>,
}

impl OutputSink for ChannelSink {
    fn write(&self, bytes: &[u8]) -> std::io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        let body = if self.tty {
            onlcr(bytes)
        } else {
            bytes.to_vec()
        };
        let mut message = Vec::with_capacity(body.len() + 1);
        message.push(self.channel);
        message.extend(body);
        // A session that went away drops output, as a closed terminal does.
        self.backlog
            .bytes
            .fetch_add(message.len(), Ordering::SeqCst);
        if self.outgoing.send(Message::Binary(message.into())).is_err() {
            self.backlog.close();
        }
        Ok(())
    }

    fn room(&self) -> usize {
        self.backlog.room()
    }

    fn writable(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(self.backlog.writable())
    }
}

impl Session {
    fn new(socket: WebSocket, v5: bool) -> Arc<Session> {
        let (mut sink, stream) = socket.split();
        let (outgoing, mut queue) = mpsc::unbounded_channel::<Message>();
        let backlog = Arc::new(Backlog::default());
        let sent = backlog.clone();
        let writer = tokio::spawn(async move {
            while let Some(message) = queue.recv().await {
                let close = matches!(message, Message::Close(_));
                let len = match &message {
                    Message::Binary(data) => data.len(),
                    _ => 0,
                };
                let failed = sink.send(message).await.is_err();
                sent.sent(len);
                if failed || close {
                    break;
                }
            }
            sent.close();
        });
        Arc::new(Session {
            outgoing,
            backlog,
            incoming: Mutex::new(Some(stream)),
            writer: Mutex::new(Some(writer)),
            v5,
        })
    }

    /// A sink for `channel`, or one that drops output the client did not ask for.
    fn sink(&self, channel: u8, wanted: bool, tty: bool) -> Arc<dyn OutputSink> {
        if !wanted {
            return Arc::new(Discard);
        }
        Arc::new(ChannelSink {
            channel,
            tty,
            outgoing: self.outgoing.clone(),
            backlog: self.backlog.clone(),
        })
    }

    fn take_incoming(&self) -> Option<futures::stream::SplitStream<WebSocket>> {
        self.incoming
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Reads the client's messages until it goes away; a client leaving ends the exec.
    async fn read(self: Arc<Self>, input: Input, stop: CancellationToken) {
        let Some(mut incoming) = self.take_incoming() else {
            return;
        };
        while let Some(Ok(message)) = incoming.next().await {
            match message {
                Message::Binary(data) => self.dispatch(&input, &data),
                // The Python client sends text it was given as a text message.
                Message::Text(text) => self.dispatch(&input, text.as_bytes()),
                Message::Close(_) => break,
                _ => {}
            }
        }
        input.close();
        stop.cancel();
    }

    /// Reads an attached client's messages; its leaving ends only the session.
    async fn read_attached(
        self: Arc<Self>,
        mut input: Input,
        attachable: Arc<Attachable>,
        stop: CancellationToken,
    ) {
        let Some(mut incoming) = self.take_incoming() else {
            return;
        };
        // An attached terminal's line discipline belongs to the container.
        let terminal = attachable.terminal.clone();
        input.terminal = terminal;
        while let Some(Ok(message)) = incoming.next().await {
            match message {
                Message::Binary(data) => self.dispatch(&input, &data),
                // The Python client sends text it was given as a text message.
                Message::Text(text) => self.dispatch(&input, text.as_bytes()),
                Message::Close(_) => break,
                _ => {}
            }
        }
        stop.cancel();
    }

    fn dispatch(&self, input: &Input, data: &[u8]) {
        let Some((&channel, body)) = data.split_first() else {
            return;
        };
        match channel {
            STDIN => {
                input.keys(body);
            }
            RESIZE => input.resize(body),
            CLOSE if self.v5 && body.first() == Some(&STDIN) => input.close(),
            _ => {}
        }
    }

    /// Sends the final status and closes the session once everything before it is sent.
    async fn finish(&self, status: serde_json::Value) {
        let mut message = vec![STATUS];
        message.extend(serde_json::to_vec(&status).unwrap_or_default());
        self.backlog
            .bytes
            .fetch_add(message.len(), Ordering::SeqCst);
        let _ = self.outgoing.send(Message::Binary(message.into()));
        // A normal closure: kubectl reads it as the end of every stream.
        let _ = self.outgoing.send(Message::Close(Some(CloseFrame {
            code: close_code::NORMAL,
            reason: "".into(),
        })));
        let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(writer) = writer {
            let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
        }
    }
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

    #[tokio::test]
    async fn a_slow_client_makes_the_guest_wait_and_a_gone_one_does_not() {
        let (outgoing, mut queue) = mpsc::unbounded_channel();
        let backlog = Arc::new(Backlog::default());
        let sink = ChannelSink {
            channel: STDOUT,
            tty: false,
            outgoing,
            backlog: backlog.clone(),
        };
        let chunk = vec![b'x'; 64 * 1024];
        while sink.room() > 0 {
            sink.write(&chunk).unwrap();
        }
        let wait = tokio::time::timeout(Duration::from_millis(50), sink.writable());
        assert!(wait.await.is_err(), "a full backlog makes writers wait");
        // The writer task sends one message: room again.
        let Some(Message::Binary(sent)) = queue.recv().await else {
            panic!("a message was queued")
        };
        backlog.sent(sent.len());
        assert!(sink.room() > 0);
        tokio::time::timeout(Duration::from_secs(1), sink.writable())
            .await
            .unwrap();
        // The client went away: output is dropped and nobody waits.
        drop(queue);
        sink.write(&chunk).unwrap();
        assert_eq!(sink.room(), usize::MAX);
    }

    #[test]
    fn exit_codes_become_statuses() {
        assert_eq!(exit_status(&[], 0)["status"], "Success");
        let failed = exit_status(&["sh".into()], 3);
        assert_eq!(failed["reason"], "NonZeroExitCode");
        assert_eq!(failed["details"]["causes"][0]["message"], "3");
    }
}
