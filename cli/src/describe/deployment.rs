//! `describe deployment` (kubectl's `describeDeployment`), including the old and new
//! ReplicaSets found through the deployment's selector and owner references.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ListParams};

use super::{Writer, annotations, format_selector, labels, rfc1123z};
use crate::client::Cluster;

const REVISION: &str = "deployment.kubernetes.io/revision";

/// Writes the deployment report (without events).
pub(super) async fn describe(cluster: &Cluster, out: &mut Writer, d: &Deployment) {
    let replica_sets = owned_replica_sets(cluster, d).await;
    write(out, d, &replica_sets);
}

fn write(out: &mut Writer, d: &Deployment, replica_sets: &[ReplicaSet]) {
    let meta = &d.metadata;
    let spec = &d.spec;
    let status = d.status.clone().unwrap_or_default();
    w!(out, 0, "Name:\t{}", meta.name.as_deref().unwrap_or(""));
    w!(
        out,
        0,
        "Namespace:\t{}",
        meta.namespace.as_deref().unwrap_or("")
    );
    if let Some(t) = &meta.creation_timestamp {
        w!(out, 0, "CreationTimestamp:\t{}", rfc1123z(t.0));
    }
    labels(out, "Labels", meta.labels.as_ref());
    annotations(out, "Annotations", meta.annotations.as_ref());
    w!(out, 0, "Selector:\t{}", format_selector(&spec.selector));
    w!(
        out,
        0,
        "Replicas:\t{} desired | {} updated | {} total | {} available | {} unavailable",
        spec.replicas.unwrap_or(1),
        status.updated_replicas.unwrap_or(0),
        status.replicas.unwrap_or(0),
        status.available_replicas.unwrap_or(0),
        status.unavailable_replicas.unwrap_or(0)
    );
    let strategy = spec.strategy.clone().unwrap_or_default();
    w!(
        out,
        0,
        "StrategyType:\t{}",
        strategy.type_.as_deref().unwrap_or("")
    );
    w!(
        out,
        0,
        "MinReadySeconds:\t{}",
        spec.min_ready_seconds.unwrap_or(0)
    );
    if let Some(ru) = &strategy.rolling_update {
        let show = |v: &Option<IntOrString>| match v {
            Some(IntOrString::Int(i)) => i.to_string(),
            Some(IntOrString::String(s)) => s.clone(),
            None => "<nil>".to_string(),
        };
        w!(
            out,
            0,
            "RollingUpdateStrategy:\t{} max unavailable, {} max surge",
            show(&ru.max_unavailable),
            show(&ru.max_surge)
        );
    }
    super::pod::template(
        out,
        spec.template.metadata.as_ref(),
        spec.template.spec.as_ref(),
    );
    if let Some(conditions) = status.conditions.as_deref().filter(|c| !c.is_empty()) {
        w!(out, 0, "Conditions:");
        w!(out, 1, "Type\tStatus\tReason");
        w!(out, 1, "----\t------\t------");
        for c in conditions {
            w!(
                out,
                1,
                "{} \t{}\t{}",
                c.type_.as_deref().unwrap_or(""),
                c.status.as_deref().unwrap_or(""),
                c.reason.as_deref().unwrap_or("")
            );
        }
    }
    let (new, old) = split_new_old(d, replica_sets);
    if new.is_some() || !old.is_empty() {
        w!(out, 0, "OldReplicaSets:\t{}", replica_set_summary(&old));
        w!(
            out,
            0,
            "NewReplicaSet:\t{}",
            replica_set_summary(&new.into_iter().collect::<Vec<_>>())
        );
    }
}

/// The deployment's ReplicaSets: listed by its selector, kept if it controls them.
async fn owned_replica_sets(cluster: &Cluster, d: &Deployment) -> Vec<ReplicaSet> {
    let (Some(ns), Some(uid)) = (d.metadata.namespace.as_deref(), d.metadata.uid.as_deref()) else {
        return Vec::new();
    };
    let selector = Some(format_selector(&d.spec.selector)).filter(|s| s != "<none>");
    let mut lp = ListParams::default();
    if let Some(sel) = &selector {
        lp = lp.labels(sel);
    }
    let api: Api<ReplicaSet> = Api::namespaced(cluster.client.clone(), ns);
    match api.list(&lp).await {
        Ok(list) => list
            .items
            .into_iter()
            .filter(|rs| {
                rs.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| o.uid == uid && o.controller == Some(true))
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The new ReplicaSet carries the deployment's revision; old ones are the others that still
/// have replicas (kubectl hides scaled-down history).
fn split_new_old<'a>(
    d: &Deployment,
    replica_sets: &'a [ReplicaSet],
) -> (Option<&'a ReplicaSet>, Vec<&'a ReplicaSet>) {
    let revision_of = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        meta.annotations
            .as_ref()
            .and_then(|a| a.get(REVISION))
            .and_then(|r| r.parse::<u64>().ok())
    };
    let wanted = revision_of(&d.metadata);
    let new = match wanted {
        Some(rev) => replica_sets
            .iter()
            .find(|rs| revision_of(&rs.metadata) == Some(rev)),
        None => replica_sets
            .iter()
            .max_by_key(|rs| revision_of(&rs.metadata)),
    };
    let old = replica_sets
        .iter()
        .filter(|rs| !new.is_some_and(|n| std::ptr::eq(*rs, n)))
        .filter(|rs| rs.spec.replicas.unwrap_or(0) > 0)
        .collect();
    (new, old)
}

/// `web-5d (3/3 replicas created)`, comma separated, or `<none>`.
fn replica_set_summary(sets: &[&ReplicaSet]) -> String {
    if sets.is_empty() {
        return "<none>".to_string();
    }
    sets.iter()
        .map(|rs| {
            format!(
                "{} ({}/{} replicas created)",
                rs.metadata.name.as_deref().unwrap_or(""),
                rs.status.as_ref().map_or(0, |s| s.replicas),
                rs.spec.replicas.unwrap_or(1)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deployment_report_has_replicas_template_and_replica_sets() {
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "d1", "annotations": {REVISION: "2"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]}]}}},
            "status": {"replicas": 2, "updatedReplicas": 2, "availableReplicas": 2,
                       "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}]}
        }))
        .expect("deployment");
        let rs = |name: &str, rev: &str, replicas: i32| -> ReplicaSet {
            serde_json::from_value(json!({
                "metadata": {"name": name, "annotations": {REVISION: rev}},
                "spec": {"replicas": replicas, "selector": {}},
                "status": {"replicas": replicas}
            }))
            .expect("rs")
        };
        let sets = [rs("web-old", "1", 0), rs("web-new", "2", 2)];
        let mut out = Writer::default();
        write(&mut out, &d, &sets);
        let text = out.finish();
        let expected = "\
Name:                   web
Namespace:              default
Labels:                 <none>
Annotations:            deployment.kubernetes.io/revision: 2
Selector:               app=web
Replicas:               2 desired | 2 updated | 2 total | 2 available | 0 unavailable
StrategyType:           RollingUpdate
MinReadySeconds:        0
RollingUpdateStrategy:  25% max unavailable, 25% max surge
Pod Template:
  Labels:  app=web
  Containers:
   web:
    Image:         nginx
    Port:          80/TCP
    Host Port:     0/TCP
    Environment:   <none>
    Mounts:        <none>
  Volumes:         <none>
  Node-Selectors:  <none>
  Tolerations:     <none>
Conditions:
  Type           Status  Reason
  ----           ------  ------
  Available      True    MinimumReplicasAvailable
OldReplicaSets:  <none>
NewReplicaSet:   web-new (2/2 replicas created)
";
        assert_eq!(text, expected);
    }
}
