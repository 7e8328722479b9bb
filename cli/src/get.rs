//! `get`: list or fetch objects and print them as kubectl does.
//!
//! Human output asks the server for a `meta.k8s.io/v1` Table (so columns are the server's,
//! exactly like kubectl) and falls back to `NAME AGE` when the server sends plain objects.
//! `-o yaml|json` prints one object as is and several as a `v1` `List`; `-o name` prints
//! `kind.group/name`.

use kube::api::ListParams;
use serde_json::Value;

use crate::client::{Cluster, TABLE_ACCEPT};
use crate::error::{Error, report};
use crate::print::{self, Table, TableOptions};
use crate::resource::{ResourceIndex, ResourceType, parse_type_args};

/// Arguments of `get`.
#[derive(clap::Args, Debug)]
pub struct GetArgs {
    /// `TYPE[,TYPE...] [NAME...]` or `TYPE/NAME...`; TYPE is a resource, short name, kind or `all`.
    #[arg(required = true, value_name = "TYPE[/NAME]")]
    pub args: Vec<String>,
    /// Namespace to look in (default: the kubeconfig context's).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// List across all namespaces, with a NAMESPACE column.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Label selector, e.g. `app=web,tier!=db`.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Field selector, e.g. `status.phase=Running`.
    #[arg(long)]
    pub field_selector: Option<String>,
    /// Output format: wide, yaml, json or name (default: the server's table).
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<OutputFormat>,
    /// Add a LABELS column.
    #[arg(long)]
    pub show_labels: bool,
    /// Do not print the header line.
    #[arg(long)]
    pub no_headers: bool,
    /// Treat named objects that do not exist as absent instead of an error.
    #[arg(long)]
    pub ignore_not_found: bool,
}

/// `-o` values understood by `get`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    /// The table with every column, including priority > 0 ones.
    Wide,
    /// YAML documents.
    Yaml,
    /// JSON documents.
    Json,
    /// `kind.group/name` per object.
    Name,
}

/// One resolved type with the names asked for (empty: all).
struct Target<'a> {
    ty: &'a ResourceType,
    names: Vec<String>,
}

/// Runs `get`.
pub async fn run(args: GetArgs, cluster: &Cluster) -> Result<(), Error> {
    let index = ResourceIndex::discover(&cluster.client).await?;
    let mut targets = Vec::new();
    for arg in parse_type_args(&args.args)? {
        for ty in index.resolve_or_category(&arg.ty)? {
            targets.push(Target {
                ty,
                names: arg.names.clone(),
            });
        }
    }
    let namespace = cluster.namespace(args.namespace.as_deref());
    let mut lp = ListParams::default();
    if let Some(l) = &args.selector {
        lp = lp.labels(l);
    }
    if let Some(f) = &args.field_selector {
        lp = lp.fields(f);
    }
    let ctx = Ctx {
        cluster,
        args: &args,
        namespace: &namespace,
        lp,
        multi: targets.len() > 1,
    };
    let mut errors = Vec::new();
    let found_any = match args.output {
        None | Some(OutputFormat::Wide) => print_tables(&ctx, &targets, &mut errors).await?,
        Some(OutputFormat::Name) => {
            let objects = fetch_objects(&ctx, &targets, &mut errors).await?;
            for (ty, obj) in &objects {
                println!(
                    "{}/{}",
                    ty.kind_group(),
                    obj["metadata"]["name"].as_str().unwrap_or_default()
                );
            }
            !objects.is_empty()
        }
        Some(format @ (OutputFormat::Yaml | OutputFormat::Json)) => {
            let objects = fetch_objects(&ctx, &targets, &mut errors).await?;
            let single = targets.len() == 1 && targets.iter().all(|t| t.names.len() == 1);
            let doc = match (single, objects.len()) {
                (true, 1) => objects.into_iter().next().map(|(_, o)| o),
                (true, _) => None,
                (false, _) => Some(print::list_of(
                    objects.into_iter().map(|(_, o)| o).collect(),
                )),
            };
            if let Some(doc) = doc {
                let text = if format == OutputFormat::Yaml {
                    print::to_yaml(&doc)?
                } else {
                    print::to_json(&doc)?
                };
                print!("{text}");
            }
            true
        }
    };
    let listed = targets.iter().any(|t| t.names.is_empty());
    if !found_any && listed && errors.is_empty() {
        let namespaced = targets.iter().any(|t| t.ty.namespaced);
        if args.all_namespaces || !namespaced {
            eprintln!("No resources found");
        } else {
            eprintln!("No resources found in {namespace} namespace.");
        }
    }
    for err in &errors {
        eprintln!("{}", report(err));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::AlreadyReported)
    }
}

struct Ctx<'a> {
    cluster: &'a Cluster,
    args: &'a GetArgs,
    namespace: &'a str,
    lp: ListParams,
    /// Several types in one call: names get a `kind.group/` prefix, as kubectl does.
    multi: bool,
}

impl Ctx<'_> {
    fn scope(&self) -> Option<&str> {
        if self.args.all_namespaces {
            None
        } else {
            Some(self.namespace)
        }
    }

    /// Records a per-name error unless it is a NotFound the user said to ignore.
    fn keep_error(&self, err: Error, errors: &mut Vec<Error>) -> Result<(), Error> {
        match err {
            e if e.is_not_found() && self.args.ignore_not_found => Ok(()),
            e @ Error::Api(_) => {
                errors.push(e);
                Ok(())
            }
            // transport errors will not get better for the next name
            e => Err(e),
        }
    }
}

/// Prints one table per type; returns whether any row was printed.
async fn print_tables(
    ctx: &Ctx<'_>,
    targets: &[Target<'_>],
    errors: &mut Vec<Error>,
) -> Result<bool, Error> {
    let now = jiff::Timestamp::now();
    let mut printed = false;
    for target in targets {
        let api = ctx.cluster.api(target.ty, ctx.scope());
        let mut table: Option<Table> = None;
        if target.names.is_empty() {
            for page in api.list_pages(&ctx.lp, Some(TABLE_ACCEPT)).await? {
                merge(&mut table, to_table(page, now));
            }
        } else {
            for name in &target.names {
                match api.get_table(name).await {
                    Ok(answer) => merge(&mut table, to_table(answer, now)),
                    Err(err) => ctx.keep_error(err, errors)?,
                }
            }
        }
        let Some(table) = table.filter(|t| !t.rows.is_empty()) else {
            continue;
        };
        let opts = TableOptions {
            wide: ctx.args.output == Some(OutputFormat::Wide),
            with_namespace: ctx.args.all_namespaces && target.ty.namespaced,
            kind_prefix: ctx.multi.then(|| target.ty.kind_group()),
            show_labels: ctx.args.show_labels,
            no_headers: ctx.args.no_headers,
        };
        if printed {
            println!();
        }
        print!("{}", table.render(&opts));
        printed = true;
    }
    Ok(printed)
}

/// A Table from whatever the server answered: a Table, a list or a single object.
fn to_table(answer: Value, now: jiff::Timestamp) -> Table {
    match answer["kind"].as_str() {
        Some("Table") => serde_json::from_value(answer).unwrap_or_default(),
        _ => match answer.get("items").and_then(Value::as_array) {
            Some(items) => Table::from_objects(items, now),
            None => Table::from_objects(std::slice::from_ref(&answer), now),
        },
    }
}

fn merge(into: &mut Option<Table>, table: Table) {
    match into {
        Some(existing) => existing.rows.extend(table.rows),
        None => *into = Some(table),
    }
}

/// Full objects (with apiVersion and kind) for `-o yaml|json|name`.
async fn fetch_objects<'a>(
    ctx: &Ctx<'_>,
    targets: &[Target<'a>],
    errors: &mut Vec<Error>,
) -> Result<Vec<(&'a ResourceType, Value)>, Error> {
    let mut objects = Vec::new();
    for target in targets {
        let api = ctx.cluster.api(target.ty, ctx.scope());
        if target.names.is_empty() {
            objects.extend(api.list(&ctx.lp).await?.into_iter().map(|o| (target.ty, o)));
            continue;
        }
        for name in &target.names {
            match api.get(name).await {
                Ok(obj) => objects.push((target.ty, api.with_type_meta(obj))),
                Err(err) => ctx.keep_error(err, errors)?,
            }
        }
    }
    Ok(objects)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_lists_become_name_age_tables() {
        let now: jiff::Timestamp = "2026-01-01T00:01:00Z".parse().expect("ts");
        let list = json!({"kind": "PodList", "items": [{"metadata": {"name": "a", "creationTimestamp": "2026-01-01T00:00:00Z"}}]});
        let table = to_table(list, now);
        assert_eq!(
            table.render(&TableOptions::default()),
            "NAME   AGE\na      60s\n"
        );
        let single = to_table(json!({"kind": "Pod", "metadata": {"name": "b"}}), now);
        assert_eq!(single.rows.len(), 1);
    }

    #[test]
    fn server_tables_are_used_as_is() {
        let now = jiff::Timestamp::now();
        let t = json!({"kind": "Table", "columnDefinitions": [{"name": "Name"}, {"name": "Status"}], "rows": [{"cells": ["a", "Running"]}]});
        let mut table = None;
        merge(&mut table, to_table(t.clone(), now));
        merge(&mut table, to_table(t, now));
        let table = table.expect("merged");
        assert_eq!(
            table.render(&TableOptions::default()),
            "NAME   STATUS\na      Running\na      Running\n"
        );
    }
}
