//! `delete`: delete objects named on the command line, in manifests, or matched by `--all`/`-l`,
//! then (like kubectl) wait until they are really gone.

use std::time::Duration;

use kube::api::{DeleteParams, ListParams, PropagationPolicy};
use serde_json::Value;

use crate::client::Cluster;
use crate::error::{Error, report};
use crate::manifest;
use crate::resource::{ResourceIndex, ResourceType, parse_type_args};

/// Arguments of `delete`.
#[derive(clap::Args, Debug)]
pub struct DeleteArgs {
    /// `TYPE NAME...` or `TYPE/NAME...` (or just `TYPE` with `--all` or `-l`).
    #[arg(value_name = "TYPE[/NAME]")]
    pub args: Vec<String>,
    /// Delete the objects in these files or directories; `-` reads stdin.
    #[arg(short = 'f', long = "filename", value_name = "FILE|DIR|-", conflicts_with_all = ["all", "selector"])]
    pub filenames: Vec<String>,
    /// Read directories recursively.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Namespace to delete in (default: the kubeconfig context's).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// With `--all` or `-l`: match objects in every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Delete every object of the type in the namespace.
    #[arg(long)]
    pub all: bool,
    /// Delete the objects matching this label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Treat objects that do not exist as deleted.
    #[arg(long)]
    pub ignore_not_found: bool,
    /// Seconds the object gets to terminate gracefully; negative: the object's own default.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub grace_period: i64,
    /// Ask for immediate shutdown (grace period 1).
    #[arg(long)]
    pub now: bool,
    /// Delete immediately without waiting for graceful termination (grace period 0).
    #[arg(long)]
    pub force: bool,
    /// What happens to dependents: background, foreground or orphan.
    #[arg(long, value_enum, default_value = "background")]
    pub cascade: Cascade,
    /// Wait until the objects are gone before returning.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub wait: bool,
    /// How long to wait (e.g. `30s`, `5m`); 0 waits as long as it takes.
    #[arg(long, default_value = "0s", value_parser = parse_timeout)]
    pub timeout: Duration,
}

/// `--cascade` values.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cascade {
    /// Dependents are deleted by the garbage collector after the owner.
    Background,
    /// The owner is deleted after its dependents.
    Foreground,
    /// Dependents are left in place.
    Orphan,
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    let d: jiff::SignedDuration = s
        .parse()
        .map_err(|e| format!("invalid duration {s:?}: {e}"))?;
    Duration::try_from(d).map_err(|_| format!("invalid duration {s:?}: must not be negative"))
}

/// One object to delete.
struct Victim<'a> {
    ty: &'a ResourceType,
    namespace: Option<String>,
    name: String,
}

/// Runs `delete`.
pub async fn run(args: DeleteArgs, cluster: &Cluster) -> Result<(), Error> {
    let index = ResourceIndex::discover(&cluster.client).await?;
    let namespace = cluster.namespace(args.namespace.as_deref());
    let victims = if args.filenames.is_empty() {
        from_args(&args, &index, cluster, &namespace).await?
    } else {
        if !args.args.is_empty() {
            return Err(Error::Usage(
                "when paths, URLs, or stdin is provided as input, you may not specify resource arguments as well".into(),
            ));
        }
        from_manifests(&args, &index, &namespace)?
    };
    if victims.is_empty() {
        eprintln!("No resources found");
        return Ok(());
    }
    let dp = delete_params(&args);
    let mut failed = false;
    let mut pending = Vec::new();
    for v in &victims {
        let api = cluster.api(v.ty, v.namespace.as_deref());
        match api.delete(&v.name, &dp).await {
            Ok(answer) => {
                println!("{} \"{}\" deleted", v.ty.kind_group(), v.name);
                if answer["kind"] != "Status" {
                    pending.push((v, answer["metadata"]["uid"].as_str().map(str::to_string)));
                }
            }
            Err(err) if err.is_not_found() && args.ignore_not_found => {}
            Err(err @ Error::Api(_)) => {
                eprintln!("{}", report(&err));
                failed = true;
            }
            Err(err) => return Err(err),
        }
    }
    if args.wait {
        let deadline =
            (!args.timeout.is_zero()).then(|| tokio::time::Instant::now() + args.timeout);
        for (v, uid) in pending {
            if let Err(err) = wait_gone(cluster, v, uid.as_deref(), deadline).await {
                eprintln!("{}", report(&err));
                failed = true;
            }
        }
    }
    if failed {
        Err(Error::AlreadyReported)
    } else {
        Ok(())
    }
}

async fn from_args<'a>(
    args: &DeleteArgs,
    index: &'a ResourceIndex,
    cluster: &Cluster,
    namespace: &str,
) -> Result<Vec<Victim<'a>>, Error> {
    let type_args = parse_type_args(&args.args)?;
    let selecting = args.all || args.selector.is_some();
    let mut victims = Vec::new();
    for arg in type_args {
        let ty = index.resolve(&arg.ty)?;
        let scope = if args.all_namespaces && selecting {
            None
        } else {
            Some(namespace.to_string())
        };
        let scope = scope.filter(|_| ty.namespaced);
        match (arg.names.is_empty(), selecting) {
            (false, true) => {
                return Err(Error::Usage(
                    "name cannot be provided when a selector or --all is specified".into(),
                ));
            }
            (true, false) => {
                return Err(Error::Usage(format!(
                    "resource(s) were provided, but no name was specified: name {} objects or pass --all or -l",
                    ty.api.plural
                )));
            }
            (false, false) => {
                victims.extend(arg.names.into_iter().map(|name| Victim {
                    ty,
                    namespace: scope.clone(),
                    name,
                }));
            }
            (true, true) => {
                let mut lp = ListParams::default();
                if let Some(sel) = &args.selector {
                    lp = lp.labels(sel);
                }
                for obj in cluster.api(ty, scope.as_deref()).list(&lp).await? {
                    let meta = &obj["metadata"];
                    let Some(name) = meta["name"].as_str() else {
                        continue;
                    };
                    let ns = meta["namespace"]
                        .as_str()
                        .map(str::to_string)
                        .or_else(|| scope.clone());
                    victims.push(Victim {
                        ty,
                        namespace: ns,
                        name: name.to_string(),
                    });
                }
            }
        }
    }
    Ok(victims)
}

fn from_manifests<'a>(
    args: &DeleteArgs,
    index: &'a ResourceIndex,
    namespace: &str,
) -> Result<Vec<Victim<'a>>, Error> {
    let mut victims = Vec::new();
    for m in manifest::load(&args.filenames, args.recursive)? {
        let obj = &m.object;
        let api_version = obj["apiVersion"].as_str().unwrap_or_default();
        let kind = obj["kind"].as_str().unwrap_or_default();
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let manifest_ns = obj["metadata"]["namespace"]
            .as_str()
            .filter(|ns| !ns.is_empty());
        let ty = index
            .resolve_kind(api_version, kind)
            .ok_or_else(|| Error::NoKindMatch {
                name: name.clone(),
                namespace: manifest_ns.unwrap_or_default().to_string(),
                source_name: m.source.clone(),
                kind: kind.to_string(),
                api_version: api_version.to_string(),
            })?;
        if name.is_empty() {
            return Err(Error::Usage(format!(
                "resource name may not be empty (in \"{}\")",
                m.source
            )));
        }
        let ns = ty
            .namespaced
            .then(|| manifest_ns.unwrap_or(namespace).to_string());
        victims.push(Victim {
            ty,
            namespace: ns,
            name,
        });
    }
    Ok(victims)
}

fn delete_params(args: &DeleteArgs) -> DeleteParams {
    let grace = if args.force {
        Some(0)
    } else if args.now {
        Some(1)
    } else {
        u32::try_from(args.grace_period).ok()
    };
    DeleteParams {
        grace_period_seconds: grace,
        propagation_policy: Some(match args.cascade {
            Cascade::Background => PropagationPolicy::Background,
            Cascade::Foreground => PropagationPolicy::Foreground,
            Cascade::Orphan => PropagationPolicy::Orphan,
        }),
        ..Default::default()
    }
}

/// Polls until the object is gone (NotFound, or replaced by a new object with another uid).
async fn wait_gone(
    cluster: &Cluster,
    v: &Victim<'_>,
    uid: Option<&str>,
    deadline: Option<tokio::time::Instant>,
) -> Result<(), Error> {
    let api = cluster.api(v.ty, v.namespace.as_deref());
    let mut delay = Duration::from_millis(50);
    loop {
        match api.get(&v.name).await {
            Err(err) if err.is_not_found() => return Ok(()),
            Err(err) => return Err(err),
            Ok(obj) if still_same(&obj, uid) => {}
            Ok(_) => return Ok(()),
        }
        if deadline.is_some_and(|d| tokio::time::Instant::now() + delay > d) {
            return Err(Error::WaitTimeout(format!(
                "{}/{}",
                v.ty.plural_group(),
                v.name
            )));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(1));
    }
}

fn still_same(obj: &Value, uid: Option<&str>) -> bool {
    match uid {
        Some(uid) => obj["metadata"]["uid"].as_str() == Some(uid),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: DeleteArgs,
    }

    fn parse(argv: &[&str]) -> DeleteArgs {
        Cli::try_parse_from(std::iter::once("delete").chain(argv.iter().copied()))
            .expect("parses")
            .args
    }

    #[test]
    fn defaults_to_background_cascade_and_server_grace_period() {
        let dp = delete_params(&parse(&["pod", "x"]));
        assert_eq!(dp.grace_period_seconds, None);
        assert!(matches!(
            dp.propagation_policy,
            Some(PropagationPolicy::Background)
        ));
        assert!(parse(&["pod", "x"]).wait);
    }

    #[test]
    fn now_force_and_flags() {
        assert_eq!(
            delete_params(&parse(&["pod", "x", "--now"])).grace_period_seconds,
            Some(1)
        );
        assert_eq!(
            delete_params(&parse(&["pod", "x", "--force"])).grace_period_seconds,
            Some(0)
        );
        assert_eq!(
            delete_params(&parse(&["pod", "x", "--grace-period", "5"])).grace_period_seconds,
            Some(5)
        );
        let args = parse(&[
            "pod",
            "x",
            "--wait=false",
            "--timeout",
            "30s",
            "--cascade",
            "orphan",
        ]);
        assert!(!args.wait);
        assert_eq!(args.timeout, Duration::from_secs(30));
        assert!(matches!(
            delete_params(&args).propagation_policy,
            Some(PropagationPolicy::Orphan)
        ));
    }

    #[test]
    fn recreated_object_counts_as_gone() {
        let obj = serde_json::json!({"metadata": {"uid": "new"}});
        assert!(!still_same(&obj, Some("old")));
        assert!(still_same(&obj, Some("new")));
    }
}
