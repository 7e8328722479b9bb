//! Tests of the rows of the cluster and networking kinds.

use serde_json::json;

use super::tests::{cell, now, object};
use super::*;

#[test]
fn service_ports_show_node_ports() {
    let svc = object(json!({
        "spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
            "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
            "selector": {"app": "web"}},
    }));
    assert_eq!(
        cells("Service", &svc, now()),
        [
            json!("web"),
            json!("NodePort"),
            json!("10.96.0.10"),
            json!("<none>"),
            json!("80:30080/TCP,53/UDP"),
            json!("5h"),
            json!("app=web"),
        ]
    );
}

#[test]
fn service_external_ip_depends_on_type() {
    let svc = |spec: Value, status: Value| {
        cell(
            "Service",
            &object(json!({"spec": spec, "status": status})),
            "External-IP",
        )
    };
    assert_eq!(svc(json!({"type": "LoadBalancer"}), json!({})), "<pending>");
    let ingress = json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}, {"hostname": "lb.example.com"}]}});
    assert_eq!(
        svc(
            json!({"type": "LoadBalancer", "externalIPs": ["198.51.100.1"]}),
            ingress
        ),
        "203.0.113.9,lb.example.com,198.51.100.1"
    );
    assert_eq!(
        svc(json!({"externalIPs": ["198.51.100.1"]}), json!({})),
        "198.51.100.1"
    );
    assert_eq!(
        svc(
            json!({"type": "ExternalName", "externalName": "db.example.com"}),
            json!({})
        ),
        "db.example.com"
    );
    assert_eq!(cell("Service", &object(json!({})), "Port(s)"), "<none>");
}

#[test]
fn node_status_adds_scheduling_disabled_and_roles() {
    let node = object(json!({
        "metadata": {"name": "n1", "creationTimestamp": "2025-01-01T07:00:00Z",
            "labels": {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/": "x", "kubernetes.io/role": "edge"}},
        "spec": {"unschedulable": true},
        "status": {"conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": "192.168.1.2"}],
            "nodeInfo": {"kubeletVersion": "v1.34.0", "osImage": "wasm"}},
    }));
    assert_eq!(
        cells("Node", &node, now()),
        [
            json!("n1"),
            json!("Ready,SchedulingDisabled"),
            json!("control-plane,edge"),
            json!("5h"),
            json!("v1.34.0"),
            json!("192.168.1.2"),
            json!("<none>"),
            json!("wasm"),
            json!("<unknown>"),
            json!("<unknown>"),
        ]
    );
    let not_ready =
        object(json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}));
    assert_eq!(cell("Node", &not_ready, "Status"), "NotReady");
    assert_eq!(cell("Node", &object(json!({})), "Status"), "Unknown");
    assert_eq!(cell("Node", &object(json!({})), "Roles"), "<none>");
}

#[test]
fn hpa_targets_pair_current_with_target() {
    let hpa = |metrics: Value, current: Value| {
        let obj = object(json!({
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 1, "maxReplicas": 5, "metrics": metrics},
            "status": {"currentReplicas": 2, "currentMetrics": current},
        }));
        cells("HorizontalPodAutoscaler", &obj, now())
    };
    let cpu = json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}});
    let mem = json!({"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}});
    let cpu_now = json!({"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 73, "averageValue": "73m"}}});
    let mem_now = json!({"type": "Resource", "resource": {"name": "memory", "current": {"averageValue": "10Mi"}}});
    let row = hpa(json!([cpu, mem]), json!([cpu_now, mem_now]));
    assert_eq!(
        row,
        [
            json!("web"),
            json!("Deployment/web"),
            json!("cpu: 73%/50%, memory: 10Mi/100Mi"),
            json!("1"),
            json!(5),
            json!(2),
            json!("5h"),
        ]
    );
    assert_eq!(hpa(json!([cpu]), json!(null))[2], "cpu: <unknown>/50%");
    let pods = json!({"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"averageValue": "10"}}});
    assert_eq!(
        hpa(json!([cpu, mem, pods]), json!([]))[2],
        json!("cpu: <unknown>/50%, memory: <unknown>/100Mi + 1 more...")
    );
    assert_eq!(hpa(json!([]), json!([]))[2], "<none>");
    let v1 = object(
        json!({"spec": {"targetCPUUtilizationPercentage": 80}, "status": {"currentCPUUtilizationPercentage": 12}}),
    );
    assert_eq!(
        cell("HorizontalPodAutoscaler", &v1, "Targets"),
        "cpu: 12%/80%"
    );
    assert_eq!(cell("HorizontalPodAutoscaler", &v1, "MinPods"), "<unset>");
}

#[test]
fn job_and_cronjob_rows() {
    let job = object(json!({
        "spec": {"completions": 3, "selector": {"matchLabels": {"job": "x"}}, "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}},
        "status": {"succeeded": 3, "startTime": "2025-01-01T11:00:00Z", "completionTime": "2025-01-01T11:02:30Z",
            "conditions": [{"type": "Complete", "status": "True"}]},
    }));
    assert_eq!(
        cells("Job", &job, now()),
        [
            json!("web"),
            json!("Complete"),
            json!("3/3"),
            json!("2m30s"),
            json!("5h"),
            json!("c"),
            json!("i"),
            json!("job=x"),
        ]
    );
    let running = object(
        json!({"spec": {"parallelism": 2}, "status": {"startTime": "2025-01-01T11:59:15Z"}}),
    );
    assert_eq!(
        cells("Job", &running, now())[1..4],
        [json!("Running"), json!("0/1 of 2"), json!("45s")]
    );
    let cron = object(
        json!({"spec": {"schedule": "*/5 * * * *", "suspend": false}, "status": {"active": [{}], "lastScheduleTime": "2025-01-01T11:55:00Z"}}),
    );
    assert_eq!(
        cells("CronJob", &cron, now())[1..7],
        [
            json!("*/5 * * * *"),
            json!("<none>"),
            json!("False"),
            json!(1),
            json!("5m"),
            json!("5h"),
        ]
    );
}

#[test]
fn storage_rows_abbreviate_access_modes() {
    let pv = object(json!({
        "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain", "claimRef": {"namespace": "default", "name": "data"},
            "storageClassName": "standard", "volumeMode": "Filesystem"},
        "status": {"phase": "Bound"},
    }));
    assert_eq!(
        cells("PersistentVolume", &pv, now()),
        [
            json!("web"),
            json!("10Gi"),
            json!("RWO,RWX"),
            json!("Retain"),
            json!("Bound"),
            json!("default/data"),
            json!("standard"),
            json!("<unset>"),
            json!(""),
            json!("5h"),
            json!("Filesystem"),
        ]
    );
    let pending =
        object(json!({"spec": {"storageClassName": "standard"}, "status": {"phase": "Pending"}}));
    assert_eq!(
        cells("PersistentVolumeClaim", &pending, now())[1..6],
        [
            json!("Pending"),
            json!(""),
            json!(""),
            json!(""),
            json!("standard"),
        ]
    );
    let sc = object(
        json!({"metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "wasmkube.io/hostpath"}),
    );
    assert_eq!(
        cells("StorageClass", &sc, now())[..5],
        [
            json!("standard (default)"),
            json!("wasmkube.io/hostpath"),
            json!("Delete"),
            json!("Immediate"),
            json!(false),
        ]
    );
}

#[test]
fn event_row_leads_with_last_seen_in_either_api_shape() {
    let core = object(json!({
        "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{web}"},
        "type": "Warning", "reason": "BackOff", "message": " Back-off restarting \n", "count": 4,
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": "2025-01-01T11:00:00Z", "lastTimestamp": "2025-01-01T11:59:00Z",
    }));
    assert_eq!(
        cells("Event", &core, now()),
        [
            json!("60s"),
            json!("Warning"),
            json!("BackOff"),
            json!("pod/web-1"),
            json!("spec.containers{web}"),
            json!("kubelet, node-1"),
            json!("Back-off restarting"),
            json!("60m"),
            json!(4),
            json!("web"),
        ]
    );
    let events_v1 = object(
        json!({"apiVersion": "events.k8s.io/v1", "regarding": {"kind": "Node", "name": "n1"},
        "note": "ok", "reportingController": "wasmkube", "eventTime": "2025-01-01T11:58:00.000000Z"}),
    );
    let row = cells("Event", &events_v1, now());
    assert_eq!(
        (&row[0], &row[3], &row[5], &row[6], &row[8]),
        (
            &json!("2m"),
            &json!("node/n1"),
            &json!("wasmkube"),
            &json!("ok"),
            &json!(1)
        )
    );
}

#[test]
fn small_kinds_render_their_summaries() {
    let cm = object(json!({"data": {"a": "1", "b": "2"}, "binaryData": {"c": ""}}));
    assert_eq!(
        cells("ConfigMap", &cm, now()),
        [json!("web"), json!(3), json!("5h")]
    );
    let secret = object(json!({"type": "Opaque", "data": {"k": "dg=="}}));
    assert_eq!(
        cells("Secret", &secret, now()),
        [json!("web"), json!("Opaque"), json!(1), json!("5h")]
    );
    assert_eq!(
        cells("ServiceAccount", &object(json!({"secrets": [{}]})), now()),
        [json!("web"), json!("5h")]
    );
    let ep = object(
        json!({"subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "fd00::2"}], "ports": [{"port": 80}, {"port": 443}]}]}),
    );
    assert_eq!(
        cell("Endpoints", &ep, "Endpoints"),
        "10.0.0.1:80,[fd00::2]:80,10.0.0.1:443 + 1 more..."
    );
    assert_eq!(cell("Endpoints", &object(json!({})), "Endpoints"), "<none>");
    let slice = object(
        json!({"addressType": "IPv4", "ports": [{"port": 80}, {"name": "dns"}, {}],
        "endpoints": [{"addresses": ["10.0.0.1"]}]}),
    );
    assert_eq!(
        cells("EndpointSlice", &slice, now())[1..4],
        [json!("IPv4"), json!("80,dns,*"), json!("10.0.0.1")]
    );
    assert_eq!(
        cell("EndpointSlice", &object(json!({})), "Endpoints"),
        "<unset>"
    );
    let pdb = object(json!({"spec": {"minAvailable": "50%"}, "status": {"disruptionsAllowed": 1}}));
    assert_eq!(
        cells("PodDisruptionBudget", &pdb, now())[1..4],
        [json!("50%"), json!("N/A"), json!(1)]
    );
    let rev = object(
        json!({"revision": 2, "metadata": {"name": "web-1", "ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "controller": true}]}}),
    );
    assert_eq!(
        cells("ControllerRevision", &rev, now())[..3],
        [json!("web-1"), json!("statefulset.apps/web"), json!(2)]
    );
    let ds = object(
        json!({"status": {"desiredNumberScheduled": 2}, "spec": {"template": {"spec": {"nodeSelector": {"os": "wasi"}}}}}),
    );
    assert_eq!(
        cells("DaemonSet", &ds, now())[1..8],
        [
            json!(2),
            json!(0),
            json!(0),
            json!(0),
            json!(0),
            json!("os=wasi"),
            json!("5h")
        ]
    );
    let sts = object(json!({"spec": {"replicas": 3}, "status": {"readyReplicas": 1}}));
    assert_eq!(cells("StatefulSet", &sts, now())[1], "1/3");
    assert_eq!(
        cells(
            "Lease",
            &object(json!({"spec": {"holderIdentity": "cm-1"}})),
            now()
        )[1],
        "cm-1"
    );
    assert_eq!(
        cells(
            "Namespace",
            &object(json!({"status": {"phase": "Active"}})),
            now()
        )[1],
        "Active"
    );
}
