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

#[test]
fn camel_cases_field_names() {
    assert_eq!(camel("generate_name"), "generateName");
    assert_eq!(camel("r#type"), "type");
    assert_eq!(
        camel("required_during_scheduling_ignored_during_execution"),
        "requiredDuringSchedulingIgnoredDuringExecution"
    );
}
