//! `describe`: a human-readable report on objects, laid out like kubectl's describers.
//!
//! Pods, deployments, nodes and services have their own describers (`describe/*.rs`, ported
//! from kubectl's `describe.go`); every other kind gets kubectl's generic dump of the object's
//! fields (`describe/generic.rs`). All of them end with the object's core/v1 Events, found by
//! `involvedObject.uid`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{Api, ListParams};
use serde_json::Value;

use crate::client::Cluster;
use crate::error::{Error, report};
use crate::print::{TabWriter, human_duration};
use crate::resource::{ResourceIndex, ResourceType, parse_type_args};

/// Writes one formatted line into a [`Writer`]: `w!(out, level, "Name:\t{}", name)`.
macro_rules! w {
    ($out:expr, $level:expr, $($arg:tt)*) => {
        $out.line($level, &format!($($arg)*))
    };
}

mod deployment;
mod generic;
mod node;
mod pod;
mod service;

/// Arguments of `describe`.
#[derive(clap::Args, Debug)]
pub struct DescribeArgs {
    /// `TYPE [NAME...]` or `TYPE/NAME...`; without names, every object of the type.
    #[arg(required = true, value_name = "TYPE[/NAME]")]
    pub args: Vec<String>,
    /// Namespace (default: the kubeconfig context's).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Without names: describe the objects matching this label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
}

/// Runs `describe`; several objects are separated by two blank lines, like kubectl.
pub async fn run(args: DescribeArgs, cluster: &Cluster) -> Result<(), Error> {
    let index = ResourceIndex::discover(&cluster.client).await?;
    let namespace = cluster.namespace(args.namespace.as_deref());
    let mut failed = false;
    let mut first = true;
    for arg in parse_type_args(&args.args)? {
        let ty = index.resolve(&arg.ty)?;
        let api = cluster.api(ty, Some(&namespace));
        let objects = if arg.names.is_empty() {
            let mut lp = ListParams::default();
            if let Some(sel) = &args.selector {
                lp = lp.labels(sel);
            }
            let found = api.list(&lp).await?;
            if found.is_empty() {
                if ty.namespaced {
                    eprintln!("No resources found in {namespace} namespace.");
                } else {
                    eprintln!("No resources found");
                }
            }
            found.into_iter().map(Ok).collect()
        } else {
            let mut objects = Vec::new();
            for name in &arg.names {
                objects.push(api.get(name).await.map(|o| api.with_type_meta(o)));
            }
            objects
        };
        for obj in objects {
            match obj {
                Ok(obj) => {
                    let text = describe(cluster, ty, obj).await;
                    if !first {
                        print!("\n\n");
                    }
                    print!("{text}");
                    first = false;
                }
                Err(err @ Error::Api(_)) => {
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

/// Describes one object; fetching related objects (events, replica sets, pods) is best effort,
/// as in kubectl.
async fn describe(cluster: &Cluster, ty: &ResourceType, obj: Value) -> String {
    let events = events_for(cluster, ty, &obj).await;
    let mut out = Writer::default();
    let described = match (ty.api.group.as_str(), ty.api.kind.as_str()) {
        ("", "Pod") => serde_json::from_value(obj.clone())
            .map(|p| pod::describe(&mut out, &p))
            .is_ok(),
        ("apps", "Deployment") => match serde_json::from_value(obj.clone()) {
            Ok(d) => {
                deployment::describe(cluster, &mut out, &d).await;
                true
            }
            Err(_) => false,
        },
        ("", "Node") => match serde_json::from_value(obj.clone()) {
            Ok(n) => {
                node::describe(cluster, &mut out, &n).await;
                true
            }
            Err(_) => false,
        },
        ("", "Service") => match serde_json::from_value(obj.clone()) {
            Ok(s) => {
                service::describe(cluster, &mut out, &s).await;
                true
            }
            Err(_) => false,
        },
        _ => false,
    };
    if !described {
        // objects the typed describers cannot read still get described
        out = Writer::default();
        generic::describe(&mut out, &obj);
    }
    write_events(&mut out, &events, jiff::Timestamp::now());
    out.finish()
}

/// kubectl's `PrefixWriter` over a `tabwriter`: lines indented two spaces per level, tabs
/// separating aligned cells; [`Writer::flush`] starts a new alignment.
#[derive(Default)]
pub(crate) struct Writer {
    done: String,
    pending: String,
}

impl Writer {
    /// Appends one line at `level`.
    pub(crate) fn line(&mut self, level: usize, text: &str) {
        for _ in 0..level {
            self.pending.push_str("  ");
        }
        self.pending.push_str(text);
        self.pending.push('\n');
    }

    /// Aligns everything written so far on its own.
    pub(crate) fn flush(&mut self) {
        self.done
            .push_str(&TabWriter::DESCRIBE.format(&self.pending));
        self.pending.clear();
    }

    /// The formatted text.
    pub(crate) fn finish(mut self) -> String {
        self.flush();
        self.done
    }
}

/// Annotations kubectl leaves out of `describe`.
const SKIPPED_ANNOTATIONS: [&str; 1] = [crate::apply::LAST_APPLIED];
const MAX_ANNOTATION_LEN: usize = 140;

/// `Labels:  a=b` with one label per line, or `<none>`.
pub(crate) fn labels(out: &mut Writer, title: &str, labels: Option<&BTreeMap<String, String>>) {
    let entries: Vec<String> = labels
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    multiline(out, title, &entries);
}

/// `Annotations:  k: v` (long values cut at 140 characters), without last-applied.
pub(crate) fn annotations(
    out: &mut Writer,
    title: &str,
    annotations: Option<&BTreeMap<String, String>>,
) {
    let entries: Vec<String> = annotations
        .into_iter()
        .flatten()
        .filter(|(k, _)| !SKIPPED_ANNOTATIONS.contains(&k.as_str()))
        .map(|(k, v)| {
            let line = format!("{k}: {v}");
            if line.chars().count() > MAX_ANNOTATION_LEN {
                format!(
                    "{}...",
                    line.chars().take(MAX_ANNOTATION_LEN).collect::<String>()
                )
            } else {
                line
            }
        })
        .collect();
    multiline(out, title, &entries);
}

/// `Title:\tfirst` then `\tnext` per entry (aligned under the first), or `Title:\t<none>`.
pub(crate) fn multiline(out: &mut Writer, title: &str, entries: &[String]) {
    match entries.split_first() {
        None => w!(out, 0, "{title}:\t<none>"),
        Some((first, rest)) => {
            w!(out, 0, "{title}:\t{first}");
            for e in rest {
                w!(out, 0, "\t{e}");
            }
        }
    }
}

/// Go's `time.RFC1123Z` in local time: `Mon, 02 Jan 2006 15:04:05 -0700`.
pub(crate) fn rfc1123z(t: jiff::Timestamp) -> String {
    t.to_zoned(jiff::tz::TimeZone::system())
        .strftime("%a, %d %b %Y %H:%M:%S %z")
        .to_string()
}

/// An optional timestamp in RFC 1123 form, `<unset>` when absent.
pub(crate) fn time_or_unset(t: Option<jiff::Timestamp>) -> String {
    t.map_or_else(|| "<unset>".to_string(), rfc1123z)
}

/// kubectl's `translateTimestampSince`: the age, or `<unknown>`.
pub(crate) fn since(t: Option<jiff::Timestamp>, now: jiff::Timestamp) -> String {
    t.map_or_else(
        || "<unknown>".to_string(),
        |t| human_duration(now.as_second() - t.as_second()),
    )
}

/// `metav1.FormatLabelSelector`: `app=web,tier in (a,b)`, `<none>` for an empty selector.
pub(crate) fn format_selector(selector: &LabelSelector) -> String {
    let mut parts: Vec<String> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for req in selector.match_expressions.iter().flatten() {
        let values = req.values.clone().unwrap_or_default().join(",");
        parts.push(match req.operator.as_str() {
            "In" => format!("{} in ({values})", req.key),
            "NotIn" => format!("{} notin ({values})", req.key),
            "Exists" => req.key.clone(),
            "DoesNotExist" => format!("!{}", req.key),
            op => format!("{} {op} ({values})", req.key),
        });
    }
    if parts.is_empty() {
        "<none>".to_string()
    } else {
        parts.join(",")
    }
}

/// `Kind/name` of the controlling owner, as kubectl's "Controlled By".
pub(crate) fn controlled_by(meta: &ObjectMeta) -> Option<String> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| format!("{}/{}", o.kind, o.name))
}

/// Core/v1 events about the object. Errors yield no events, as in kubectl.
async fn events_for(cluster: &Cluster, ty: &ResourceType, obj: &Value) -> Vec<Event> {
    let Some(uid) = obj["metadata"]["uid"].as_str() else {
        return Vec::new();
    };
    let api: Api<Event> = match obj["metadata"]["namespace"]
        .as_str()
        .filter(|_| ty.namespaced)
    {
        Some(ns) => Api::namespaced(cluster.client.clone(), ns),
        None => Api::all(cluster.client.clone()),
    };
    let lp = ListParams::default().fields(&format!("involvedObject.uid={uid}"));
    let mut events: Vec<Event> = match api.list(&lp).await {
        // filter again: a server that ignores the field selector must not show others' events
        Ok(list) => list
            .items
            .into_iter()
            .filter(|e| e.involved_object.uid.as_deref() == Some(uid))
            .collect(),
        Err(_) => Vec::new(),
    };
    events.sort_by_key(last_seen);
    events
}

fn last_seen(e: &Event) -> Option<jiff::Timestamp> {
    e.last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| e.event_time.as_ref().map(|t| t.0))
        .or_else(|| e.first_timestamp.as_ref().map(|t| t.0))
}

/// kubectl's `DescribeEvents`.
fn write_events(out: &mut Writer, events: &[Event], now: jiff::Timestamp) {
    if events.is_empty() {
        w!(out, 0, "Events:\t<none>");
        return;
    }
    out.flush();
    w!(out, 0, "Events:");
    w!(out, 1, "Type\tReason\tAge\tFrom\tMessage");
    w!(out, 1, "----\t------\t----\t----\t-------");
    for e in events {
        let first = match &e.event_time {
            Some(t) => since(Some(t.0), now),
            None => since(e.first_timestamp.as_ref().map(|t| t.0), now),
        };
        let interval = match (&e.series, e.count.unwrap_or(0)) {
            (Some(series), _) => format!(
                "{} (x{} over {first})",
                since(series.last_observed_time.as_ref().map(|t| t.0), now),
                series.count.unwrap_or(0)
            ),
            (None, count) if count > 1 => format!(
                "{} (x{count} over {first})",
                since(e.last_timestamp.as_ref().map(|t| t.0), now)
            ),
            _ => first,
        };
        let source = e
            .source
            .as_ref()
            .and_then(|s| s.component.clone())
            .filter(|c| !c.is_empty())
            .or_else(|| e.reporting_component.clone())
            .unwrap_or_default();
        w!(
            out,
            1,
            "{}\t{}\t{interval}\t{source}\t{}",
            e.type_.as_deref().unwrap_or(""),
            e.reason.as_deref().unwrap_or(""),
            e.message.as_deref().unwrap_or("").trim()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_show_counts_and_sources() {
        let now: jiff::Timestamp = "2026-01-01T00:10:00Z".parse().expect("ts");
        let event: Event = serde_json::from_value(json!({
            "metadata": {"name": "e"}, "involvedObject": {"uid": "u"},
            "type": "Normal", "reason": "Pulled", "message": "pulled image \"web\" ",
            "source": {"component": "kubelet"}, "count": 3,
            "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:09:00Z"
        }))
        .expect("event");
        let mut out = Writer::default();
        w!(out, 0, "Name:\tx");
        write_events(&mut out, &[event], now);
        assert_eq!(
            out.finish(),
            "Name:  x\nEvents:\n  Type    Reason  Age                From     Message\n  ----    ------  ----               ----     -------\n  Normal  Pulled  60s (x3 over 10m)  kubelet  pulled image \"web\"\n"
        );
    }

    #[test]
    fn selectors_are_formatted_like_kubectl() {
        let sel: LabelSelector = serde_json::from_value(json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}, {"key": "x", "operator": "DoesNotExist"}]
        }))
        .expect("selector");
        assert_eq!(format_selector(&sel), "app=web,tier in (a,b),!x");
        assert_eq!(format_selector(&LabelSelector::default()), "<none>");
    }

    #[test]
    fn labels_continue_on_aligned_lines() {
        let mut out = Writer::default();
        let map: BTreeMap<String, String> = [
            ("b".to_string(), "2".to_string()),
            ("a".to_string(), "1".to_string()),
        ]
        .into();
        labels(&mut out, "Labels", Some(&map));
        annotations(&mut out, "Annotations", None);
        assert_eq!(
            out.finish(),
            "Labels:       a=1\n              b=2\nAnnotations:  <none>\n"
        );
    }
}
