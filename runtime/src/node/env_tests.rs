//! Tests of env.rs: precedence, `valueFrom`, `envFrom`, `$(VAR)` expansion, argv.

use super::*;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    ConfigMapEnvSource, ConfigMapKeySelector, EnvFromSource, EnvVar, EnvVarSource,
    ObjectFieldSelector, SecretKeySelector,
};

fn pod() -> Pod {
    let mut pod = Pod::default();
    pod.metadata.name = Some("web-1".into());
    pod.metadata.namespace = Some("shop".into());
    pod.metadata.labels = Some(BTreeMap::from([("app".into(), "web".into())]));
    pod
}

fn facts() -> PodFacts {
    PodFacts {
        pod_ip: "127.64.0.2".into(),
        host_ip: "127.1.0.1".into(),
        node_name: "n1".into(),
        node_cpu_millis: 2000,
        node_memory_bytes: 1 << 30,
    }
}

fn sources() -> Sources {
    let cm = ConfigMap {
        data: Some(BTreeMap::from([
            ("COLOR".into(), "blue".into()),
            ("SIZE".into(), "9".into()),
        ])),
        ..ConfigMap::default()
    };
    let secret = Secret {
        data: Some(BTreeMap::from([(
            "password".into(),
            ByteString(b"hunter2".to_vec()),
        )])),
        ..Secret::default()
    };
    Sources {
        config_maps: HashMap::from([("settings".into(), cm)]),
        secrets: HashMap::from([("creds".into(), secret)]),
        services: Vec::new(),
    }
}

fn var(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    }
}

fn from(name: &str, source: EnvVarSource) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(source),
    }
}

#[test]
fn builds_env_in_kubernetes_order_with_overrides_in_place() {
    let container = Container {
        env_from: Some(vec![EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name: "settings".into(),
                optional: None,
            }),
            prefix: Some("APP_".into()),
            ..EnvFromSource::default()
        }]),
        env: Some(vec![
            var("APP_COLOR", "red"),
            var(
                "GREETING",
                "hi $(HOSTNAME) at $(POD_IP), $$(literal) $(MISSING)",
            ),
            from(
                "PASSWORD",
                EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: "creds".into(),
                        key: "password".into(),
                        optional: None,
                    }),
                    ..EnvVarSource::default()
                },
            ),
            from(
                "SIZE",
                EnvVarSource {
                    config_map_key_ref: Some(ConfigMapKeySelector {
                        name: "settings".into(),
                        key: "SIZE".into(),
                        optional: None,
                    }),
                    ..EnvVarSource::default()
                },
            ),
            from(
                "NS",
                EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        field_path: "metadata.namespace".into(),
                        api_version: None,
                    }),
                    ..EnvVarSource::default()
                },
            ),
            from(
                "APP",
                EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        field_path: "metadata.labels['app']".into(),
                        api_version: None,
                    }),
                    ..EnvVarSource::default()
                },
            ),
        ]),
        ..Container::default()
    };
    let env = resolve(&pod(), &container, &facts(), &sources()).unwrap();
    let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "HOSTNAME",
            "POD_IP",
            "NODE_NAME",
            "APP_COLOR",
            "APP_SIZE",
            "GREETING",
            "PASSWORD",
            "SIZE",
            "NS",
            "APP"
        ]
    );
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("HOSTNAME"), Some("web-1"));
    assert_eq!(get("APP_COLOR"), Some("red"));
    assert_eq!(
        get("GREETING"),
        Some("hi web-1 at 127.64.0.2, $(literal) $(MISSING)")
    );
    assert_eq!(get("PASSWORD"), Some("hunter2"));
    assert_eq!(
        (get("SIZE"), get("NS"), get("APP")),
        (Some("9"), Some("shop"), Some("web"))
    );
}

#[test]
fn missing_references_fail_unless_optional() {
    let key = |name: &str, key: &str, optional| EnvVarSource {
        config_map_key_ref: Some(ConfigMapKeySelector {
            name: name.into(),
            key: key.into(),
            optional,
        }),
        ..EnvVarSource::default()
    };
    let with = |source| Container {
        env: Some(vec![from("X", source)]),
        ..Container::default()
    };
    let run = |c: &Container| resolve(&pod(), c, &facts(), &sources());
    assert_eq!(
        run(&with(key("nope", "k", None))),
        Err(Error::ConfigMapNotFound("nope".into()))
    );
    assert!(matches!(
        run(&with(key("settings", "k", None))),
        Err(Error::ConfigMapKeyNotFound { .. })
    ));
    let env = run(&with(key("nope", "k", Some(true)))).unwrap();
    assert!(env.iter().all(|(k, _)| k != "X"));
    let bad_field = EnvVarSource {
        field_ref: Some(ObjectFieldSelector {
            field_path: "spec.nope".into(),
            api_version: None,
        }),
        ..EnvVarSource::default()
    };
    assert!(matches!(
        run(&with(bad_field)),
        Err(Error::UnsupportedField(_))
    ));
}

#[test]
fn referenced_lists_config_maps_and_secrets() {
    let container = Container {
        env: Some(vec![from(
            "P",
            EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: "creds".into(),
                    key: "password".into(),
                    optional: None,
                }),
                ..EnvVarSource::default()
            },
        )]),
        env_from: Some(vec![EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name: "settings".into(),
                optional: None,
            }),
            ..EnvFromSource::default()
        }]),
        ..Container::default()
    };
    let (cms, secrets) = referenced(&container);
    assert_eq!(
        (
            cms.into_iter().collect::<Vec<_>>(),
            secrets.into_iter().collect::<Vec<_>>()
        ),
        (vec!["settings".to_string()], vec!["creds".to_string()])
    );
}

#[test]
fn argv_follows_command_args_and_image_entry_point() {
    let env = vec![("NAME".to_string(), "x".to_string())];
    let c = |command: Option<Vec<&str>>, args: Option<Vec<&str>>| Container {
        command: command.map(|v| v.into_iter().map(String::from).collect()),
        args: args.map(|v| v.into_iter().map(String::from).collect()),
        ..Container::default()
    };
    assert_eq!(
        argv(
            &c(Some(vec!["sh", "-c"]), Some(vec!["echo $(NAME)"])),
            "toolbox",
            &env
        ),
        ["sh", "-c", "echo x"]
    );
    assert_eq!(
        argv(&c(None, Some(vec!["3"])), "crash", &env),
        ["crash", "3"]
    );
    assert!(argv(&c(None, None), "web", &env).is_empty());
}

#[test]
fn resource_fields_default_to_node_allocatable() {
    let c = Container::default();
    assert_eq!(
        resource_field(&c, &facts(), "limits.memory").unwrap(),
        (1u64 << 30).to_string()
    );
    assert_eq!(resource_field(&c, &facts(), "limits.cpu").unwrap(), "2");
    assert_eq!(resource_field(&c, &facts(), "requests.cpu").unwrap(), "0");
}

#[test]
fn cluster_ips_become_service_link_env_vars() {
    let svc: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "redis-primary", "namespace": "default"},
        "spec": {"clusterIP": "10.96.0.11", "ports": [{"name": "redis", "port": 6379}]}
    }))
    .unwrap();
    let links: std::collections::BTreeMap<_, _> = service_link(&svc).into_iter().collect();
    assert_eq!(links["REDIS_PRIMARY_SERVICE_HOST"], "10.96.0.11");
    assert_eq!(links["REDIS_PRIMARY_SERVICE_PORT"], "6379");
    assert_eq!(links["REDIS_PRIMARY_SERVICE_PORT_REDIS"], "6379");
    assert_eq!(links["REDIS_PRIMARY_PORT"], "tcp://10.96.0.11:6379");
    assert_eq!(links["REDIS_PRIMARY_PORT_6379_TCP_ADDR"], "10.96.0.11");
    let headless: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "db"}, "spec": {"clusterIP": "None", "ports": [{"port": 5432}]}
    }))
    .unwrap();
    assert!(
        service_link(&headless).is_empty(),
        "headless services get no links"
    );
}
