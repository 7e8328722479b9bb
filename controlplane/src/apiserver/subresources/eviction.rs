//! `POST pods/{name}/eviction`: a delete that a PodDisruptionBudget may refuse, as
//! kube-apiserver's `EvictionREST` does it.
//!
//! A pod that is finished, pending or already terminating goes without looking at budgets.
//! Otherwise the one budget whose selector covers it must allow a disruption: the eviction
//! takes it in the same request, decrementing `status.disruptionsAllowed` and recording the pod
//! in `status.disruptedPods` with a compare-and-swap on the budget, then deletes the pod. Two
//! evictions racing for the last disruption meet in that compare-and-swap and the loser is
//! refused (429, which `kubectl drain` retries). The disruption controller later recomputes
//! the status from the pods themselves and drops the entry once the pod is terminating.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::super::ApiState;
use super::super::body;
use super::super::error::{ApiError, Subject};
use super::super::objects::{RETRIES, is_dry_run};
use super::super::request::{Query, Target};
use super::super::selectors::LabelSelector;
use crate::registry::meta::now;
use crate::store::{self, Write};

/// The most entries `status.disruptedPods` may hold before evictions are refused: the
/// disruption controller has fallen behind (kube-apiserver's `MaxDisruptedPodSize`).
const MAX_DISRUPTED_PODS: usize = 2000;

/// The start of every refusal by a budget, as kube-apiserver words it.
const REFUSED: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

/// `POST pods/{name}/eviction` (JSON or protobuf `policy/v1` Eviction).
pub async fn evict(
    state: &ApiState,
    t: &Target<'_>,
    query: &Query,
    bytes: &[u8],
) -> Result<Response, ApiError> {
    let name = t.name.clone().unwrap_or_default();
    let eviction = decode_eviction(bytes)?;
    if let Some(n) = eviction
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        && n != name
    {
        return Err(ApiError::BadRequest(
            "name in URL does not match name in Eviction object".into(),
        ));
    }
    let options = eviction
        .get("deleteOptions")
        .filter(|o| o.is_object())
        .cloned()
        .unwrap_or_else(|| json!({}));
    let dry_run = is_dry_run(query)
        || options
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|d| d.iter().any(|x| x == "All"));
    reserve_disruption(state, t, &name, dry_run).await?;
    let options = serde_json::to_vec(&options).unwrap_or_default();
    super::super::delete::delete(state, t, query, &options).await?;
    Ok(super::status_success(StatusCode::CREATED))
}

/// kubectl's typed clientset sends the Eviction as protobuf; everyone else as JSON.
fn decode_eviction(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        Ok(json!({}))
    } else if bytes.starts_with(b"k8s\0") {
        super::super::protobuf::decode(bytes)
            .map_err(|e| ApiError::BadRequest(format!("failed to decode protobuf body: {e}")))
    } else {
        body::decode_json(bytes)
    }
}

/// Takes a disruption from the budget covering the pod, unless the pod may go without one.
async fn reserve_disruption(
    state: &ApiState,
    t: &Target<'_>,
    name: &str,
    dry_run: bool,
) -> Result<(), ApiError> {
    let rt = t.rt;
    let namespace = t.namespace.as_deref();
    let pdbs = state
        .registry
        .lookup("policy", "v1", "poddisruptionbudgets")
        .expect("pdbs are served");
    for _ in 0..RETRIES {
        let pod = state
            .store
            .get(&rt.key(namespace, name))
            .await?
            .ok_or_else(|| ApiError::NotFound(Subject::of(rt, name)))?;
        if ignores_budgets(&pod.value) {
            return Ok(());
        }
        let (budgets, _) = state.store.list(&pdbs.key_prefix(namespace)).await?;
        let covering: Vec<_> = budgets
            .iter()
            .filter(|b| covers(&b.value, &pod.value))
            .collect();
        let budget = match covering.as_slice() {
            [] => return Ok(()),
            [one] => *one,
            _ => {
                return Err(ApiError::Internal(
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.".into(),
                ));
            }
        };
        if !is_ready(&pod.value) && unhealthy_may_go(&budget.value) {
            return Ok(());
        }
        let next = take_disruption(&budget.value, name, &now())?;
        if dry_run {
            return Ok(());
        }
        let pdb = str_at(&budget.value, "/metadata/name");
        let write = Write::Update {
            key: pdbs.key(namespace, pdb),
            value: next,
            expected: Some(budget.revision),
        };
        match state.store.write(write).await {
            Ok(_) => return Ok(()),
            Err(store::Error::Conflict { .. } | store::Error::NotFound { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::TooManyRequests(
        "couldn't update PodDisruptionBudget due to conflicts".into(),
    ))
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn int_at(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

/// Finished, pending or terminating pods are evicted without asking a budget
/// (kube-apiserver's `canIgnorePDB`).
fn ignores_budgets(pod: &Value) -> bool {
    matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed" | "Pending")
    ) || pod.pointer("/metadata/deletionTimestamp").is_some()
}

/// Whether `pdb` covers `pod`: an empty or missing selector covers nothing here (unlike the
/// disruption controller, which counts every pod for `{}`), as kube-apiserver has it.
fn covers(pdb: &Value, pod: &Value) -> bool {
    let selector = pdb
        .pointer("/spec/selector")
        .map(LabelSelector::from_object)
        .unwrap_or_default();
    !selector.is_empty() && selector.matches(pod.pointer("/metadata/labels"))
}

fn is_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// An unready pod does not count as healthy, so evicting it takes nothing from the budget when
/// the budget says so (`AlwaysAllow`) or, by default (`IfHealthyBudget`), while the budget is
/// met anyway.
fn unhealthy_may_go(pdb: &Value) -> bool {
    let desired = int_at(pdb, "/status/desiredHealthy");
    str_at(pdb, "/spec/unhealthyPodEvictionPolicy") == "AlwaysAllow"
        || (int_at(pdb, "/status/currentHealthy") >= desired && desired > 0)
}

/// The budget after one more disruption of `pod` at `at`, or why there is none to take
/// (kube-apiserver's `checkAndDecrement`).
fn take_disruption(pdb: &Value, pod: &str, at: &str) -> Result<Value, ApiError> {
    let name = str_at(pdb, "/metadata/name");
    if int_at(pdb, "/status/observedGeneration") < int_at(pdb, "/metadata/generation") {
        return Err(ApiError::TooManyRequests(format!(
            "{REFUSED} The disruption budget {name} is still being processed by the server."
        )));
    }
    let allowed = int_at(pdb, "/status/disruptionsAllowed");
    if allowed < 0 {
        return Err(ApiError::Forbidden(format!(
            "poddisruptionbudgets.policy \"{name}\" is forbidden: pdb disruptions allowed is negative"
        )));
    }
    let disrupted = pdb
        .pointer("/status/disruptedPods")
        .and_then(Value::as_object)
        .map_or(0, Map::len);
    if disrupted > MAX_DISRUPTED_PODS {
        return Err(ApiError::Forbidden(format!(
            "poddisruptionbudgets.policy \"{name}\" is forbidden: DisruptedPods map too big - too many evictions not confirmed by PDB controller"
        )));
    }
    if allowed == 0 {
        return Err(ApiError::TooManyRequests(format!(
            "{REFUSED} The disruption budget {name} needs {} healthy pods and has {} currently",
            int_at(pdb, "/status/desiredHealthy"),
            int_at(pdb, "/status/currentHealthy"),
        )));
    }
    let mut next = pdb.clone();
    let status = crate::registry::meta::child(
        next.as_object_mut().expect("objects are JSON objects"),
        "status",
    );
    status.insert("disruptionsAllowed".into(), json!(allowed - 1));
    crate::registry::meta::child(status, "disruptedPods").insert(pod.to_string(), json!(at));
    if allowed == 1 {
        set_allowed_condition(status, at);
    }
    Ok(next)
}

/// Sets the `DisruptionAllowed` condition from `disruptionsAllowed`, moving its
/// `lastTransitionTime` only when its status changes (apimachinery's `SetStatusCondition`).
fn set_allowed_condition(status: &mut Map<String, Value>, at: &str) {
    let allowed = status
        .get("disruptionsAllowed")
        .and_then(Value::as_i64)
        .unwrap_or(0)
        > 0;
    let observed = status
        .get("observedGeneration")
        .cloned()
        .unwrap_or(json!(0));
    let (state, reason) = if allowed {
        ("True", "SufficientPods")
    } else {
        ("False", "InsufficientPods")
    };
    let conditions = status
        .entry("conditions")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !conditions.is_array() {
        *conditions = Value::Array(Vec::new());
    }
    let list = conditions.as_array_mut().expect("just made an array");
    let fresh = json!({"type": "DisruptionAllowed", "status": state, "reason": reason,
        "message": "", "observedGeneration": observed, "lastTransitionTime": at});
    match list.iter_mut().find(|c| c["type"] == "DisruptionAllowed") {
        Some(c) => {
            let since = if c["status"] == state {
                c.get("lastTransitionTime").cloned().unwrap_or(json!(at))
            } else {
                json!(at)
            };
            *c = fresh;
            c["lastTransitionTime"] = since;
        }
        None => list.push(fresh),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(allowed: i64) -> Value {
        json!({"metadata": {"name": "web", "generation": 2},
            "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
            "status": {"observedGeneration": 2, "disruptionsAllowed": allowed,
                "currentHealthy": 2 + allowed, "desiredHealthy": 2, "expectedPods": 2 + allowed,
                "conditions": [{"type": "DisruptionAllowed", "status": "True",
                    "reason": "SufficientPods", "message": "", "observedGeneration": 2,
                    "lastTransitionTime": "2026-01-01T00:00:00Z"}]}})
    }

    #[test]
    fn taking_the_last_disruption_records_the_pod_and_flips_the_condition() {
        let next = take_disruption(&budget(1), "web-1", "2026-01-02T00:00:00Z").unwrap();
        assert_eq!(next["status"]["disruptionsAllowed"], 0);
        assert_eq!(
            next["status"]["disruptedPods"]["web-1"],
            "2026-01-02T00:00:00Z"
        );
        let condition = &next["status"]["conditions"][0];
        assert_eq!(
            (&condition["status"], &condition["reason"]),
            (&json!("False"), &json!("InsufficientPods"))
        );
        assert_eq!(condition["lastTransitionTime"], "2026-01-02T00:00:00Z");
        let more = take_disruption(&budget(3), "web-1", "2026-01-02T00:00:00Z").unwrap();
        assert_eq!(more["status"]["disruptionsAllowed"], 2);
        assert_eq!(more["status"]["conditions"][0]["status"], "True");
    }

    #[test]
    fn no_disruption_left_is_a_429_with_kubectls_text() {
        let e = take_disruption(&budget(0), "web-1", "2026-01-02T00:00:00Z").unwrap_err();
        assert_eq!(e.code(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            e.to_string(),
            "Cannot evict pod as it would violate the pod's disruption budget. \
             The disruption budget web needs 2 healthy pods and has 2 currently"
        );
        let mut stale = budget(1);
        stale["metadata"]["generation"] = json!(3);
        let e = take_disruption(&stale, "web-1", "2026-01-02T00:00:00Z").unwrap_err();
        assert!(
            e.to_string()
                .ends_with("is still being processed by the server.")
        );
    }

    #[test]
    fn budgets_cover_only_with_a_selector() {
        let pod = json!({"metadata": {"labels": {"app": "web"}}});
        assert!(covers(&budget(1), &pod));
        assert!(!covers(&json!({"spec": {"selector": {}}}), &pod));
        assert!(!covers(&json!({"spec": {}}), &pod));
    }

    #[test]
    fn unready_pods_go_freely_while_the_budget_is_met() {
        assert!(unhealthy_may_go(&budget(0)), "2 healthy, 2 desired");
        let mut short = budget(0);
        short["status"]["currentHealthy"] = json!(1);
        assert!(!unhealthy_may_go(&short));
        short["spec"]["unhealthyPodEvictionPolicy"] = json!("AlwaysAllow");
        assert!(unhealthy_may_go(&short));
        let terminating = json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"phase": "Running"}});
        assert!(ignores_budgets(&terminating));
        assert!(!ignores_budgets(&json!({"status": {"phase": "Running"}})));
    }
}
