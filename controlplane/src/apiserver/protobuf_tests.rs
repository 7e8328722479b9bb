//! Tests of the parent module.
use super::*;
use k8s_pb::apimachinery::pkg::runtime::TypeMeta;
use serde_json::json;

/// Wraps `message` the way client-go does: magic, then an Unknown with empty encoding fields.
fn envelope(api_version: &str, kind: &str, message: &impl Message) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.to_owned()),
            kind: Some(kind.to_owned()),
        }),
        raw: Some(message.encode_to_vec()),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    [MAGIC, &unknown.encode_to_vec()].concat()
}

fn meta(name: &str) -> Option<meta::ObjectMeta> {
    Some(meta::ObjectMeta {
        name: Some(name.to_owned()),
        ..Default::default()
    })
}

fn s(value: &str) -> Option<String> {
    Some(value.to_owned())
}

fn int(value: i32) -> Option<IntOrString> {
    Some(IntOrString {
        r#type: Some(0),
        int_val: Some(value),
        str_val: Some(String::new()),
    })
}

fn string(value: &str) -> Option<IntOrString> {
    Some(IntOrString {
        r#type: Some(1),
        int_val: Some(0),
        str_val: s(value),
    })
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("fixture is hex"))
        .collect()
}

#[test]
fn decodes_namespace() {
    let ns = core::Namespace {
        metadata: meta("demo"),
        ..Default::default()
    };
    let json = decode(&envelope("v1", "Namespace", &ns)).expect("decodes");
    assert_eq!(
        json,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}})
    );
}

#[test]
fn drops_go_zero_values_of_non_pointer_fields() {
    // Go marshals every non-pointer field; these are what an empty ObjectMeta looks like.
    let metadata = meta::ObjectMeta {
        name: s("demo"),
        generate_name: s(""),
        uid: s(""),
        generation: Some(0),
        creation_timestamp: Some(Default::default()),
        ..Default::default()
    };
    let ns = core::Namespace {
        metadata: Some(metadata),
        spec: Some(Default::default()),
        status: Some(Default::default()),
    };
    let json = decode(&envelope("v1", "Namespace", &ns)).expect("decodes");
    assert_eq!(json["metadata"], json!({"name": "demo"}));
    assert_eq!(json["spec"], json!({}));
    assert!(json.get("status").is_none());
}

#[test]
fn decodes_deployment_with_container_ports() {
    let labels = BTreeMap::from([("app".to_owned(), "web".to_owned())]);
    let container = core::Container {
        name: s("web"),
        image: s("nginx:1.27"),
        ports: vec![core::ContainerPort {
            container_port: Some(80),
            host_port: Some(0),
            protocol: s("TCP"),
            ..Default::default()
        }],
        resources: Some(Default::default()),
        stdin: Some(false),
        ..Default::default()
    };
    let deployment = apps::Deployment {
        metadata: Some(meta::ObjectMeta {
            name: s("web"),
            labels: labels.clone(),
            ..Default::default()
        }),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(3),
            selector: Some(meta::LabelSelector {
                match_labels: labels.clone(),
                ..Default::default()
            }),
            template: Some(core::PodTemplateSpec {
                metadata: Some(meta::ObjectMeta {
                    labels,
                    ..Default::default()
                }),
                spec: Some(core::PodSpec {
                    containers: vec![container],
                    ..Default::default()
                }),
            }),
            strategy: Some(Default::default()),
            min_ready_seconds: Some(0),
            ..Default::default()
        }),
        status: Some(Default::default()),
    };
    let json = decode(&envelope("apps/v1", "Deployment", &deployment)).expect("decodes");
    assert_eq!(
        json,
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{
                        "name": "web",
                        "image": "nginx:1.27",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        "resources": {},
                    }]},
                },
                "strategy": {},
            },
        })
    );
}

#[test]
fn keeps_zero_in_pointer_fields() {
    let deployment = apps::Deployment {
        spec: Some(apps::DeploymentSpec {
            replicas: Some(0),
            ..Default::default()
        }),
        ..Default::default()
    };
    let json = decode(&envelope("apps/v1", "Deployment", &deployment)).expect("decodes");
    assert_eq!(json["spec"], json!({"replicas": 0}));

    let pdb = policy::PodDisruptionBudget {
        spec: Some(policy::PodDisruptionBudgetSpec {
            min_available: int(0),
            max_unavailable: None,
            ..Default::default()
        }),
        ..Default::default()
    };
    let json = decode(&envelope("policy/v1", "PodDisruptionBudget", &pdb)).expect("decodes");
    assert_eq!(json["spec"], json!({"minAvailable": 0}));
}

#[test]
fn decodes_service_target_port_as_int_or_string() {
    let service = core::Service {
        metadata: meta("web"),
        spec: Some(core::ServiceSpec {
            ports: vec![
                core::ServicePort {
                    name: s("80-8080"),
                    protocol: s("TCP"),
                    port: Some(80),
                    target_port: int(8080),
                    node_port: Some(0),
                    ..Default::default()
                },
                core::ServicePort {
                    port: Some(443),
                    target_port: string("https"),
                    node_port: Some(30443),
                    ..Default::default()
                },
            ],
            selector: BTreeMap::from([("app".to_owned(), "web".to_owned())]),
            cluster_ip: s(""),
            r#type: s("NodePort"),
            external_ips: vec!["10.0.0.9".to_owned()],
            ..Default::default()
        }),
        status: None,
    };
    let json = decode(&envelope("v1", "Service", &service)).expect("decodes");
    assert_eq!(
        json["spec"],
        json!({
            "ports": [
                {"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080},
                {"port": 443, "targetPort": "https", "nodePort": 30443},
            ],
            "selector": {"app": "web"},
            "type": "NodePort",
            "externalIPs": ["10.0.0.9"],
        })
    );
}

#[test]
fn decodes_secret_data_as_base64() {
    let secret = core::Secret {
        metadata: meta("creds"),
        data: BTreeMap::from([
            ("pass".to_owned(), b"s3cr3t".to_vec()),
            ("empty".to_owned(), Vec::new()),
        ]),
        string_data: BTreeMap::from([("user".to_owned(), "admin".to_owned())]),
        r#type: s("Opaque"),
        immutable: None,
    };
    let json = decode(&envelope("v1", "Secret", &secret)).expect("decodes");
    assert_eq!(
        json,
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds"},
            "data": {"pass": "czNjcjN0", "empty": ""},
            "stringData": {"user": "admin"},
            "type": "Opaque",
        })
    );
}

#[test]
fn decodes_hpa_v2_cpu_utilization() {
    let hpa = autoscaling_v2::HorizontalPodAutoscaler {
        metadata: meta("web"),
        spec: Some(autoscaling_v2::HorizontalPodAutoscalerSpec {
            scale_target_ref: Some(autoscaling_v2::CrossVersionObjectReference {
                kind: s("Deployment"),
                name: s("web"),
                api_version: s("apps/v1"),
            }),
            min_replicas: Some(2),
            max_replicas: Some(5),
            metrics: vec![autoscaling_v2::MetricSpec {
                r#type: s("Resource"),
                resource: Some(autoscaling_v2::ResourceMetricSource {
                    name: s("cpu"),
                    target: Some(autoscaling_v2::MetricTarget {
                        r#type: s("Utilization"),
                        average_utilization: Some(50),
                        ..Default::default()
                    }),
                }),
                ..Default::default()
            }],
            behavior: None,
        }),
        status: None,
    };
    let body = envelope("autoscaling/v2", "HorizontalPodAutoscaler", &hpa);
    let json = decode(&body).expect("decodes");
    assert_eq!(
        json["spec"],
        json!({
            "scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
            "minReplicas": 2,
            "maxReplicas": 5,
            "metrics": [{
                "type": "Resource",
                "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}},
            }],
        })
    );
}

#[test]
fn decodes_job_with_owner_reference() {
    let job = batch::Job {
        metadata: Some(meta::ObjectMeta {
            name: s("manual"),
            annotations: BTreeMap::from([(
                "cronjob.kubernetes.io/instantiate".to_owned(),
                "manual".to_owned(),
            )]),
            owner_references: vec![meta::OwnerReference {
                api_version: s("batch/v1"),
                kind: s("CronJob"),
                name: s("nightly"),
                uid: s("cj-uid-1"),
                controller: Some(true),
                block_owner_deletion: None,
            }],
            ..Default::default()
        }),
        spec: Some(batch::JobSpec {
            backoff_limit: Some(0),
            template: Some(core::PodTemplateSpec {
                metadata: Some(Default::default()),
                spec: Some(core::PodSpec {
                    restart_policy: s("Never"),
                    containers: vec![core::Container {
                        name: s("task"),
                        image: s("busybox"),
                        command: vec!["echo".to_owned(), String::new()],
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }),
        status: None,
    };
    let json = decode(&envelope("batch/v1", "Job", &job)).expect("decodes");
    assert_eq!(
        json["metadata"],
        json!({
            "name": "manual",
            "annotations": {"cronjob.kubernetes.io/instantiate": "manual"},
            "ownerReferences": [{
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "name": "nightly",
                "uid": "cj-uid-1",
                "controller": true,
            }],
        })
    );
    assert_eq!(
        json["spec"],
        json!({
            "backoffLimit": 0,
            "template": {
                "metadata": {},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "task", "image": "busybox", "command": ["echo", ""]}],
                },
            },
        })
    );
}

#[test]
fn inlines_embedded_structs() {
    let pod = core::Pod {
        spec: Some(core::PodSpec {
            volumes: vec![
                core::Volume {
                    name: s("scratch"),
                    volume_source: Some(core::VolumeSource {
                        empty_dir: Some(Default::default()),
                        ..Default::default()
                    }),
                },
                core::Volume {
                    name: s("cfg"),
                    volume_source: Some(core::VolumeSource {
                        config_map: Some(core::ConfigMapVolumeSource {
                            local_object_reference: Some(core::LocalObjectReference {
                                name: s("settings"),
                            }),
                            default_mode: Some(420),
                            optional: Some(false),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                },
            ],
            containers: vec![core::Container {
                liveness_probe: Some(core::Probe {
                    handler: Some(core::ProbeHandler {
                        http_get: Some(core::HttpGetAction {
                            path: s("/healthz"),
                            port: string("http"),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    period_seconds: Some(5),
                    initial_delay_seconds: Some(0),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            host_pid: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    };
    let json = decode(&envelope("v1", "Pod", &pod)).expect("decodes");
    assert_eq!(
        json["spec"],
        json!({
            "volumes": [
                {"name": "scratch", "emptyDir": {}},
                {"name": "cfg", "configMap": {"name": "settings", "defaultMode": 420, "optional": false}},
            ],
            "containers": [{
                "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5},
            }],
            "hostPID": true,
        })
    );
}

#[test]
fn decodes_configmap_binary_data() {
    let cm = core::ConfigMap {
        metadata: meta("bin"),
        binary_data: BTreeMap::from([("blob".to_owned(), vec![0, 1, 0xff])]),
        data: BTreeMap::from([("empty".to_owned(), String::new())]),
        immutable: None,
    };
    let json = decode(&envelope("v1", "ConfigMap", &cm)).expect("decodes");
    assert_eq!(json["binaryData"], json!({"blob": "AAH/"}));
    assert_eq!(json["data"], json!({"empty": ""}));
}

#[test]
fn rejects_body_without_magic() {
    let ns = core::Namespace {
        metadata: meta("demo"),
        ..Default::default()
    };
    let body = envelope("v1", "Namespace", &ns);
    let err = decode(&body[4..]).expect_err("no magic");
    assert!(err.contains("magic"), "{err}");
    assert!(decode(b"").is_err());
    assert!(decode(b"{\"kind\":\"Namespace\"}").is_err());
}

#[test]
fn rejects_truncated_body_without_panicking() {
    let job = batch::Job {
        metadata: meta("manual"),
        spec: Some(batch::JobSpec {
            backoff_limit: Some(3),
            ..Default::default()
        }),
        status: None,
    };
    let body = envelope("batch/v1", "Job", &job);
    let err = decode(&body[..body.len() / 2]).expect_err("truncated");
    assert!(err.contains("malformed"), "{err}");
    // Every prefix either decodes or errors; none panics.
    for end in 0..body.len() {
        let _ = decode(&body[..end]);
    }
    assert!(decode(b"k8s\0\x0a\xff\xff\xff\xff\x0f").is_err());
}

#[test]
fn rejects_unsupported_kind_and_missing_type() {
    let err = decode(&envelope(
        "apps/v1",
        "StatefulSet",
        &apps::StatefulSet::default(),
    ))
    .expect_err("unsupported");
    assert!(
        err.contains("apps/v1 StatefulSet are not supported"),
        "{err}"
    );

    let untyped = Unknown {
        raw: Some(Vec::new()),
        ..Default::default()
    };
    let err = decode(&[MAGIC, &untyped.encode_to_vec()].concat()).expect_err("untyped");
    assert!(err.contains("no apiVersion"), "{err}");
}

#[test]
fn rejects_compressed_payload() {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: s("v1"),
            kind: s("Namespace"),
        }),
        raw: Some(vec![1, 2, 3]),
        content_encoding: s("gzip"),
        content_type: None,
    };
    let err = decode(&[MAGIC, &unknown.encode_to_vec()].concat()).expect_err("gzip");
    assert!(err.contains("gzip"), "{err}");
}

/// Bodies kubectl v1.37.1 sent to a logging server; the expected JSON is what the same
/// command printed with `--dry-run=client -o json`, less `creationTimestamp: null` and `status`.
#[test]
fn decodes_bodies_captured_from_kubectl() {
    let cases = [
        (
            // kubectl create deployment web --image=nginx:1.27 --port=80 --replicas=3
            concat!(
                "6b3873000a150a07617070732f7631120a4465706c6f796d656e7412c4010a260a0377656212001a0764656661756c74",
                "22002a003200380042005a0a0a036170701203776562128b010803120c0a0a0a0361707012037765621a710a1c0a0012",
                "001a0022002a003200380042005a0a0a036170701203776562125112330a056e67696e78120a6e67696e783a312e3237",
                "2a00320a0a001000185022002a0042006a007200800100880100900100a201001a00320042004a005200580060006800",
                "8201008a01009a0100c2010022020a00280038001a0c0800100018002000280038001a002200",
            ),
            json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
                "spec": {
                    "replicas": 3,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{
                            "name": "nginx",
                            "image": "nginx:1.27",
                            "ports": [{"containerPort": 80}],
                            "resources": {},
                        }]},
                    },
                    "strategy": {},
                },
            }),
        ),
        (
            // kubectl create service clusterip web --tcp=80:8080 --tcp=443:https
            concat!(
                "6b3873000a0d0a0276311207536572766963651294010a260a0377656212001a0764656661756c7422002a0032003800",
                "42005a0a0a03617070120377656212660a1b0a0738302d38303830120354435018502207080010903f1a0028000a220a",
                "093434332d6874747073120354435018bb03220b080110001a0568747470732800120a0a0361707012037765621a0022",
                "09436c757374657249503a00420052005a00600068001a020a001a002200",
            ),
            json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
                "spec": {
                    "ports": [
                        {"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080},
                        {"name": "443-https", "protocol": "TCP", "port": 443, "targetPort": "https"},
                    ],
                    "selector": {"app": "web"},
                    "type": "ClusterIP",
                },
            }),
        ),
        (
            // kubectl create job manual --from=cronjob/nightly
            concat!(
                "6b3873000a0f0a0862617463682f763112034a6f6212d9030a8c010a066d616e75616c12001a0764656661756c742200",
                "2a003200380042005a0b0a047465616d12036f7073622b0a2163726f6e6a6f622e6b756265726e657465732e696f2f69",
                "6e7374616e746961746512066d616e75616c62090a046e6f74651201786a280a0743726f6e4a6f621a076e696768746c",
                "792208636a2d7569642d312a0862617463682f7631300112bd0232b8020a200a0012001a0022002a003200380042005a",
                "0e0a036a6f6212076e696768746c791293020a0f0a0773637261746368120412020a000a190a0363666712129a010f0a",
                "0a0a0873657474696e677318a40312bf010a047461736b120762757379626f781a0273681a022d631a04646174652a00",
                "3a060a01411201313a1c0a03504f4412001a130a110a00120d6d657461646174612e6e616d6542210a0d0a0363707512",
                "060a043530306d0a100a066d656d6f727912060a0436344d694a150a077363726174636810001a042f746d7022003200",
                "52280a1c121a0a082f6865616c74687a120a080110001a04687474701a002200100018002005280030006a0072007a04",
                "20002801800100880100900100a201001a094f6e4661696c757265320042004a0052005800600068008201008a01009a",
                "0100c2010038001a082000280030003a001a002200",
            ),
            json!({
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {
                    "name": "manual",
                    "namespace": "default",
                    "labels": {"team": "ops"},
                    "annotations": {"cronjob.kubernetes.io/instantiate": "manual", "note": "x"},
                    "ownerReferences": [{
                        "apiVersion": "batch/v1",
                        "kind": "CronJob",
                        "name": "nightly",
                        "uid": "cj-uid-1",
                        "controller": true,
                    }],
                },
                "spec": {
                    "backoffLimit": 0,
                    "template": {
                        "metadata": {"labels": {"job": "nightly"}},
                        "spec": {
                            "restartPolicy": "OnFailure",
                            "volumes": [
                                {"name": "scratch", "emptyDir": {}},
                                {"name": "cfg", "configMap": {"name": "settings", "defaultMode": 420}},
                            ],
                            "containers": [{
                                "name": "task",
                                "image": "busybox",
                                "command": ["sh", "-c", "date"],
                                "env": [
                                    {"name": "A", "value": "1"},
                                    {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                                ],
                                "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}},
                                "volumeMounts": [{"name": "scratch", "mountPath": "/tmp"}],
                                "livenessProbe": {
                                    "httpGet": {"path": "/healthz", "port": "http"},
                                    "periodSeconds": 5,
                                },
                                "securityContext": {"runAsUser": 0, "runAsNonRoot": true},
                            }],
                        },
                    },
                },
            }),
        ),
        (
            // kubectl autoscale deployment web --min=2 --max=5 --cpu=50%
            concat!(
                "6b3873000a290a0e6175746f7363616c696e672f76321217486f72697a6f6e74616c506f644175746f7363616c657212",
                "680a1a0a0377656212001a0764656661756c7422002a0032003800420012440a1a0a0a4465706c6f796d656e74120377",
                "65621a07617070732f76311002180522220a085265736f7572636522160a03637075120f0a0b5574696c697a6174696f",
                "6e20321a04180020001a002200",
            ),
            json!({
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                    "minReplicas": 2,
                    "maxReplicas": 5,
                    "metrics": [{
                        "type": "Resource",
                        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}},
                    }],
                },
            }),
        ),
        (
            // kubectl create poddisruptionbudget pdb --selector=app=web --min-available=0
            concat!(
                "6b3873000a200a09706f6c6963792f76311213506f6444697372757074696f6e42756467657412400a1a0a0370646212",
                "001a0764656661756c7422002a0032003800420012160a06080010001a00120c0a0a0a0361707012037765621a0a0800",
                "18002000280030001a002200",
            ),
            json!({
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": {"name": "pdb", "namespace": "default"},
                "spec": {"minAvailable": 0, "selector": {"matchLabels": {"app": "web"}}},
            }),
        ),
        (
            // kubectl create role r --verb=get,list --resource=pods,deployments.apps --resource-name=x
            concat!(
                "6b3873000a240a1c726261632e617574686f72697a6174696f6e2e6b38732e696f2f76311204526f6c6512550a180a01",
                "7212001a0764656661756c7422002a0032003800420012160a036765740a046c69737412001a04706f64732201781221",
                "0a036765740a046c6973741204617070731a0b6465706c6f796d656e74732201781a002200",
            ),
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": "r", "namespace": "default"},
                "rules": [
                    {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["x"]},
                    {"verbs": ["get", "list"], "apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": ["x"]},
                ],
            }),
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(decode(&hex(body)).expect("decodes"), expected);
    }
}

#[test]
fn camel_cases_field_names() {
    assert_eq!(camel("generate_name"), "generateName");
    assert_eq!(camel("r#type"), "type");
    assert_eq!(
        camel("required_during_scheduling_ignored_during_execution"),
        "requiredDuringSchedulingIgnoredDuringExecution"
    );
}
