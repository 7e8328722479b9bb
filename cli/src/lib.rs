//! wasmkube's kubectl-style client verbs: `apply`, `get`, `describe`, `delete`, `scale`, `logs`,
//! `port-forward` (`portforward.rs`), `top` (metrics.k8s.io, `top.rs`) and `image` (the cluster's image store, `image.rs`).
//!
//! They talk to any Kubernetes-compatible API server through kube-rs, resolve resource types
//! through the server's discovery (so short names such as `po` and `deploy` work), and print
//! what kubectl prints. Start reading at [`run`]; each verb lives in its own module
//! (`apply.rs`, `get.rs`, ...), with shared pieces in `client.rs` (kubeconfig, raw JSON
//! requests), `resource.rs` (TYPE resolution), `manifest.rs` (`-f` inputs), `print.rs`
//! (tables, ages, YAML/JSON) and `error.rs` (kubectl-style error messages).

use std::path::PathBuf;

mod apply;
mod client;
mod delete;
mod describe;
mod error;
mod get;
mod image;
mod logs;
mod manifest;
mod portforward;
mod print;
mod progress;
mod resource;
mod rollout;
mod scale;
mod top;

pub use apply::ApplyArgs;
pub use delete::{Cascade, DeleteArgs};
pub use describe::DescribeArgs;
pub use get::{GetArgs, OutputFormat};
pub use image::ImageArgs;
pub use logs::LogsArgs;
pub use portforward::PortForwardArgs;
pub use rollout::RolloutArgs;
pub use scale::ScaleArgs;
pub use top::TopArgs;

/// The client verbs, as clap subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Create or update objects from manifests (client-side apply, like `kubectl apply -f`).
    Apply(ApplyArgs),
    /// List objects or fetch them by name (like `kubectl get`).
    Get(GetArgs),
    /// Show a detailed report on objects, with their events (like `kubectl describe`).
    Describe(DescribeArgs),
    /// Delete objects by name, selector or manifest (like `kubectl delete`).
    Delete(DeleteArgs),
    /// Set the replica count of a scalable object (like `kubectl scale`).
    Scale(ScaleArgs),
    /// Print a container's logs (like `kubectl logs`).
    Logs(LogsArgs),
    /// Forward local ports to a pod, or to a service's or deployment's pod (like
    /// `kubectl port-forward`).
    PortForward(PortForwardArgs),
    /// Manage a Deployment's rollout: status, history, undo, restart, pause, resume.
    Rollout(RolloutArgs),
    /// Manage the cluster's images: import a wasm file, push to a registry, list, remove.
    Image(ImageArgs),
    /// Show CPU and memory of pods or nodes, from metrics.k8s.io (like `kubectl top`).
    Top(TopArgs),
}

/// The error [`run`] returns once it has printed what went wrong to stderr (kubectl's
/// `Error from server (NotFound): ...` lines). The caller should exit with status 1 without
/// printing anything more.
#[derive(Debug, thiserror::Error)]
#[error("command failed (details were printed to stderr)")]
pub struct ErrorReported;

/// Runs one verb against the cluster named by `kubeconfig` (None: $KUBECONFIG, then
/// ~/.kube/config, then the default data dir's kubeconfig
/// ${XDG_DATA_HOME:-~/.local/share}/wasmkube/kubeconfig).
///
/// Results go to stdout and errors to stderr, worded as kubectl words them. Every failure,
/// including a partial one (one of several objects), is returned as [`ErrorReported`] after
/// being printed.
pub async fn run(command: Command, kubeconfig: Option<PathBuf>) -> anyhow::Result<()> {
    let result = match client::Cluster::connect(kubeconfig).await {
        Ok(cluster) => dispatch(command, &cluster).await,
        Err(err) => Err(err),
    };
    match result {
        Ok(()) => Ok(()),
        Err(error::Error::AlreadyReported) => Err(ErrorReported.into()),
        Err(err) => {
            eprintln!("{}", error::report(&err));
            Err(ErrorReported.into())
        }
    }
}

async fn dispatch(command: Command, cluster: &client::Cluster) -> Result<(), error::Error> {
    match command {
        Command::Apply(args) => apply::run(args, cluster).await,
        Command::Get(args) => get::run(args, cluster).await,
        Command::Describe(args) => describe::run(args, cluster).await,
        Command::Delete(args) => delete::run(args, cluster).await,
        Command::Scale(args) => scale::run(args, cluster).await,
        Command::Logs(args) => logs::run(args, cluster).await,
        Command::PortForward(args) => portforward::run(args, cluster).await,
        Command::Image(args) => image::run(args, cluster).await,
        Command::Rollout(args) => rollout::run(args, cluster).await,
        Command::Top(args) => top::run(args, cluster).await,
    }
}
