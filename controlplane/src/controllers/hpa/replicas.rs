//! The replica calculator: how many pods a Resource (or ContainerResource) metric asks for,
//! as kube-controller-manager's `GetResourceReplicas` and `GetRawResourceReplicas` compute
//! it. Pure: pods and their metrics in, a count out.
//!
//! Values are in milli-units (`MilliValue()`: millicores, milli-bytes). Pods being deleted or
//! failed are ignored; pending pods, and (for CPU) pods not yet ready or still inside
//! `--horizontal-pod-autoscaler-cpu-initialization-period` without a metric taken since they
//! became ready, count as unready; pods without metrics count as missing. On a scale up
//! unready and missing pods count as using nothing, on a scale down missing pods as using
//! their request (or the target); a change inside the tolerance, or one whose direction the
//! fallbacks would flip, keeps the current count.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

/// One pod's metric: when it was taken, over which window, and per-container values.
#[derive(Debug, Clone)]
pub struct PodSample {
    /// The sample's time.
    pub at: jiff::Timestamp,
    /// The window it covers.
    pub window: Duration,
    /// Container name -> milli-value of the resource.
    pub containers: BTreeMap<String, i64>,
}

/// What the metric aims at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// `averageUtilization`: percent of the pods' requests.
    Utilization(i32),
    /// `averageValue`: milli-units per pod.
    AverageValue(i64),
}

/// The calculator's inputs besides pods and samples.
#[derive(Debug, Clone, Copy)]
pub struct Settings<'a> {
    /// `cpu` or `memory`.
    pub resource: &'a str,
    /// Only this container's usage and requests (ContainerResource metrics).
    pub container: Option<&'a str>,
    /// The target's replicas now.
    pub current: i32,
    /// Tolerance below and above the target (`--horizontal-pod-autoscaler-tolerance`, or the
    /// behavior's `tolerance`).
    pub tolerance_down: f64,
    /// Tolerance above.
    pub tolerance_up: f64,
    /// `--horizontal-pod-autoscaler-cpu-initialization-period`.
    pub cpu_initialization: Duration,
    /// `--horizontal-pod-autoscaler-initial-readiness-delay`.
    pub readiness_delay: Duration,
    /// Now.
    pub now: jiff::Timestamp,
}

/// The calculator's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    /// The replica count the metric asks for.
    pub replicas: i32,
    /// The pods' average utilization in percent of their requests (Utilization targets).
    pub utilization: Option<i32>,
    /// The pods' average usage, milli-units.
    pub average: i64,
    /// The newest sample's time.
    pub at: Option<jiff::Timestamp>,
}

impl Settings<'_> {
    fn within(&self, ratio: f64) -> bool {
        (1.0 - self.tolerance_down) <= ratio && ratio <= (1.0 + self.tolerance_up)
    }
}

fn pod_value(sample: &PodSample, container: Option<&str>) -> Option<i64> {
    match container {
        Some(c) => sample.containers.get(c).copied(),
        None => Some(sample.containers.values().sum()),
    }
}

fn time(
    t: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
) -> Option<jiff::Timestamp> {
    t.as_ref().map(|t| t.0)
}

/// Which pods count, and how: `(ready, unready, missing)`; deleted and finished pods are
/// in none of them.
fn group<'p>(
    pods: &[&'p Pod],
    samples: &BTreeMap<String, PodSample>,
    s: &Settings<'_>,
) -> (Vec<&'p str>, Vec<&'p str>, Vec<&'p str>) {
    let (mut ready, mut unready, mut missing) = (Vec::new(), Vec::new(), Vec::new());
    for pod in pods {
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let status = pod.status.as_ref();
        let phase = status
            .and_then(|st| st.phase.as_deref())
            .unwrap_or("Pending");
        if pod.metadata.deletion_timestamp.is_some() || phase == "Failed" || phase == "Succeeded" {
            continue;
        }
        if phase == "Pending" {
            unready.push(name);
            continue;
        }
        let Some(sample) = samples.get(name) else {
            missing.push(name);
            continue;
        };
        if s.resource == "cpu" {
            let condition = status
                .and_then(|st| st.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"));
            let started = status.and_then(|st| time(&st.start_time));
            let is_unready = match (condition, started) {
                (Some(c), Some(started)) => {
                    let transition = time(&c.last_transition_time).unwrap_or(started);
                    let window = jiff::SignedDuration::try_from(sample.window).unwrap_or_default();
                    let init =
                        jiff::SignedDuration::try_from(s.cpu_initialization).unwrap_or_default();
                    let delay =
                        jiff::SignedDuration::try_from(s.readiness_delay).unwrap_or_default();
                    if started + init > s.now {
                        // Still initializing: unready, or no full window since it got ready.
                        c.status == "False" || sample.at < transition + window
                    } else {
                        // Unready and never ready.
                        c.status == "False" && started + delay > transition
                    }
                }
                _ => true,
            };
            if is_unready {
                unready.push(name);
                continue;
            }
        }
        ready.push(name);
    }
    (ready, unready, missing)
}

/// The pods' requests of the resource, milli-units, by pod name.
fn requests(pods: &[&Pod], s: &Settings<'_>) -> Result<BTreeMap<String, i64>, String> {
    let mut out = BTreeMap::new();
    for pod in pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let mut total = 0i64;
        let containers = pod
            .spec
            .as_ref()
            .map(|sp| sp.containers.as_slice())
            .unwrap_or_default();
        for c in containers {
            if s.container.is_some_and(|only| only != c.name) {
                continue;
            }
            let request = c
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get(s.resource))
                .and_then(|q| crate::scheduler::quantity::parse(&q.0));
            match request {
                Some(v) => total += (v * 1000.0).round() as i64,
                None => {
                    return Err(format!(
                        "missing request for {} in container {} of Pod {name}",
                        s.resource, c.name
                    ));
                }
            }
        }
        out.insert(name, total);
    }
    Ok(out)
}

/// `(ratio, utilization %, average milli-value)` of `metrics` against `requests`.
fn utilization_ratio(
    metrics: &BTreeMap<&str, i64>,
    requests: &BTreeMap<String, i64>,
    target: i32,
) -> Result<(f64, i32, i64), String> {
    let (mut used, mut requested, mut n) = (0i64, 0i64, 0i64);
    for (pod, value) in metrics {
        if let Some(r) = requests.get(*pod) {
            used += value;
            requested += r;
            n += 1;
        }
    }
    if requested == 0 {
        return Err("no metrics returned matched known pods".into());
    }
    let utilization = (used * 100 / requested) as i32;
    Ok((
        f64::from(utilization) / f64::from(target.max(1)),
        utilization,
        used / n,
    ))
}

/// How many replicas the metric asks for.
pub fn propose(
    pods: &[&Pod],
    samples: &BTreeMap<String, PodSample>,
    target: Target,
    s: &Settings<'_>,
) -> Result<Proposal, String> {
    if pods.is_empty() {
        return Err("no pods returned by selector while calculating replica count".into());
    }
    let at = samples.values().map(|p| p.at).max();
    let (ready, unready, missing) = group(pods, samples, s);
    let metrics: BTreeMap<&str, i64> = ready
        .iter()
        .filter_map(|n| Some((*n, pod_value(samples.get(*n)?, s.container)?)))
        .collect();
    if metrics.is_empty() {
        return Err("did not receive metrics for targeted pods (pods might be unready)".into());
    }
    let requests = match target {
        Target::Utilization(_) => requests(pods, s)?,
        Target::AverageValue(_) => BTreeMap::new(),
    };
    let ratio_of = |m: &BTreeMap<&str, i64>| -> Result<(f64, Option<i32>, i64), String> {
        match target {
            Target::Utilization(t) => {
                utilization_ratio(m, &requests, t).map(|(r, u, a)| (r, Some(u), a))
            }
            Target::AverageValue(t) => {
                let average = m.values().sum::<i64>() / (m.len() as i64).max(1);
                Ok((average as f64 / t.max(1) as f64, None, average))
            }
        }
    };
    let (ratio, utilization, average) = ratio_of(&metrics)?;
    let keep = Proposal {
        replicas: s.current,
        utilization,
        average,
        at,
    };
    let scale_up_with_unready = !unready.is_empty() && ratio > 1.0;
    if !scale_up_with_unready && missing.is_empty() {
        if s.within(ratio) {
            return Ok(keep);
        }
        let count = match target {
            Target::Utilization(_) => ready.len(),
            Target::AverageValue(_) => metrics.len(),
        };
        return Ok(Proposal {
            replicas: (ratio * count as f64).ceil() as i32,
            ..keep
        });
    }
    // Fill in the pods we could not count, pessimistically for the direction of change.
    let mut filled = metrics.clone();
    for name in &missing {
        let value = if ratio < 1.0 {
            match target {
                Target::Utilization(t) => {
                    requests.get(*name).copied().unwrap_or(0) * i64::from(t.max(100)) / 100
                }
                Target::AverageValue(t) => t,
            }
        } else {
            0
        };
        filled.insert(name, value);
    }
    if scale_up_with_unready {
        for name in &unready {
            filled.insert(name, 0);
        }
    }
    let (new_ratio, _, _) = ratio_of(&filled)?;
    if s.within(new_ratio) || (ratio < 1.0 && new_ratio > 1.0) || (ratio > 1.0 && new_ratio < 1.0) {
        return Ok(keep);
    }
    let replicas = (new_ratio * filled.len() as f64).ceil() as i32;
    if (new_ratio < 1.0 && replicas > s.current) || (new_ratio > 1.0 && replicas < s.current) {
        return Ok(keep);
    }
    Ok(Proposal { replicas, ..keep })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, request: &str, ready_since: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": request}}}]},
            "status": {"phase": "Running", "startTime": "2024-01-01T00:00:00Z",
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": ready_since}]}
        }))
        .unwrap()
    }

    fn sample(millis: i64) -> PodSample {
        PodSample {
            at: "2024-01-01T01:00:00Z".parse().unwrap(),
            window: Duration::from_secs(15),
            containers: [("c".to_string(), millis)].into(),
        }
    }

    fn settings(current: i32) -> Settings<'static> {
        Settings {
            resource: "cpu",
            container: None,
            current,
            tolerance_down: 0.1,
            tolerance_up: 0.1,
            cpu_initialization: Duration::from_secs(300),
            readiness_delay: Duration::from_secs(30),
            now: "2024-01-01T01:00:01Z".parse().unwrap(),
        }
    }

    #[test]
    fn utilization_over_target_scales_out_proportionally() {
        let (a, b) = (
            pod("a", "200m", "2024-01-01T00:00:10Z"),
            pod("b", "200m", "2024-01-01T00:00:10Z"),
        );
        let samples = [("a".into(), sample(300)), ("b".into(), sample(300))].into();
        let p = propose(&[&a, &b], &samples, Target::Utilization(50), &settings(2)).unwrap();
        // 150% of requests against 50%: three times the pods.
        assert_eq!((p.replicas, p.utilization, p.average), (6, Some(150), 300));
        // Within 10% of the target: no change.
        let samples = [("a".into(), sample(105)), ("b".into(), sample(105))].into();
        let p = propose(&[&a, &b], &samples, Target::Utilization(50), &settings(2)).unwrap();
        assert_eq!(p.replicas, 2);
        // Idle: scale in.
        let samples = [("a".into(), sample(1)), ("b".into(), sample(0))].into();
        let p = propose(&[&a, &b], &samples, Target::Utilization(50), &settings(2)).unwrap();
        assert_eq!(p.replicas, 0, "the bounds (minReplicas) come later");
    }

    #[test]
    fn missing_and_unready_pods_are_counted_pessimistically() {
        let a = pod("a", "100m", "2024-01-01T00:00:10Z");
        let b = pod("b", "100m", "2024-01-01T00:00:10Z");
        // b became ready after a's sample was taken minus a window: unready for CPU.
        let fresh = pod("fresh", "100m", "2024-01-01T00:59:55Z");
        let samples = [("a".into(), sample(200)), ("fresh".into(), sample(200))].into();
        let s = Settings {
            now: "2024-01-01T00:01:00Z".parse().unwrap(),
            ..settings(3)
        };
        // a at 200% (target 100%); b missing (0 on a scale up); fresh unready (0): 200/300.
        let p = propose(&[&a, &b, &fresh], &samples, Target::Utilization(100), &s).unwrap();
        assert_eq!(
            p.replicas, 3,
            "66% on the filled-in pods flips the direction: keep"
        );
        let none = BTreeMap::new();
        assert!(propose(&[&a], &none, Target::Utilization(50), &settings(1)).is_err());
        let no_request: Pod = serde_json::from_value(json!({"metadata": {"name": "a"},
            "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Running", "startTime": "2024-01-01T00:00:00Z",
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2024-01-01T00:00:10Z"}]}})).unwrap();
        let samples = [("a".into(), sample(200))].into();
        let e = propose(
            &[&no_request],
            &samples,
            Target::Utilization(50),
            &settings(1),
        )
        .unwrap_err();
        assert_eq!(e, "missing request for cpu in container c of Pod a");
    }

    #[test]
    fn average_value_divides_by_the_pods_measured() {
        let (a, b) = (
            pod("a", "1", "2024-01-01T00:00:10Z"),
            pod("b", "1", "2024-01-01T00:00:10Z"),
        );
        let samples = [("a".into(), sample(400)), ("b".into(), sample(200))].into();
        let p = propose(&[&a, &b], &samples, Target::AverageValue(100), &settings(2)).unwrap();
        assert_eq!((p.replicas, p.utilization, p.average), (6, None, 300));
    }
}
