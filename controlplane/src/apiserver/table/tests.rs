//! Tests of the table rows: columns, durations, and the workload kinds.

use serde_json::json;

use super::*;

const KINDS: &[&str] = &[
    "Pod",
    "Namespace",
    "Node",
    "Service",
    "Endpoints",
    "EndpointSlice",
    "ConfigMap",
    "Secret",
    "ServiceAccount",
    "Deployment",
    "ReplicaSet",
    "ReplicationController",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
    "HorizontalPodAutoscaler",
    "PersistentVolumeClaim",
    "PersistentVolume",
    "StorageClass",
    "Event",
    "Lease",
    "PodDisruptionBudget",
    "ControllerRevision",
    "Widget",
];

pub(super) fn now() -> Timestamp {
    "2025-01-01T12:00:00Z".parse().unwrap()
}

/// An object named `web`, created five hours before [`now`], with `extra` merged in.
pub(super) fn object(extra: Value) -> Value {
    let mut obj = json!({"metadata": {"name": "web", "creationTimestamp": "2025-01-01T07:00:00Z"}});
    for (k, v) in extra.as_object().unwrap() {
        obj[k] = v.clone();
    }
    obj
}

/// The cell under `column` (by name) of `obj`'s row.
pub(super) fn cell(kind: &str, obj: &Value, column: &str) -> Value {
    let i = columns(kind).iter().position(|c| c.name == column).unwrap();
    cells(kind, obj, now())[i].clone()
}

pub(super) fn secs(s: i64) -> String {
    human_duration(SignedDuration::from_secs(s))
}

pub(super) fn pod_status(status: Value) -> Value {
    cell(
        "Pod",
        &object(json!({"spec": {"containers": [{"name": "app"}]}, "status": status})),
        "Status",
    )
}

#[test]
fn human_duration_matches_apimachinery_boundaries() {
    let cases = [
        (-2, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (45, "45s"),
        (119, "119s"),
        (120, "2m"),
        (330, "5m30s"),
        (599, "9m59s"),
        (600, "10m"),
        (179 * 60 + 59, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 30 * 60, "3h30m"),
        (8 * 3600 - 1, "7h59m"),
        (8 * 3600, "8h"),
        (48 * 3600 - 1, "47h"),
        (48 * 3600, "2d"),
        (51 * 3600, "2d3h"),
        (8 * 86400, "8d"),
        (730 * 86400 - 1, "729d"),
        (730 * 86400, "2y"),
        (731 * 86400, "2y1d"),
        (8 * 365 * 86400, "8y"),
        (20 * 365 * 86400, "20y"),
    ];
    for (s, want) in cases {
        assert_eq!(secs(s), want, "{s}s");
    }
    assert_eq!(human_duration(SignedDuration::from_millis(-1500)), "0s");
}

#[test]
fn every_kind_renders_one_cell_per_column_even_from_partial_objects() {
    for kind in KINDS {
        let cols = columns(kind);
        assert_eq!(
            cols.iter().filter(|c| c.format == "name").count(),
            1,
            "{kind}"
        );
        for obj in [
            json!({}),
            json!(null),
            json!("x"),
            json!({"spec": 5, "status": []}),
            object(json!({})),
        ] {
            assert_eq!(cells(kind, &obj, now()).len(), cols.len(), "{kind} {obj}");
        }
    }
    assert_eq!(
        cells("Widget", &object(json!({})), now()),
        [json!("web"), json!("5h")]
    );
    assert_eq!(cell("Widget", &json!({}), "Age"), "<unknown>");
    assert_eq!(columns("Pod")[0].name, "Name");
    assert_eq!(columns("Pod").iter().filter(|c| c.priority == 1).count(), 4);
}

#[test]
fn pod_status_follows_the_container_states() {
    let running = json!({"ready": true, "restartCount": 0, "state": {"running": {}}});
    assert_eq!(
        pod_status(json!({"phase": "Running", "containerStatuses": [running]})),
        "Running"
    );
    let waiting = |reason: &str| json!({"phase": "Pending", "containerStatuses": [{"state": {"waiting": {"reason": reason}}}]});
    for reason in [
        "CrashLoopBackOff",
        "ErrImagePull",
        "ImagePullBackOff",
        "ContainerCreating",
    ] {
        assert_eq!(pod_status(waiting(reason)), reason);
    }
    let terminated =
        |t: Value| json!({"phase": "Failed", "containerStatuses": [{"state": {"terminated": t}}]});
    assert_eq!(
        pod_status(terminated(json!({"reason": "OOMKilled", "exitCode": 137}))),
        "OOMKilled"
    );
    assert_eq!(
        pod_status(terminated(json!({"reason": "Completed", "exitCode": 0}))),
        "Completed"
    );
    assert_eq!(
        pod_status(terminated(json!({"exitCode": 0, "signal": 9}))),
        "Signal:9"
    );
    assert_eq!(pod_status(terminated(json!({"exitCode": 3}))), "ExitCode:3");
    assert_eq!(pod_status(json!({"phase": "Pending"})), "Pending");
    assert_eq!(
        pod_status(json!({"phase": "Failed", "reason": "Evicted"})),
        "Evicted"
    );
}

#[test]
fn pod_status_shows_completed_sidecar_peers_as_running_or_not_ready() {
    let statuses = json!([
        {"state": {"terminated": {"reason": "Completed"}}},
        {"ready": true, "state": {"running": {}}},
    ]);
    let status = |ready: &str| {
        pod_status(json!({"phase": "Running", "containerStatuses": statuses,
        "conditions": [{"type": "Ready", "status": ready}]}))
    };
    assert_eq!(status("True"), "Running");
    assert_eq!(status("False"), "NotReady");
}

#[test]
fn pod_status_reports_init_progress_and_failures() {
    let pod = |init_status: Value| {
        let spec = json!({"initContainers": [{"name": "init"}], "containers": [{"name": "app"}]});
        let status = json!({"phase": "Pending", "initContainerStatuses": [init_status],
            "containerStatuses": [{"name": "app", "state": {"waiting": {"reason": "PodInitializing"}}}]});
        cell(
            "Pod",
            &object(json!({"spec": spec, "status": status})),
            "Status",
        )
    };
    assert_eq!(
        pod(json!({"name": "init", "state": {"running": {}}})),
        "Init:0/1"
    );
    assert_eq!(
        pod(json!({"name": "init", "state": {"waiting": {"reason": "PodInitializing"}}})),
        "Init:0/1"
    );
    assert_eq!(
        pod(json!({"name": "init", "state": {"terminated": {"reason": "Error", "exitCode": 1}}})),
        "Init:Error"
    );
    assert_eq!(
        pod(json!({"name": "init", "state": {"waiting": {"reason": "CrashLoopBackOff"}}})),
        "Init:CrashLoopBackOff"
    );
    assert_eq!(
        pod(json!({"name": "init", "state": {"terminated": {"exitCode": 2}}})),
        "Init:ExitCode:2"
    );
    // A finished init container hands over to the app containers.
    assert_eq!(
        pod(
            json!({"name": "init", "state": {"terminated": {"reason": "Completed", "exitCode": 0}}})
        ),
        "PodInitializing"
    );
}

#[test]
fn pod_status_is_terminating_while_deleting_a_live_pod() {
    let mut pod = object(json!({"status": {"phase": "Running"}}));
    pod["metadata"]["deletionTimestamp"] = json!("2025-01-01T11:59:00Z");
    assert_eq!(cell("Pod", &pod, "Status"), "Terminating");
    pod["status"]["phase"] = json!("Succeeded");
    assert_eq!(cell("Pod", &pod, "Status"), "Succeeded");
    pod["status"] = json!({"phase": "Running", "reason": "NodeLost"});
    assert_eq!(cell("Pod", &pod, "Status"), "Unknown");
}

#[test]
fn pod_row_counts_ready_containers_and_recent_restarts() {
    let pod = object(json!({
        "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "node-1",
            "readinessGates": [{"conditionType": "example.com/lb"}]},
        "status": {"phase": "Running", "podIP": "10.0.0.5", "containerStatuses": [
            {"name": "a", "ready": true, "restartCount": 2, "state": {"running": {}},
                "lastState": {"terminated": {"finishedAt": "2025-01-01T11:55:00Z"}}},
            {"name": "b", "ready": false, "restartCount": 1, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"finishedAt": "2025-01-01T11:50:00Z"}}},
        ]},
    }));
    let row = cells("Pod", &pod, now());
    assert_eq!(
        row,
        [
            json!("web"),
            json!("1/2"),
            json!("CrashLoopBackOff"),
            json!("3 (5m ago)"),
            json!("5h"),
            json!("10.0.0.5"),
            json!("node-1"),
            json!("<none>"),
            json!("0/1"),
        ]
    );
    let fresh = object(
        json!({"spec": {"containers": [{"name": "a"}]}, "status": {"containerStatuses": [{"restartCount": 0}]}}),
    );
    assert_eq!(cell("Pod", &fresh, "Restarts"), "0");
    assert_eq!(cell("Pod", &fresh, "IP"), "<none>");
}

#[test]
fn pod_counts_started_sidecars_as_containers() {
    let pod = object(json!({
        "spec": {"initContainers": [{"name": "proxy", "restartPolicy": "Always"}], "containers": [{"name": "app"}]},
        "status": {"phase": "Running", "conditions": [{"type": "Initialized", "status": "True"}],
            "initContainerStatuses": [{"name": "proxy", "started": true, "ready": true, "state": {"running": {}}}],
            "containerStatuses": [{"name": "app", "ready": true, "state": {"running": {}}}]},
    }));
    assert_eq!(cell("Pod", &pod, "Ready"), "2/2");
    assert_eq!(cell("Pod", &pod, "Status"), "Running");
}

#[test]
fn deployment_row_shows_ready_of_desired_and_the_template() {
    let d = object(json!({
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "edge"]}]},
            "template": {"spec": {"containers": [{"name": "web", "image": "nginx:1"}, {"name": "log", "image": "busybox"}]}}},
        "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
    }));
    assert_eq!(
        cells("Deployment", &d, now()),
        [
            json!("web"),
            json!("2/3"),
            json!(3),
            json!(2),
            json!("5h"),
            json!("web,log"),
            json!("nginx:1,busybox"),
            json!("app=web,tier in (edge,front)"),
        ]
    );
    let bad = object(
        json!({"spec": {"selector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}}),
    );
    assert_eq!(cell("Deployment", &bad, "Selector"), "<invalid>");
    assert_eq!(cell("Deployment", &bad, "Ready"), "0/1");
    assert_eq!(cell("ReplicaSet", &object(json!({})), "Selector"), "<none>");
    let rc = object(json!({"spec": {"replicas": 2, "selector": {"b": "2", "a": "1"}}}));
    assert_eq!(cell("ReplicationController", &rc, "Selector"), "a=1,b=2");
    assert_eq!(cell("ReplicationController", &rc, "Desired"), 2);
}
