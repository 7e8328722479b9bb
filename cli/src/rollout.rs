//! `rollout status|history|undo|restart|pause|resume deployment/NAME`, worded as kubectl's.
//!
//! Like kubectl these are client-side: `undo` copies an old ReplicaSet's template back into
//! the Deployment, `restart` stamps the template with `kubectl.kubernetes.io/restartedAt`,
//! `pause`/`resume` flip `spec.paused`; the Deployment controller does the rest. `status`
//! watches the Deployment until its rollout is complete, reporting each step.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::json;

use crate::client::Cluster;
use crate::error::Error;

const REVISION: &str = "deployment.kubernetes.io/revision";

/// Arguments of `rollout`.
#[derive(clap::Args, Debug)]
pub struct RolloutArgs {
    #[command(subcommand)]
    command: RolloutCommand,
}

#[derive(clap::Subcommand, Debug)]
enum RolloutCommand {
    /// Watch a rollout until it completes.
    Status {
        /// `deployment/NAME` (or `deployment NAME`).
        #[arg(required = true, num_args = 1..=2)]
        target: Vec<String>,
        /// Give up after this long (`0`: never), e.g. `90s`.
        #[arg(long, default_value = "0")]
        timeout: String,
        /// Namespace.
        #[arg(short = 'n', long)]
        namespace: Option<String>,
    },
    /// List the revisions of a Deployment.
    History {
        /// `deployment/NAME`.
        #[arg(required = true, num_args = 1..=2)]
        target: Vec<String>,
        /// Namespace.
        #[arg(short = 'n', long)]
        namespace: Option<String>,
    },
    /// Roll back to the previous revision (or `--to-revision`).
    Undo {
        /// `deployment/NAME`.
        #[arg(required = true, num_args = 1..=2)]
        target: Vec<String>,
        /// The revision to go back to (0: the previous one).
        #[arg(long, default_value_t = 0)]
        to_revision: i64,
        /// Namespace.
        #[arg(short = 'n', long)]
        namespace: Option<String>,
    },
    /// Restart every pod by rolling out the same template again.
    Restart {
        /// `deployment/NAME`.
        #[arg(required = true, num_args = 1..=2)]
        target: Vec<String>,
        /// Namespace.
        #[arg(short = 'n', long)]
        namespace: Option<String>,
    },
    /// Stop rolling out template changes.
    Pause {
        /// `deployment/NAME`.
        #[arg(required = true, num_args = 1..=2)]
        target: Vec<String>,
        /// Namespace.
        #[arg(short = 'n', long)]
        namespace: Option<String>,
    },
    /// Roll out again after `pause`.
    Resume {
        /// `deployment/NAME`.
        #[arg(required = true, num_args = 1..=2)]
        target: Vec<String>,
        /// Namespace.
        #[arg(short = 'n', long)]
        namespace: Option<String>,
    },
}

/// `deployment/web`, `deploy web`, `deployments.apps/web` -> `web`.
fn deployment_name(target: &[String]) -> Result<String, Error> {
    let (kind, name) = match target {
        [one] => one
            .split_once('/')
            .map(|(k, n)| (k.to_string(), n.to_string()))
            .ok_or_else(|| Error::Usage(format!("expected TYPE/NAME, got {one:?}")))?,
        [kind, name] => (kind.clone(), name.clone()),
        _ => return Err(Error::Usage("expected TYPE/NAME".into())),
    };
    let kind = kind
        .split('.')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !matches!(kind.as_str(), "deployment" | "deployments" | "deploy") {
        return Err(Error::Usage(format!(
            "no rollout support for {kind:?} yet (deployments only)"
        )));
    }
    Ok(name)
}

/// Runs a rollout command.
pub async fn run(args: RolloutArgs, cluster: &Cluster) -> Result<(), Error> {
    let (target, namespace) = match &args.command {
        RolloutCommand::Status {
            target, namespace, ..
        }
        | RolloutCommand::History { target, namespace }
        | RolloutCommand::Undo {
            target, namespace, ..
        }
        | RolloutCommand::Restart { target, namespace }
        | RolloutCommand::Pause { target, namespace }
        | RolloutCommand::Resume { target, namespace } => (target, namespace),
    };
    let name = deployment_name(target)?;
    let ns = cluster.namespace(namespace.as_deref());
    let api: Api<Deployment> = Api::namespaced(cluster.client.clone(), &ns);
    let shown = format!("deployment.apps/{name}");
    match args.command {
        RolloutCommand::Status { timeout, .. } => status(&api, &name, &timeout).await,
        RolloutCommand::History { .. } => {
            let deploy = api.get(&name).await?;
            println!("{shown} ");
            println!("{:<10}CHANGE-CAUSE", "REVISION");
            for (revision, rs) in revisions(cluster, &ns, &deploy).await? {
                let cause = rs
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("kubernetes.io/change-cause"))
                    .map_or("<none>", String::as_str);
                println!("{revision:<10}{cause}");
            }
            println!();
            Ok(())
        }
        RolloutCommand::Undo { to_revision, .. } => {
            let deploy = api.get(&name).await?;
            let history = revisions(cluster, &ns, &deploy).await?;
            let current: i64 = deploy
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(REVISION))
                .and_then(|r| r.parse().ok())
                .unwrap_or(0);
            let wanted = if to_revision == 0 {
                history
                    .iter()
                    .rev()
                    .map(|(r, _)| *r)
                    .find(|r| *r != current)
            } else {
                Some(to_revision)
            };
            let Some((revision, rs)) =
                wanted.and_then(|w| history.into_iter().find(|(r, _)| *r == w))
            else {
                return Err(Error::Usage(match to_revision {
                    0 => "no rollout history found for deployment \"".to_string() + &name + "\"",
                    r => format!("unable to find specified revision {r} in history"),
                }));
            };
            let mut template = rs.spec.template.clone().unwrap_or_default();
            if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
                labels.remove("pod-template-hash");
            }
            if serde_json::to_value(&template).ok()
                == serde_json::to_value(&deploy.spec.template).ok()
            {
                println!(
                    "{shown} skipped rollback (current template already matches revision {revision})"
                );
                return Ok(());
            }
            let patch = json!({"spec": {"template": template}});
            api.patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await?;
            println!("{shown} rolled back");
            Ok(())
        }
        RolloutCommand::Restart { .. } => {
            let now = jiff::Timestamp::now()
                .strftime("%Y-%m-%dT%H:%M:%SZ")
                .to_string();
            let patch = json!({"spec": {"template": {"metadata": {"annotations": {
                "kubectl.kubernetes.io/restartedAt": now}}}}});
            api.patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await?;
            println!("{shown} restarted");
            Ok(())
        }
        RolloutCommand::Pause { .. } | RolloutCommand::Resume { .. } => {
            let pause = matches!(args.command, RolloutCommand::Pause { .. });
            let deploy = api.get(&name).await?;
            let word = if pause { "paused" } else { "resumed" };
            if deploy.spec.paused.unwrap_or(false) == pause {
                return Err(Error::Usage(format!(
                    "deployments.apps \"{name}\" is {}",
                    if pause {
                        "already paused"
                    } else {
                        "not paused"
                    }
                )));
            }
            let patch = json!({"spec": {"paused": if pause { json!(true) } else { json!(null) }}});
            api.patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await?;
            println!("{shown} {word}");
            Ok(())
        }
    }
}

/// The Deployment's ReplicaSets by revision, oldest first.
async fn revisions(
    cluster: &Cluster,
    ns: &str,
    deploy: &Deployment,
) -> Result<Vec<(i64, ReplicaSet)>, Error> {
    let uid = deploy.metadata.uid.clone().unwrap_or_default();
    let api: Api<ReplicaSet> = Api::namespaced(cluster.client.clone(), ns);
    let mut out: Vec<(i64, ReplicaSet)> = api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|rs| {
            rs.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|r| r.uid == uid)
        })
        .filter_map(|rs| {
            let revision = rs
                .metadata
                .annotations
                .as_ref()?
                .get(REVISION)?
                .parse()
                .ok()?;
            Some((revision, rs))
        })
        .collect();
    out.sort_by_key(|(r, _)| *r);
    Ok(out)
}

/// What `kubectl rollout status` says about a Deployment, and whether it is done.
fn describe(d: &Deployment) -> Result<(String, bool), Error> {
    let name = d.metadata.name.clone().unwrap_or_default();
    let status = d.status.clone().unwrap_or_default();
    if d.metadata.generation.unwrap_or(0) > status.observed_generation.unwrap_or(0) {
        return Ok((
            "Waiting for deployment spec update to be observed...".into(),
            false,
        ));
    }
    let progressing = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_.as_deref() == Some("Progressing"));
    if progressing.is_some_and(|c| c.reason.as_deref() == Some("ProgressDeadlineExceeded")) {
        return Err(Error::Usage(format!(
            "deployment {name:?} exceeded its progress deadline"
        )));
    }
    let desired = d.spec.replicas.unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    let replicas = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    Ok(if updated < desired {
        (
            format!(
                "Waiting for deployment {name:?} rollout to finish: {updated} out of {desired} new replicas have been updated..."
            ),
            false,
        )
    } else if replicas > updated {
        (
            format!(
                "Waiting for deployment {name:?} rollout to finish: {} old replicas are pending termination...",
                replicas - updated
            ),
            false,
        )
    } else if available < updated {
        (
            format!(
                "Waiting for deployment {name:?} rollout to finish: {available} of {updated} updated replicas are available..."
            ),
            false,
        )
    } else {
        (format!("deployment {name:?} successfully rolled out"), true)
    })
}

async fn status(api: &Api<Deployment>, name: &str, timeout: &str) -> Result<(), Error> {
    let limit = parse_timeout(timeout)?;
    let started = Instant::now();
    let mut last = String::new();
    loop {
        let deploy = api.get(name).await?;
        let (message, done) = describe(&deploy)?;
        if message != last {
            println!("{message}");
            last = message;
        }
        if done {
            return Ok(());
        }
        if limit.is_some_and(|l| started.elapsed() > l) {
            return Err(Error::WaitTimeout(format!("deployment/{name}")));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn parse_timeout(s: &str) -> Result<Option<Duration>, Error> {
    let bad = || Error::Usage(format!("invalid --timeout {s:?} (use e.g. 90s, 5m)"));
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n.parse().map_err(|_| bad())?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(bad()),
    };
    Ok((secs > 0).then(|| Duration::from_secs(secs)))
}
