//! `logs`: a container's output through the API server's `pods/log` (which reaches the node
//! agent), like `kubectl logs POD [-c C] [-f] [--tail N] [--previous] [--timestamps]`.

use futures::{AsyncBufReadExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::LogParams;

use crate::client::Cluster;
use crate::error::Error;

/// Arguments of `logs`.
#[derive(clap::Args, Debug)]
pub struct LogsArgs {
    /// The pod (`POD` or `pod/POD`).
    pub pod: String,
    /// The container (needed when the pod has several).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Keep streaming new output.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only the last N lines (-1: all).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub tail: i64,
    /// The previous run of a restarted container.
    #[arg(short = 'p', long)]
    pub previous: bool,
    /// Prefix each line with its RFC 3339 timestamp.
    #[arg(long)]
    pub timestamps: bool,
    /// Namespace (default: the kubeconfig context's).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
}

/// Runs `logs`, copying the container's output to stdout.
pub async fn run(args: LogsArgs, cluster: &Cluster) -> Result<(), Error> {
    let namespace = cluster.namespace(args.namespace.as_deref());
    let pod = args
        .pod
        .strip_prefix("pod/")
        .or_else(|| args.pod.strip_prefix("pods/"))
        .unwrap_or(&args.pod);
    let api: Api<Pod> = Api::namespaced(cluster.client.clone(), &namespace);
    let params = LogParams {
        container: args.container.clone(),
        follow: args.follow,
        tail_lines: (args.tail >= 0).then_some(args.tail),
        previous: args.previous,
        timestamps: args.timestamps,
        ..LogParams::default()
    };
    let mut lines = api.log_stream(pod, &params).await?.lines();
    while let Some(line) = lines
        .try_next()
        .await
        .map_err(|e| Error::Request(kube::Error::ReadEvents(e)))?
    {
        println!("{line}");
    }
    Ok(())
}
