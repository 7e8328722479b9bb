//! The arithmetic of a PodDisruptionBudget, as kube-controller-manager's disruption controller
//! does it: which pods it selects, how many must stay healthy, how many are, and the status that
//! follows. Pure functions over typed objects; `disruption.rs` feeds them from its caches.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::controllers::{pods, selector};

/// How long an evicted pod may take to show its deletion before the budget counts it again
/// (kube-controller-manager's `DeletionTimeout`).
pub const DELETION_TIMEOUT: SignedDuration = SignedDuration::from_secs(120);

/// Whether the budget selects `pod`. In policy/v1 an empty selector selects every pod of the
/// namespace and a missing one selects none.
pub fn selects(pdb: &PodDisruptionBudget, pod: &Pod) -> bool {
    let Some(sel) = pdb.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
        return false;
    };
    pod.metadata.namespace == pdb.metadata.namespace
        && selector::matches(
            sel,
            pod.metadata.labels.as_ref().unwrap_or(&BTreeMap::new()),
        )
}

/// `value` of `total`: an integer as is, a percentage scaled (rounded up, as the controller
/// rounds both `minAvailable` and `maxUnavailable`).
pub fn scaled(value: &IntOrString, total: i32) -> Result<i32, String> {
    match value {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let percent: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| format!("invalid value for IntOrString: invalid value {s:?}"))?;
            let scaled = (percent * i64::from(total) + 99).div_euclid(100);
            Ok(i32::try_from(scaled).unwrap_or(i32::MAX))
        }
    }
}

/// `(expectedPods, desiredHealthy)`. An integer `minAvailable` expects the selected pods;
/// a percentage, or `maxUnavailable`, expects what the pods' controllers ask for (`scale`,
/// consulted only then).
pub fn expected_and_desired(
    pdb: &PodDisruptionBudget,
    selected: usize,
    scale: impl FnOnce() -> Result<i32, String>,
) -> Result<(i32, i32), String> {
    let spec = pdb.spec.as_ref();
    if let Some(max) = spec.and_then(|s| s.max_unavailable.as_ref()) {
        let expected = scale()?;
        let unavailable = scaled(max, expected)?;
        return Ok((expected, (expected - unavailable).max(0)));
    }
    match spec.and_then(|s| s.min_available.as_ref()) {
        Some(IntOrString::Int(min)) => Ok((i32::try_from(selected).unwrap_or(i32::MAX), *min)),
        Some(percent) => {
            let expected = scale()?;
            Ok((expected, scaled(percent, expected)?))
        }
        None => Ok((i32::try_from(selected).unwrap_or(i32::MAX), 0)),
    }
}

/// The recorded evictions still worth waiting for: pods not terminating yet whose eviction is
/// younger than [`DELETION_TIMEOUT`]; and when the oldest of them expires.
pub fn pending_evictions(
    pods: &[&Pod],
    recorded: Option<&BTreeMap<String, Time>>,
    now: Timestamp,
) -> (BTreeMap<String, Time>, Option<Timestamp>) {
    let mut kept = BTreeMap::new();
    let mut recheck: Option<Timestamp> = None;
    let Some(recorded) = recorded else {
        return (kept, recheck);
    };
    for pod in pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let Some(at) = recorded.get(&name) else {
            continue;
        };
        let expires = at.0 + DELETION_TIMEOUT;
        if expires > now {
            recheck = Some(recheck.map_or(expires, |r| r.min(expires)));
            kept.insert(name, at.clone());
        }
    }
    (kept, recheck)
}

/// Pods that count as healthy: Ready, not terminating, not just evicted.
pub fn healthy(pods: &[&Pod], evicted: &BTreeMap<String, Time>) -> i32 {
    let count = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| !evicted.contains_key(p.metadata.name.as_deref().unwrap_or_default()))
        .filter(|p| pods::is_ready(p))
        .count();
    i32::try_from(count).unwrap_or(i32::MAX)
}

/// What the controller found for one budget.
#[derive(Clone, Debug, PartialEq)]
pub struct Found {
    /// `expectedPods`.
    pub expected: i32,
    /// `desiredHealthy`.
    pub desired: i32,
    /// `currentHealthy`.
    pub healthy: i32,
    /// `disruptedPods`.
    pub evicted: BTreeMap<String, Time>,
}

/// The status for what was found: `disruptionsAllowed` is the healthy surplus, and 0 while no
/// pod is expected (a budget whose pods have not appeared yet must not allow anything).
pub fn status(
    pdb: &PodDisruptionBudget,
    found: Found,
    now: Timestamp,
) -> PodDisruptionBudgetStatus {
    let allowed = if found.expected <= 0 {
        0
    } else {
        (found.healthy - found.desired).max(0)
    };
    let generation = pdb.metadata.generation;
    let mut status = PodDisruptionBudgetStatus {
        conditions: pdb.status.as_ref().and_then(|s| s.conditions.clone()),
        current_healthy: Some(found.healthy),
        desired_healthy: Some(found.desired),
        disrupted_pods: (!found.evicted.is_empty()).then_some(found.evicted),
        disruptions_allowed: Some(allowed),
        expected_pods: Some(found.expected),
        observed_generation: generation,
    };
    let (state, reason) = if allowed > 0 {
        ("True", "SufficientPods")
    } else {
        ("False", "InsufficientPods")
    };
    set_condition(&mut status, state, reason, String::new(), generation, now);
    status
}

/// The status of a budget whose expected count could not be worked out: no disruption allowed,
/// `DisruptionAllowed=False` with reason `SyncFailed` (the controller's `failSafe`). The
/// observed generation stays, so evictions also hear that the budget is being processed.
pub fn failed(pdb: &PodDisruptionBudget, error: &str, now: Timestamp) -> PodDisruptionBudgetStatus {
    let mut status = pdb.status.clone().unwrap_or_default();
    status.disruptions_allowed = Some(0);
    let observed = status.observed_generation;
    set_condition(
        &mut status,
        "False",
        "SyncFailed",
        error.into(),
        observed,
        now,
    );
    status
}

/// apimachinery's `SetStatusCondition` for `DisruptionAllowed`: the transition time moves only
/// when the status does.
fn set_condition(
    status: &mut PodDisruptionBudgetStatus,
    state: &str,
    reason: &str,
    message: String,
    observed: Option<i64>,
    now: Timestamp,
) {
    let list = status.conditions.get_or_insert_with(Vec::new);
    let since = list
        .iter()
        .find(|c| c.type_ == "DisruptionAllowed" && c.status == state)
        .map_or(Time(now), |c| c.last_transition_time.clone());
    list.retain(|c| c.type_ != "DisruptionAllowed");
    list.push(Condition {
        type_: "DisruptionAllowed".into(),
        status: state.into(),
        reason: reason.into(),
        message,
        observed_generation: observed,
        last_transition_time: since,
    });
}

/// Whether two statuses say the same (the write is skipped when they do).
pub fn same(a: &PodDisruptionBudgetStatus, b: &PodDisruptionBudgetStatus) -> bool {
    let zero = |v: Option<i32>| v.unwrap_or(0);
    zero(a.current_healthy) == zero(b.current_healthy)
        && zero(a.desired_healthy) == zero(b.desired_healthy)
        && zero(a.expected_pods) == zero(b.expected_pods)
        && zero(a.disruptions_allowed) == zero(b.disruptions_allowed)
        && a.observed_generation.unwrap_or(0) == b.observed_generation.unwrap_or(0)
        && a.disrupted_pods.clone().unwrap_or_default()
            == b.disrupted_pods.clone().unwrap_or_default()
        && a.conditions.clone().unwrap_or_default() == b.conditions.clone().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pdb(spec: serde_json::Value) -> PodDisruptionBudget {
        serde_json::from_value(json!({"metadata": {"name": "b", "namespace": "default",
            "generation": 1}, "spec": spec}))
        .unwrap()
    }

    fn pod(name: &str, ready: bool, deleting: bool) -> Pod {
        let mut p = json!({"metadata": {"name": name, "namespace": "default",
            "labels": {"app": "web"}},
            "status": {"conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}});
        if deleting {
            p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        serde_json::from_value(p).unwrap()
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn percentages_round_up() {
        let half = IntOrString::String("50%".into());
        assert_eq!(scaled(&half, 3), Ok(2));
        assert_eq!(scaled(&half, 4), Ok(2));
        assert_eq!(scaled(&IntOrString::Int(1), 10), Ok(1));
        assert!(scaled(&IntOrString::String("half".into()), 3).is_err());
    }

    #[test]
    fn desired_healthy_from_min_available_or_max_unavailable() {
        let no_scale = || -> Result<i32, String> { panic!("integer minAvailable needs no scale") };
        assert_eq!(
            expected_and_desired(&pdb(json!({"minAvailable": 2})), 3, no_scale),
            Ok((3, 2))
        );
        assert_eq!(
            expected_and_desired(&pdb(json!({"minAvailable": "50%"})), 3, || Ok(5)),
            Ok((5, 3))
        );
        assert_eq!(
            expected_and_desired(&pdb(json!({"maxUnavailable": 1})), 3, || Ok(4)),
            Ok((4, 3))
        );
        assert_eq!(
            expected_and_desired(&pdb(json!({"maxUnavailable": "100%"})), 3, || Ok(4)),
            Ok((4, 0))
        );
        assert!(
            expected_and_desired(&pdb(json!({"maxUnavailable": 1})), 3, || Err("no".into()))
                .is_err()
        );
    }

    #[test]
    fn healthy_excludes_unready_terminating_and_just_evicted_pods() {
        let (a, b, c, d) = (
            pod("a", true, false),
            pod("b", true, false),
            pod("c", false, false),
            pod("d", true, true),
        );
        let pods = [&a, &b, &c, &d];
        let now = at("2026-01-01T00:01:00Z");
        let recorded = BTreeMap::from([
            ("b".to_string(), Time(at("2026-01-01T00:00:30Z"))),
            ("d".to_string(), Time(at("2026-01-01T00:00:30Z"))),
            ("a".to_string(), Time(at("2025-12-31T00:00:00Z"))),
        ]);
        let (evicted, recheck) = pending_evictions(&pods, Some(&recorded), now);
        assert_eq!(
            evicted.keys().collect::<Vec<_>>(),
            ["b"],
            "d shows its deletion, a's eviction expired"
        );
        assert_eq!(recheck, Some(at("2026-01-01T00:02:30Z")));
        assert_eq!(healthy(&pods, &evicted), 1);
    }

    #[test]
    fn status_allows_the_surplus_and_says_so() {
        let budget = pdb(json!({"minAvailable": 2}));
        let now = at("2026-01-01T00:00:00Z");
        let found = |healthy| Found {
            expected: 3,
            desired: 2,
            healthy,
            evicted: BTreeMap::new(),
        };
        let s = status(&budget, found(3), now);
        assert_eq!(
            (
                s.disruptions_allowed,
                s.current_healthy,
                s.observed_generation
            ),
            (Some(1), Some(3), Some(1))
        );
        let c = &s.conditions.as_ref().unwrap()[0];
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("True", "SufficientPods")
        );
        let mut later = budget.clone();
        later.status = Some(s.clone());
        let again = status(&later, found(3), at("2026-01-01T00:05:00Z"));
        assert!(
            same(&s, &again),
            "nothing changed, the transition time stays"
        );
        let short = status(&later, found(1), at("2026-01-01T00:05:00Z"));
        let c = &short.conditions.as_ref().unwrap()[0];
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "InsufficientPods")
        );
        assert_eq!(c.last_transition_time, Time(at("2026-01-01T00:05:00Z")));
        assert_eq!(short.disruptions_allowed, Some(0));
        let none_expected = Found {
            expected: 0,
            desired: 0,
            healthy: 0,
            evicted: BTreeMap::new(),
        };
        assert_eq!(
            status(&budget, none_expected, now).disruptions_allowed,
            Some(0)
        );
    }

    #[test]
    fn empty_selector_selects_all_and_missing_selects_none() {
        let p = pod("a", true, false);
        assert!(selects(&pdb(json!({"selector": {}})), &p));
        assert!(selects(
            &pdb(json!({"selector": {"matchLabels": {"app": "web"}}})),
            &p
        ));
        assert!(!selects(
            &pdb(json!({"selector": {"matchLabels": {"app": "db"}}})),
            &p
        ));
        assert!(!selects(&pdb(json!({})), &p));
    }
}
