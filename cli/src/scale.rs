//! `scale`: set `spec.replicas` through the `scale` subresource, as kubectl does (a merge
//! PATCH of `{"spec":{"replicas":N}}` on `.../NAME/scale`).

use crate::client::Cluster;
use crate::error::{Error, report};
use crate::resource::{ResourceIndex, parse_type_args};

/// Arguments of `scale`.
#[derive(clap::Args, Debug)]
pub struct ScaleArgs {
    /// `TYPE/NAME...` or `TYPE NAME...` (deployment, replicaset, statefulset, ...).
    #[arg(required = true, value_name = "TYPE[/NAME]")]
    pub args: Vec<String>,
    /// The desired number of replicas.
    #[arg(long)]
    pub replicas: u32,
    /// Only scale if the current replica count is this (a precondition).
    #[arg(long)]
    pub current_replicas: Option<u32>,
    /// Namespace (default: the kubeconfig context's).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
}

/// Runs `scale`; prints `deployment.apps/web scaled` per object.
pub async fn run(args: ScaleArgs, cluster: &Cluster) -> Result<(), Error> {
    let index = ResourceIndex::discover(&cluster.client).await?;
    let namespace = cluster.namespace(args.namespace.as_deref());
    let mut failed = false;
    for arg in parse_type_args(&args.args)? {
        let ty = index.resolve(&arg.ty)?;
        if arg.names.is_empty() {
            return Err(Error::Usage(format!(
                "resource(s) were provided, but no name was specified for {}",
                arg.ty
            )));
        }
        let api = cluster.api(ty, Some(&namespace));
        for name in &arg.names {
            let result = async {
                if let Some(expected) = args.current_replicas {
                    let scale = api.get_scale(name).await?;
                    let current = scale["spec"]["replicas"].as_u64().unwrap_or(0);
                    if current != u64::from(expected) {
                        return Err(Error::Usage(format!(
                            "Expected replicas to be {expected}, was {current} for {}/{name}",
                            ty.kind_group()
                        )));
                    }
                }
                api.scale(name, args.replicas).await
            }
            .await;
            match result {
                Ok(_) => println!("{}/{name} scaled", ty.kind_group()),
                Err(err @ (Error::Api(_) | Error::Usage(_))) => {
                    eprintln!("{}", report(&err));
                    failed = true;
                }
                Err(err) => return Err(err),
            }
        }
    }
    if failed {
        Err(Error::AlreadyReported)
    } else {
        Ok(())
    }
}
