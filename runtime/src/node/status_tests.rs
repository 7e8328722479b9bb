//! Tests of status.rs: phase and conditions from container states.

use super::*;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
};

fn waiting(name: &str, last: Option<i32>) -> ContainerStatus {
    ContainerStatus {
        name: name.into(),
        state: Some(ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some("ContainerCreating".into()),
                message: None,
            }),
            ..ContainerState::default()
        }),
        last_state: last.map(|code| ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: code,
                ..ContainerStateTerminated::default()
            }),
            ..ContainerState::default()
        }),
        ..ContainerStatus::default()
    }
}

fn running(name: &str) -> ContainerStatus {
    ContainerStatus {
        name: name.into(),
        ready: true,
        state: Some(ContainerState {
            running: Some(ContainerStateRunning::default()),
            ..ContainerState::default()
        }),
        ..ContainerStatus::default()
    }
}

fn exited(name: &str, code: i32) -> ContainerStatus {
    ContainerStatus {
        name: name.into(),
        ready: code == 0 && name.starts_with("init"),
        state: Some(ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: code,
                ..ContainerStateTerminated::default()
            }),
            ..ContainerState::default()
        }),
        ..ContainerStatus::default()
    }
}

fn observed(
    policy: &str,
    init: Vec<ContainerStatus>,
    containers: Vec<ContainerStatus>,
) -> Observed {
    Observed {
        ephemeral: Vec::new(),
        restart_policy: policy.into(),
        init,
        sidecars: Vec::new(),
        containers,
        sandbox_ready: true,
        host_ip: Ipv4Addr::new(127, 1, 0, 1),
        pod_ip: Some(Ipv4Addr::new(127, 64, 0, 2)),
        terminal: false,
        start_time: None,
    }
}

#[test]
fn pending_until_every_container_started() {
    assert_eq!(
        phase(&observed("Always", vec![], vec![waiting("a", None)])),
        "Pending"
    );
    assert_eq!(
        phase(&observed(
            "Always",
            vec![],
            vec![running("a"), waiting("b", None)]
        )),
        "Pending"
    );
    assert_eq!(
        phase(&observed(
            "Always",
            vec![running("init")],
            vec![waiting("a", None)]
        )),
        "Pending"
    );
    assert_eq!(
        phase(&observed(
            "Always",
            vec![exited("init", 0)],
            vec![running("a")]
        )),
        "Running"
    );
}

#[test]
fn crash_looping_containers_keep_the_pod_running() {
    assert_eq!(
        phase(&observed("Always", vec![], vec![waiting("a", Some(1))])),
        "Running"
    );
    assert_eq!(
        phase(&observed("Always", vec![], vec![exited("a", 0)])),
        "Running"
    );
    assert_eq!(
        phase(&observed("OnFailure", vec![], vec![waiting("a", Some(1))])),
        "Running"
    );
}

#[test]
fn completion_under_never_and_on_failure() {
    assert_eq!(
        phase(&observed(
            "Never",
            vec![],
            vec![exited("a", 0), exited("b", 0)]
        )),
        "Succeeded"
    );
    assert_eq!(
        phase(&observed(
            "Never",
            vec![],
            vec![exited("a", 0), exited("b", 2)]
        )),
        "Failed"
    );
    assert_eq!(
        phase(&observed("OnFailure", vec![], vec![exited("a", 0)])),
        "Succeeded"
    );
    assert_eq!(
        phase(&observed(
            "Never",
            vec![],
            vec![exited("a", 0), running("b")]
        )),
        "Running"
    );
}

#[test]
fn failed_init_container_fails_the_pod_only_under_never() {
    assert_eq!(
        phase(&observed(
            "Never",
            vec![exited("init", 1)],
            vec![waiting("a", None)]
        )),
        "Failed"
    );
    assert_eq!(
        phase(&observed(
            "Always",
            vec![waiting("init", Some(1))],
            vec![waiting("a", None)]
        )),
        "Pending"
    );
}

#[test]
fn deleted_pods_end_in_a_terminal_phase() {
    let mut o = observed("Always", vec![], vec![exited("a", 137)]);
    o.terminal = true;
    assert_eq!(phase(&o), "Failed");
    o.containers = vec![exited("a", 0)];
    assert_eq!(phase(&o), "Succeeded");
}

#[test]
fn conditions_follow_containers_and_keep_transition_times() {
    let t0 = jiff::Timestamp::from_second(1_000).unwrap();
    let t1 = jiff::Timestamp::from_second(2_000).unwrap();
    let first = pod_status(
        None,
        &observed("Always", vec![running("init")], vec![waiting("a", None)]),
        t0,
    );
    let cond = |s: &PodStatus, t: &str| {
        s.conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == t)
            .cloned()
            .unwrap()
    };
    assert_eq!(cond(&first, "Initialized").status, "False");
    assert_eq!(
        cond(&first, "Initialized").message.as_deref(),
        Some("containers with incomplete status: [init]")
    );
    assert_eq!(
        cond(&first, "Ready").reason.as_deref(),
        Some("ContainersNotReady")
    );
    assert_eq!(first.phase.as_deref(), Some("Pending"));

    let second = pod_status(
        Some(&first),
        &observed("Always", vec![exited("init", 0)], vec![running("a")]),
        t1,
    );
    assert_eq!(second.phase.as_deref(), Some("Running"));
    assert_eq!(cond(&second, "Ready").status, "True");
    assert_eq!(cond(&second, "Ready").last_transition_time, Some(Time(t1)));
    assert_eq!(
        cond(&second, "PodScheduled").last_transition_time,
        Some(Time(t0)),
        "unchanged conditions keep their time"
    );
    assert_eq!(second.pod_ip.as_deref(), Some("127.64.0.2"));
    assert_eq!(second.pod_ips.as_ref().unwrap()[0].ip, "127.64.0.2");
    assert_eq!(second.host_ip.as_deref(), Some("127.1.0.1"));

    let again = pod_status(
        Some(&second),
        &observed("Always", vec![exited("init", 0)], vec![running("a")]),
        t1 + jiff::SignedDuration::from_secs(5),
    );
    assert_eq!(again, second, "nothing changed, nothing to write");
}

#[test]
fn terminal_phase_never_goes_back_and_completed_pods_are_not_ready() {
    let t = jiff::Timestamp::from_second(1_000).unwrap();
    let done = pod_status(None, &observed("Never", vec![], vec![exited("a", 0)]), t);
    assert_eq!(done.phase.as_deref(), Some("Succeeded"));
    let ready = done
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.reason.as_deref(), Some("PodCompleted"));
    let later = pod_status(
        Some(&done),
        &observed("Never", vec![], vec![waiting("a", None)]),
        t,
    );
    assert_eq!(later.phase.as_deref(), Some("Succeeded"));
}

#[test]
fn sidecars_initialize_once_started_and_never_decide_the_phase() {
    let mut o = observed(
        "Never",
        vec![waiting("logger", None)],
        vec![waiting("main", None)],
    );
    o.sidecars = vec!["logger".into()];
    assert_eq!(phase(&o), "Pending");
    o.init = vec![running("logger")];
    o.containers = vec![running("main")];
    assert_eq!(phase(&o), "Running");
    let status = pod_status(None, &o, jiff::Timestamp::now());
    let initialized = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Initialized")
        .unwrap();
    assert_eq!(initialized.status, "True");
    // The container is done; the sidecar, stopped after it, exits 137: still Succeeded.
    o.init = vec![exited("logger", 137)];
    o.containers = vec![exited("main", 0)];
    assert_eq!(phase(&o), "Succeeded");
}
