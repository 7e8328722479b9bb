//! Running a command inside a running container (ARCHITECTURE D11): `kubectl exec`, exec
//! probes and exec lifecycle hooks all come here.
//!
//! A container that starts registers its [`Sandbox`]: its image, env, ephemeral root,
//! mounts, pod IP and limits. An exec is a new wasm instance with that sandbox and the argv
//! asked for, so it sees the pod's `localhost`, volumes and files. Which program runs is
//! explicit: if `basename(argv[0])` is one of the container image's declared commands
//! (`images/commands.rs`), that image; else, if it is a toolbox applet, `wasmkube/toolbox`,
//! said in one line on stderr; else exit 127 `executable file not found`. An exec dies with
//! its container (its stop token is a child of the container's).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::attach::Attachable;
use crate::images::commands::basename;
use crate::images::{Image, ImageSource, Reference};
use crate::wasm::{
    ContainerRuntime, ContainerSpec, CpuShare, Exit, MemorySink, Mount, OutputSink, PodCluster,
    PodNetwork, StdinPipe,
};

/// Where the toolbox's applets come from when the container's image lacks a command.
pub const TOOLBOX: &str = "wasmkube/toolbox";
/// Exit code of a command that does not exist, as a shell reports it.
pub const EXIT_NOT_FOUND: i32 = 127;
/// Most output an exec probe or hook keeps (the kubelet keeps 10 KiB).
const CAPTURE_LIMIT: usize = 10 * 1024;

/// What an exec needs to know about a running container.
pub struct Sandbox {
    /// The container's image.
    pub image: Image,
    /// The container's environment.
    pub env: Vec<(String, String)>,
    /// Its working directory.
    pub working_dir: Option<String>,
    /// Its ephemeral root (shared with the container, not a fresh one).
    pub root: PathBuf,
    /// Its volumes.
    pub mounts: Vec<Mount>,
    /// The pod's network.
    pub network: PodNetwork,
    /// The pod's view of the cluster's Services and DNS.
    pub cluster: PodCluster,
    /// Its memory limit.
    pub memory_limit: Option<u64>,
    /// Its CPU share.
    pub cpu: CpuShare,
    /// Its usage figures: an exec's CPU, memory and network count as the container's, as a
    /// process exec'd into a container is in its cgroup.
    pub usage: Arc<crate::wasm::Usage>,
    /// Cancelled when the container stops or ends: execs end with it.
    pub stop: CancellationToken,
    /// The container's own stdin and output, when `stdin: true` (for `attach`).
    pub attach: Option<Arc<Attachable>>,
}

impl Sandbox {
    fn ended(&self) {
        self.stop.cancel();
        if let Some(attach) = &self.attach {
            attach.ended.cancel();
        }
    }
}

/// How an exec's standard streams are connected.
pub struct Stdio {
    /// Its stdin, if the client sends one.
    pub stdin: Option<StdinPipe>,
    /// Its stdout.
    pub stdout: Arc<dyn OutputSink>,
    /// Its stderr (the same as stdout with a terminal).
    pub stderr: Arc<dyn OutputSink>,
    /// Whether it runs on a terminal.
    pub tty: bool,
}

/// The outcome of an exec whose output was collected (probes, hooks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    /// The exit code.
    pub code: i32,
    /// stdout and stderr, interleaved, at most 10 KiB.
    pub output: String,
}

/// Why an exec could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No such container runs here.
    #[error("container {container:?} of pod {namespace}/{pod} is not running on this node")]
    NotRunning {
        /// The namespace.
        namespace: String,
        /// The pod.
        pod: String,
        /// The container.
        container: String,
    },
    /// The command outlived its timeout and was stopped.
    #[error("command {argv:?} timed out after {timeout:?}")]
    TimedOut {
        /// The command.
        argv: Vec<String>,
        /// The timeout.
        timeout: Duration,
    },
}

type Key = (String, String, String);

/// The node's running containers as exec targets, and what runs the execs.
pub struct Exec {
    sandboxes: Mutex<HashMap<Key, Arc<Sandbox>>>,
    commands: Mutex<HashMap<String, Arc<Vec<String>>>>,
    runtime: Arc<ContainerRuntime>,
    guests: tokio::runtime::Handle,
    images: Arc<dyn ImageSource>,
}

/// Which program an exec runs.
#[derive(Debug)]
pub enum Program {
    /// A command of the container's own image.
    Own(Image),
    /// A toolbox applet the container's image lacks.
    Toolbox(Image),
    /// Nothing provides it.
    NotFound,
}

impl Exec {
    /// Execs on `runtime`, running guests on `guests`, finding the toolbox in `images`.
    pub fn new(
        runtime: Arc<ContainerRuntime>,
        guests: tokio::runtime::Handle,
        images: Arc<dyn ImageSource>,
    ) -> Arc<Exec> {
        Arc::new(Exec {
            sandboxes: Mutex::default(),
            commands: Mutex::default(),
            runtime,
            guests,
            images,
        })
    }

    /// An exec machinery with the built-in images and no containers (unit tests).
    #[cfg(test)]
    pub fn for_tests() -> Arc<Exec> {
        let engine = crate::wasm::WasmEngine::new(crate::wasm::EngineConfig::default()).unwrap();
        let runtime = Arc::new(ContainerRuntime::new(engine, None).unwrap());
        let images = Arc::new(crate::images::Catalog::new());
        Exec::new(runtime, tokio::runtime::Handle::current(), images)
    }

    fn map(&self) -> MutexGuard<'_, HashMap<Key, Arc<Sandbox>>> {
        self.sandboxes.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn key(namespace: &str, pod: &str, container: &str) -> Key {
        (namespace.into(), pod.into(), container.into())
    }

    /// A container started: execs may now enter it.
    pub fn add(&self, namespace: &str, pod: &str, container: &str, sandbox: Sandbox) {
        self.map()
            .insert(Self::key(namespace, pod, container), Arc::new(sandbox));
    }

    /// A container stopped: its execs are stopped and its attach sessions end.
    pub fn remove(&self, namespace: &str, pod: &str, container: &str) {
        if let Some(sandbox) = self.map().remove(&Self::key(namespace, pod, container)) {
            sandbox.ended();
        }
    }

    /// A pod is gone: every container of it.
    pub fn remove_pod(&self, namespace: &str, pod: &str) {
        self.map().retain(|(ns, p, _), sandbox| {
            let keep = ns != namespace || p != pod;
            if !keep {
                sandbox.ended();
            }
            keep
        });
    }

    /// The sandbox of a running container.
    pub fn sandbox(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> Result<Arc<Sandbox>, Error> {
        self.map()
            .get(&Self::key(namespace, pod, container))
            .cloned()
            .ok_or_else(|| Error::NotRunning {
                namespace: namespace.into(),
                pod: pod.into(),
                container: container.into(),
            })
    }

    /// The network of a pod that has a container running here (port-forward's target): every
    /// container of a pod shares it.
    pub fn pod_network(&self, namespace: &str, pod: &str) -> Option<PodNetwork> {
        self.map()
            .iter()
            .find(|((ns, p, _), _)| ns == namespace && p == pod)
            .map(|(_, sandbox)| sandbox.network)
    }

    /// The commands an image provides, parsed once per digest.
    fn commands_of(&self, image: &Image) -> Arc<Vec<String>> {
        let mut cache = self.commands.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .entry(image.digest.clone())
            .or_insert_with(|| Arc::new(image.commands()))
            .clone()
    }

    /// Chooses the program for `argv0` in a container running `image`.
    pub async fn choose(&self, image: &Image, argv0: &str) -> Program {
        let name = basename(argv0);
        if self.commands_of(image).iter().any(|c| c == name) {
            return Program::Own(image.clone());
        }
        let Ok(reference) = Reference::parse(TOOLBOX) else {
            return Program::NotFound;
        };
        match self.images.resolve(&reference).await {
            Ok(toolbox) if self.commands_of(&toolbox).iter().any(|c| c == name) => {
                Program::Toolbox(toolbox)
            }
            _ => Program::NotFound,
        }
    }

    /// Runs `argv` in `sandbox` until it ends, the container stops or `stop` is cancelled.
    pub async fn run(
        &self,
        sandbox: &Sandbox,
        argv: Vec<String>,
        stdio: Stdio,
        stop: CancellationToken,
    ) -> Exit {
        let argv0 = argv.first().cloned().unwrap_or_default();
        let image = match self.choose(&sandbox.image, &argv0).await {
            Program::Own(image) => image,
            Program::Toolbox(toolbox) => {
                let note = format!(
                    "wasmkube: {} is not a command of image {}; running it from {TOOLBOX}\n",
                    basename(&argv0),
                    sandbox.image.name
                );
                let _ = stdio.stderr.write(crlf(&note, stdio.tty).as_bytes());
                toolbox
            }
            Program::NotFound => {
                let message = format!(
                    "exec: {argv0:?}: executable file not found in image {} or {TOOLBOX}\n",
                    sandbox.image.name
                );
                let _ = stdio.stderr.write(crlf(&message, stdio.tty).as_bytes());
                return Exit {
                    code: EXIT_NOT_FOUND,
                    reason: "Error".into(),
                    message: Some(message.trim_end().into()),
                };
            }
        };
        let mut spec = ContainerSpec::new(image, sandbox.root.clone(), sandbox.network.pod_ip);
        spec.argv = argv;
        spec.env = sandbox.env.clone();
        spec.working_dir = sandbox.working_dir.clone();
        spec.mounts = sandbox.mounts.clone();
        spec.network = sandbox.network;
        spec.cluster = sandbox.cluster.clone();
        spec.memory_limit = sandbox.memory_limit;
        spec.cpu = sandbox.cpu;
        spec.usage = sandbox.usage.clone();
        spec.stdout = stdio.stdout;
        spec.stderr = stdio.stderr;
        spec.stdin = stdio.stdin;
        spec.tty = stdio.tty;
        // Killed by whichever comes first: the session, or the container stopping.
        let kill = CancellationToken::new();
        spec.stop = kill.clone();
        let runtime = self.runtime.clone();
        let mut task = self.guests.spawn(async move { runtime.run(spec).await });
        let joined = tokio::select! {
            joined = &mut task => joined,
            () = stop.cancelled() => { kill.cancel(); task.await }
            () = sandbox.stop.cancelled() => { kill.cancel(); task.await }
        };
        joined.unwrap_or_else(|e| Exit {
            code: crate::wasm::EXIT_TRAP,
            reason: "Error".into(),
            message: Some(format!("the exec task failed: {e}")),
        })
    }

    /// Runs `argv` in a container with no stdin, collecting its output (exec probes and
    /// hooks). A command still running after `timeout` is stopped: [`Error::TimedOut`].
    pub async fn capture(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        argv: Vec<String>,
        timeout: Duration,
    ) -> Result<Captured, Error> {
        let sandbox = self.sandbox(namespace, pod, container)?;
        let sink = MemorySink::new(CAPTURE_LIMIT);
        let stdio = Stdio {
            stdin: None,
            stdout: sink.clone(),
            stderr: sink.clone(),
            tty: false,
        };
        let stop = CancellationToken::new();
        let run = self.run(&sandbox, argv.clone(), stdio, stop.clone());
        tokio::pin!(run);
        let exit = tokio::select! {
            exit = &mut run => exit,
            () = tokio::time::sleep(timeout) => {
                stop.cancel();
                run.await;
                return Err(Error::TimedOut { argv, timeout });
            }
        };
        Ok(Captured {
            code: exit.code,
            output: sink.text(),
        })
    }
}

/// One container as the target of exec probes and hooks.
#[derive(Clone)]
pub struct Target {
    /// The node's exec machinery.
    pub exec: Arc<Exec>,
    /// The pod's namespace.
    pub namespace: String,
    /// The pod.
    pub pod: String,
    /// The container.
    pub container: String,
}

impl Target {
    /// [`Exec::capture`] in this container.
    pub async fn capture(&self, argv: Vec<String>, timeout: Duration) -> Result<Captured, Error> {
        self.exec
            .capture(&self.namespace, &self.pod, &self.container, argv, timeout)
            .await
    }
}

/// `\n` as a terminal shows it (`\r\n`) when `tty`.
fn crlf(text: &str, tty: bool) -> String {
    if tty {
        text.replace('\n', "\r\n")
    } else {
        text.to_string()
    }
}
