//! A pod's status computed from its containers: phase, conditions, IPs, start time. Pure
//! functions, following the kubelet's `getPhase` and `generateAPIPodStatus`.
//!
//! Phase: Failed if an init container failed under `restartPolicy: Never`; Pending while
//! init containers or containers have not all started; Running while any container runs (or
//! will be restarted); Succeeded when all containers ended with 0 and none restarts; Failed
//! when all ended, some did not succeed, and none restarts. A terminal phase never goes
//! back. Sidecars (init containers with `restartPolicy: Always`) count as initialized once
//! started and never decide the phase. Conditions keep their `lastTransitionTime` until their status changes.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{ContainerStatus, HostIP, PodCondition, PodIP, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// What the worker knows about a pod, for its status.
#[derive(Debug, Clone)]
pub struct Observed {
    /// `spec.restartPolicy` (`Always` when unset).
    pub restart_policy: String,
    /// Init containers, in spec order.
    pub init: Vec<ContainerStatus>,
    /// The init containers that are sidecars (`restartPolicy: Always`).
    pub sidecars: Vec<String>,
    /// Containers, in spec order.
    pub containers: Vec<ContainerStatus>,
    /// Ephemeral containers, in the order they were added (never part of the phase).
    pub ephemeral: Vec<ContainerStatus>,
    /// Whether the sandbox (IP, directories, volumes) is ready.
    pub sandbox_ready: bool,
    /// The pod is being deleted and all its containers have stopped for good.
    pub terminal: bool,
    /// The pod IP.
    pub pod_ip: Option<Ipv4Addr>,
    /// The node IP.
    pub host_ip: Ipv4Addr,
    /// When the node accepted the pod.
    pub start_time: Option<jiff::Timestamp>,
}

fn terminated_code(s: &ContainerStatus) -> Option<i32> {
    s.state.as_ref()?.terminated.as_ref().map(|t| t.exit_code)
}

fn last_code(s: &ContainerStatus) -> Option<i32> {
    s.last_state
        .as_ref()?
        .terminated
        .as_ref()
        .map(|t| t.exit_code)
}

fn is_running(s: &ContainerStatus) -> bool {
    s.state.as_ref().is_some_and(|st| st.running.is_some())
}

/// Whether a container has ever started (runs now, or ended once).
fn has_started(s: &ContainerStatus) -> bool {
    is_running(s) || terminated_code(s).is_some() || last_code(s).is_some()
}

/// The pod phase (`Pending`, `Running`, `Succeeded`, `Failed`).
pub fn phase(o: &Observed) -> &'static str {
    let never = o.restart_policy == "Never";
    let (mut pending_init, mut failed_init) = (0, 0);
    for s in &o.init {
        if o.sidecars.contains(&s.name) {
            // A sidecar never fails the pod; it only has to have started.
            pending_init += usize::from(!has_started(s));
            continue;
        }
        match (terminated_code(s), last_code(s)) {
            (Some(0), _) => {}
            (Some(_), _) => failed_init += 1,
            (None, Some(code)) if !is_running(s) && code != 0 => failed_init += 1,
            _ => pending_init += 1,
        }
    }
    if failed_init > 0 && never {
        return "Failed";
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for s in &o.containers {
        if is_running(s) {
            running += 1;
        } else if let Some(code) = terminated_code(s) {
            stopped += 1;
            succeeded += usize::from(code == 0);
        } else if last_code(s).is_some() {
            stopped += 1;
        } else {
            waiting += 1;
        }
    }
    if pending_init > 0 || waiting > 0 || o.containers.is_empty() {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    let all_succeeded = stopped == succeeded;
    if o.terminal {
        return if all_succeeded { "Succeeded" } else { "Failed" };
    }
    match o.restart_policy.as_str() {
        "Never" | "OnFailure" if all_succeeded => "Succeeded",
        "Never" => "Failed",
        _ => "Running",
    }
}

fn condition(
    previous: Option<&PodStatus>,
    type_: &str,
    ok: bool,
    reason: Option<&str>,
    message: Option<String>,
    now: jiff::Timestamp,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let old = previous.and_then(|p| p.conditions.iter().flatten().find(|c| c.type_ == type_));
    let since = match old {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => Some(Time(now)),
    };
    PodCondition {
        type_: type_.into(),
        status: status.into(),
        reason: if ok { None } else { reason.map(String::from) },
        message: if ok { None } else { message },
        last_transition_time: since,
        last_probe_time: None,
        observed_generation: None,
    }
}

fn names(statuses: &[ContainerStatus], pred: impl Fn(&ContainerStatus) -> bool) -> Vec<&str> {
    statuses
        .iter()
        .filter(|s| pred(s))
        .map(|s| s.name.as_str())
        .collect()
}

/// The full status the worker writes, given what was written before.
pub fn pod_status(previous: Option<&PodStatus>, o: &Observed, now: jiff::Timestamp) -> PodStatus {
    let previous_phase = previous.and_then(|p| p.phase.as_deref());
    let phase = match previous_phase {
        Some(p @ ("Succeeded" | "Failed")) => p,
        _ => phase(o),
    };
    let done = phase == "Succeeded" || phase == "Failed";

    let uninitialized = names(&o.init, |s| {
        if o.sidecars.contains(&s.name) {
            !has_started(s)
        } else {
            terminated_code(s) != Some(0)
        }
    });
    let unready = names(&o.containers, |s| !s.ready);
    let list = |v: &[&str]| format!("[{}]", v.join(" "));
    let ready = unready.is_empty() && !done;
    let (ready_reason, ready_message) = if done {
        ("PodCompleted", None)
    } else {
        (
            "ContainersNotReady",
            Some(format!(
                "containers with unready status: {}",
                list(&unready)
            )),
        )
    };
    let scheduled = match previous.and_then(|p| {
        p.conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "PodScheduled")
    }) {
        Some(c) => c.clone(),
        None => condition(None, "PodScheduled", true, None, None, now),
    };
    let conditions = vec![
        condition(
            previous,
            "PodReadyToStartContainers",
            o.sandbox_ready && !o.terminal,
            None,
            None,
            now,
        ),
        condition(
            previous,
            "Initialized",
            uninitialized.is_empty(),
            Some("ContainersNotInitialized"),
            Some(format!(
                "containers with incomplete status: {}",
                list(&uninitialized)
            )),
            now,
        ),
        condition(
            previous,
            "Ready",
            ready,
            Some(ready_reason),
            ready_message.clone(),
            now,
        ),
        condition(
            previous,
            "ContainersReady",
            ready,
            Some(ready_reason),
            ready_message,
            now,
        ),
        scheduled,
    ];

    PodStatus {
        phase: Some(phase.to_string()),
        conditions: Some(conditions),
        host_ip: Some(o.host_ip.to_string()),
        host_ips: Some(vec![HostIP {
            ip: o.host_ip.to_string(),
        }]),
        pod_ip: o.pod_ip.map(|ip| ip.to_string()),
        pod_ips: o.pod_ip.map(|ip| vec![PodIP { ip: ip.to_string() }]),
        start_time: previous
            .and_then(|p| p.start_time.clone())
            .or(o.start_time.map(Time)),
        init_container_statuses: (!o.init.is_empty()).then(|| o.init.clone()),
        container_statuses: Some(o.containers.clone()),
        ephemeral_container_statuses: (!o.ephemeral.is_empty()).then(|| o.ephemeral.clone()),
        qos_class: previous.and_then(|p| p.qos_class.clone()),
        ..PodStatus::default()
    }
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
