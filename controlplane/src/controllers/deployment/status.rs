//! A Deployment's status: the replica counts summed over its ReplicaSets and the
//! `Available` and `Progressing` conditions, as `kubectl rollout status` reads them.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use super::{Context, Error};

fn time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A condition carried over from `previous` when its status, reason and message are the
/// same (keeping its times, unless `touch` asks to refresh `lastUpdateTime`), else a new one.
fn condition(
    previous: &Value,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    touch: bool,
) -> Value {
    let now = time(Timestamp::now());
    let old = previous["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_));
    match old {
        Some(c) if c["status"] == status && c["reason"] == reason && c["message"] == message => {
            let mut c = c.clone();
            if touch {
                c["lastUpdateTime"] = json!(now);
            }
            c
        }
        Some(c) if c["status"] == status => {
            json!({"type": type_, "status": status, "reason": reason,
            "message": message, "lastUpdateTime": now, "lastTransitionTime": c["lastTransitionTime"]})
        }
        _ => json!({"type": type_, "status": status, "reason": reason, "message": message,
            "lastUpdateTime": now, "lastTransitionTime": now}),
    }
}

/// Computes and writes the status when it changed; returns when to look again (the
/// progress deadline of a rollout under way).
#[allow(
    clippy::too_many_arguments,
    reason = "one call site; the pass's facts, spelled out"
)]
pub(super) async fn write_status(
    ctx: &Context,
    deploy: &Deployment,
    new_rs: Option<&ReplicaSet>,
    old: &[ReplicaSet],
    desired: i32,
    max_unavailable: i32,
    paused: bool,
    progress: Option<(&'static str, String)>,
) -> Result<Option<Duration>, Error> {
    let previous = serde_json::to_value(&deploy.status).unwrap_or(Value::Null);
    let status_of = |rs: &ReplicaSet| rs.status.clone().unwrap_or_default();
    let all: Vec<&ReplicaSet> = new_rs.into_iter().chain(old).collect();
    let replicas: i32 = all.iter().map(|rs| status_of(rs).replicas).sum();
    let ready: i32 = all
        .iter()
        .map(|rs| status_of(rs).ready_replicas.unwrap_or(0))
        .sum();
    let available: i32 = all
        .iter()
        .map(|rs| status_of(rs).available_replicas.unwrap_or(0))
        .sum();
    let updated = new_rs.map_or(0, |rs| status_of(rs).replicas);
    let new_available = new_rs.map_or(0, |rs| status_of(rs).available_replicas.unwrap_or(0));
    let new_name = new_rs.map(|rs| rs.name_any()).unwrap_or_default();

    let available_condition = if available >= desired - max_unavailable {
        condition(
            &previous,
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
            false,
        )
    } else {
        condition(
            &previous,
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
            false,
        )
    };

    let counts = json!([replicas, updated, ready, available]);
    let previous_counts = json!([
        previous["replicas"].as_i64().unwrap_or(0),
        previous["updatedReplicas"].as_i64().unwrap_or(0),
        previous["readyReplicas"].as_i64().unwrap_or(0),
        previous["availableReplicas"].as_i64().unwrap_or(0)
    ]);
    let moved = counts != previous_counts;
    let complete =
        new_rs.is_some() && updated == desired && replicas == desired && new_available >= desired;
    let previous_progress = previous["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Progressing"))
        .cloned();
    let deadline = deploy.spec.progress_deadline_seconds.unwrap_or(600);
    let mut wait = None;
    let progressing = if paused {
        Some(condition(
            &previous,
            "Progressing",
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused",
            false,
        ))
    } else if complete {
        Some(condition(
            &previous,
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            &format!("ReplicaSet \"{new_name}\" has successfully progressed."),
            false,
        ))
    } else if let Some((reason, message)) = &progress {
        Some(condition(
            &previous,
            "Progressing",
            "True",
            reason,
            message,
            true,
        ))
    } else if new_rs.is_some()
        && (moved
            || previous_progress
                .as_ref()
                .is_some_and(|c| c["reason"] == "DeploymentPaused"))
    {
        Some(condition(
            &previous,
            "Progressing",
            "True",
            "ReplicaSetUpdated",
            &format!("ReplicaSet \"{new_name}\" is progressing."),
            true,
        ))
    } else if let Some(c) = previous_progress
        .clone()
        .filter(|c| c["status"] == "True" && new_rs.is_some())
    {
        // No progress this pass: has the deadline passed since the last progress?
        let last = c["lastUpdateTime"]
            .as_str()
            .and_then(|t| t.parse::<Timestamp>().ok());
        let since = last
            .map(|t| Timestamp::now().duration_since(t))
            .unwrap_or_default();
        let limit = jiff::SignedDuration::from_secs(i64::from(deadline));
        if since > limit {
            Some(condition(
                &previous,
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                &format!("ReplicaSet \"{new_name}\" has timed out progressing."),
                false,
            ))
        } else {
            wait = Duration::try_from(limit - since)
                .ok()
                .map(|d| d + Duration::from_millis(100));
            Some(c)
        }
    } else if let Some(c) = previous_progress.clone() {
        Some(c)
    } else {
        new_rs.map(|_| {
            condition(
                &previous,
                "Progressing",
                "True",
                "FoundNewReplicaSet",
                &format!("Found new replica set \"{new_name}\""),
                true,
            )
        })
    };
    if progressing
        .as_ref()
        .is_some_and(|c| c["status"] == "True" && c["reason"] != "NewReplicaSetAvailable")
        && wait.is_none()
    {
        wait = Some(Duration::from_secs(
            u64::try_from(deadline.max(1)).unwrap_or(600),
        ));
    }

    let mut conditions = vec![available_condition];
    conditions.extend(progressing);
    let status = json!({
        "observedGeneration": deploy.metadata.generation.unwrap_or(0),
        "replicas": replicas,
        "updatedReplicas": updated,
        "readyReplicas": ready,
        "availableReplicas": available,
        "unavailableReplicas": (desired - available).max(0),
        "conditions": conditions,
    });
    let comparable = |s: &Value| {
        let conditions: Vec<Value> = s["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                json!([
                    c["type"],
                    c["status"],
                    c["reason"],
                    c["message"],
                    c["lastUpdateTime"]
                ])
            })
            .collect();
        json!([
            s["observedGeneration"].as_i64().unwrap_or(0),
            s["replicas"].as_i64().unwrap_or(0),
            s["updatedReplicas"].as_i64().unwrap_or(0),
            s["readyReplicas"].as_i64().unwrap_or(0),
            s["availableReplicas"].as_i64().unwrap_or(0),
            s["unavailableReplicas"].as_i64().unwrap_or(0),
            conditions
        ])
    };
    if comparable(&status) != comparable(&previous) {
        let api: Api<Deployment> =
            Api::namespaced(ctx.client.clone(), &deploy.namespace().unwrap_or_default());
        api.patch_status(
            &deploy.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await?;
    }
    Ok(wait)
}
