//! A container's environment and argv, as the kubelet builds them.
//!
//! Order and precedence: `HOSTNAME` (the pod name), `POD_IP`, `NODE_NAME`, then `envFrom`
//! sources in order (with their `prefix`), then `env` entries; a later definition replaces
//! the value of an earlier one in place. `env` values and `command`/`args` expand `$(VAR)`
//! from what is defined before them (`$$` is a literal `$`, unknown references stay as
//! written), as Kubernetes does. The ConfigMaps and Secrets referenced are fetched by the
//! worker first ([`referenced`]) so that resolution itself is pure.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Service};

use super::config::{quantity_bytes, quantity_millis};

/// Why an environment cannot be built (`CreateContainerConfigError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A referenced ConfigMap does not exist.
    #[error("configmap {0:?} not found")]
    ConfigMapNotFound(String),
    /// A referenced key is not in the ConfigMap.
    #[error("couldn't find key {key} in ConfigMap {name}")]
    ConfigMapKeyNotFound {
        /// The ConfigMap.
        name: String,
        /// The key.
        key: String,
    },
    /// A referenced Secret does not exist.
    #[error("secret {0:?} not found")]
    SecretNotFound(String),
    /// A referenced key is not in the Secret.
    #[error("couldn't find key {key} in Secret {name}")]
    SecretKeyNotFound {
        /// The Secret.
        name: String,
        /// The key.
        key: String,
    },
    /// A `fieldRef` or `resourceFieldRef` this node does not support.
    #[error("unsupported field reference {0:?}")]
    UnsupportedField(String),
}

/// The env vars Kubernetes gives containers for a Service with a ClusterIP:
/// `{SVC}_SERVICE_HOST`, `{SVC}_SERVICE_PORT` (and `_PORT_{NAME}` per named port), and the
/// Docker-link style `{SVC}_PORT`, `{SVC}_PORT_{P}_{PROTO}` with `_PROTO`, `_PORT`, `_ADDR`.
pub fn service_link(svc: &Service) -> Vec<(String, String)> {
    let Some(spec) = &svc.spec else {
        return Vec::new();
    };
    let Some(ip) = spec
        .cluster_ip
        .as_deref()
        .filter(|ip| !ip.is_empty() && *ip != "None")
    else {
        return Vec::new();
    };
    let ports = spec.ports.as_deref().unwrap_or_default();
    let Some(first) = ports.first() else {
        return Vec::new();
    };
    let upper = |s: &str| s.to_ascii_uppercase().replace('-', "_");
    let name = upper(svc.metadata.name.as_deref().unwrap_or_default());
    let proto = |p: &k8s_openapi::api::core::v1::ServicePort| {
        p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase()
    };
    let mut out = vec![
        (format!("{name}_SERVICE_HOST"), ip.to_string()),
        (format!("{name}_SERVICE_PORT"), first.port.to_string()),
    ];
    for p in ports {
        if let Some(port_name) = p.name.as_deref().filter(|n| !n.is_empty()) {
            out.push((
                format!("{name}_SERVICE_PORT_{}", upper(port_name)),
                p.port.to_string(),
            ));
        }
    }
    out.push((
        format!("{name}_PORT"),
        format!("{}://{ip}:{}", proto(first), first.port),
    ));
    for p in ports {
        let base = format!("{name}_PORT_{}_{}", p.port, proto(p).to_ascii_uppercase());
        out.push((base.clone(), format!("{}://{ip}:{}", proto(p), p.port)));
        out.push((format!("{base}_PROTO"), proto(p)));
        out.push((format!("{base}_PORT"), p.port.to_string()));
        out.push((format!("{base}_ADDR"), ip.to_string()));
    }
    out
}

/// The ConfigMaps and Secrets of the pod's namespace that a container references (only the
/// ones that exist).
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// By name.
    pub config_maps: HashMap<String, ConfigMap>,
    /// By name.
    pub secrets: HashMap<String, Secret>,
    /// The Services whose `{SVC}_SERVICE_HOST` links the containers get: the pod's
    /// namespace's (with `enableServiceLinks`, the default) and `default/kubernetes`.
    pub services: Vec<Service>,
}

/// Facts about the pod known only on the node.
#[derive(Debug, Clone)]
pub struct PodFacts {
    /// The pod's IP.
    pub pod_ip: String,
    /// The node's IP.
    pub host_ip: String,
    /// The node's name.
    pub node_name: String,
    /// The node's allocatable CPU (the default of `limits.cpu`).
    pub node_cpu_millis: u64,
    /// The node's allocatable memory (the default of `limits.memory`).
    pub node_memory_bytes: u64,
}

/// Names of the ConfigMaps and Secrets a container's env refers to.
pub fn referenced(container: &Container) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut cms, mut secrets) = (BTreeSet::new(), BTreeSet::new());
    for from in container.env_from.iter().flatten() {
        cms.extend(from.config_map_ref.as_ref().map(|r| r.name.clone()));
        secrets.extend(from.secret_ref.as_ref().map(|r| r.name.clone()));
    }
    for var in container.env.iter().flatten() {
        let Some(from) = &var.value_from else {
            continue;
        };
        cms.extend(from.config_map_key_ref.as_ref().map(|r| r.name.clone()));
        secrets.extend(from.secret_key_ref.as_ref().map(|r| r.name.clone()));
    }
    (cms, secrets)
}

/// An ordered environment where redefinition replaces in place.
#[derive(Debug, Default)]
struct Env {
    vars: Vec<(String, String)>,
    index: HashMap<String, usize>,
}

impl Env {
    fn set(&mut self, name: String, value: String) {
        match self.index.get(&name) {
            Some(&i) => self.vars[i].1 = value,
            None => {
                self.index.insert(name.clone(), self.vars.len());
                self.vars.push((name, value));
            }
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.index.get(name).map(|&i| self.vars[i].1.as_str())
    }
}

/// The environment of a container.
pub fn resolve(
    pod: &Pod,
    container: &Container,
    facts: &PodFacts,
    sources: &Sources,
) -> Result<Vec<(String, String)>, Error> {
    let mut env = Env::default();
    env.set(
        "HOSTNAME".into(),
        pod.metadata.name.clone().unwrap_or_default(),
    );
    env.set("POD_IP".into(), facts.pod_ip.clone());
    env.set("NODE_NAME".into(), facts.node_name.clone());
    // Service links come first: the container's own env wins over them, as in Kubernetes.
    let links = pod
        .spec
        .as_ref()
        .and_then(|s| s.enable_service_links)
        .unwrap_or(true);
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    for svc in &sources.services {
        let master = svc.metadata.namespace.as_deref() == Some("default")
            && svc.metadata.name.as_deref() == Some("kubernetes");
        let local = svc.metadata.namespace.as_deref() == Some(namespace);
        if master || (links && local) {
            for (k, v) in service_link(svc) {
                env.set(k, v);
            }
        }
    }

    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            match sources.config_maps.get(&r.name) {
                Some(cm) => cm
                    .data
                    .iter()
                    .flatten()
                    .for_each(|(k, v)| env.set(format!("{prefix}{k}"), v.clone())),
                None if r.optional == Some(true) => {}
                None => return Err(Error::ConfigMapNotFound(r.name.clone())),
            }
        }
        if let Some(r) = &from.secret_ref {
            match sources.secrets.get(&r.name) {
                Some(s) => s
                    .data
                    .iter()
                    .flatten()
                    .for_each(|(k, v)| env.set(format!("{prefix}{k}"), lossy(&v.0))),
                None if r.optional == Some(true) => {}
                None => return Err(Error::SecretNotFound(r.name.clone())),
            }
        }
    }

    for var in container.env.iter().flatten() {
        let value = match &var.value_from {
            None => Some(expand(var.value.as_deref().unwrap_or_default(), |n| {
                env.get(n)
            })),
            Some(from) => {
                if let Some(r) = &from.config_map_key_ref {
                    let optional = r.optional == Some(true);
                    match sources.config_maps.get(&r.name) {
                        None if optional => None,
                        None => return Err(Error::ConfigMapNotFound(r.name.clone())),
                        Some(cm) => match cm.data.as_ref().and_then(|d| d.get(&r.key)) {
                            Some(v) => Some(v.clone()),
                            None if optional => None,
                            None => {
                                return Err(Error::ConfigMapKeyNotFound {
                                    name: r.name.clone(),
                                    key: r.key.clone(),
                                });
                            }
                        },
                    }
                } else if let Some(r) = &from.secret_key_ref {
                    let optional = r.optional == Some(true);
                    match sources.secrets.get(&r.name) {
                        None if optional => None,
                        None => return Err(Error::SecretNotFound(r.name.clone())),
                        Some(s) => match s.data.as_ref().and_then(|d| d.get(&r.key)) {
                            Some(v) => Some(lossy(&v.0)),
                            None if optional => None,
                            None => {
                                return Err(Error::SecretKeyNotFound {
                                    name: r.name.clone(),
                                    key: r.key.clone(),
                                });
                            }
                        },
                    }
                } else if let Some(r) = &from.field_ref {
                    Some(field(pod, facts, &r.field_path)?)
                } else if let Some(r) = &from.resource_field_ref {
                    Some(resource_field(container, facts, &r.resource)?)
                } else {
                    None
                }
            }
        };
        if let Some(value) = value {
            env.set(var.name.clone(), value);
        }
    }
    Ok(env.vars)
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The value of a downward-API `fieldRef` (env vars and downwardAPI volumes).
pub fn field(pod: &Pod, facts: &PodFacts, path: &str) -> Result<String, Error> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let map_entry = |map: &Option<BTreeMap<String, String>>, rest: &str| {
        let key = rest.strip_prefix("['").and_then(|r| r.strip_suffix("']"))?;
        Some(
            map.as_ref()
                .and_then(|m| m.get(key))
                .cloned()
                .unwrap_or_default(),
        )
    };
    let whole_map = |map: &Option<BTreeMap<String, String>>| {
        map.iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => whole_map(&meta.labels),
        "metadata.annotations" => whole_map(&meta.annotations),
        "spec.nodeName" => spec
            .and_then(|s| s.node_name.clone())
            .unwrap_or_else(|| facts.node_name.clone()),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" | "status.podIPs" => facts.pod_ip.clone(),
        "status.hostIP" | "status.hostIPs" => facts.host_ip.clone(),
        p => {
            let found = match p.split_once('[') {
                Some(("metadata.labels", rest)) => map_entry(&meta.labels, &format!("[{rest}")),
                Some(("metadata.annotations", rest)) => {
                    map_entry(&meta.annotations, &format!("[{rest}"))
                }
                _ => None,
            };
            found.ok_or_else(|| Error::UnsupportedField(path.to_string()))?
        }
    })
}

/// The value of a `resourceFieldRef` (divisor 1): bytes for memory, whole cores (rounded up)
/// for CPU; without a limit, the node's allocatable amount.
pub fn resource_field(
    container: &Container,
    facts: &PodFacts,
    resource: &str,
) -> Result<String, Error> {
    let resources = container.resources.as_ref();
    let get = |limits: bool, name: &str| {
        let map = resources.and_then(|r| {
            if limits {
                r.limits.as_ref()
            } else {
                r.requests.as_ref()
            }
        });
        map.and_then(|m| m.get(name)).map(|q| q.0.clone())
    };
    let cores = |millis: u64| millis.div_ceil(1000).to_string();
    Ok(match resource {
        "limits.memory" => get(true, "memory")
            .and_then(|q| quantity_bytes(&q))
            .unwrap_or(facts.node_memory_bytes)
            .to_string(),
        "requests.memory" => get(false, "memory")
            .and_then(|q| quantity_bytes(&q))
            .unwrap_or(0)
            .to_string(),
        "limits.cpu" => cores(
            get(true, "cpu")
                .and_then(|q| quantity_millis(&q))
                .unwrap_or(facts.node_cpu_millis),
        ),
        "requests.cpu" => cores(
            get(false, "cpu")
                .and_then(|q| quantity_millis(&q))
                .unwrap_or(0),
        ),
        other => return Err(Error::UnsupportedField(other.to_string())),
    })
}

/// Expands `$(NAME)` references the way Kubernetes does.
pub fn expand<'a>(input: &str, lookup: impl Fn(&str) -> Option<&'a str>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(after) = after.strip_prefix('$') {
            out.push('$');
            rest = after;
        } else if let Some(body) = after.strip_prefix('(')
            && let Some(end) = body.find(')')
        {
            let name = &body[..end];
            match lookup(name) {
                Some(value) => out.push_str(value),
                None => out.push_str(&rest[i..i + end + 3]),
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The argument vector: `command` + `args` (with `$(VAR)` expanded), or the image's own
/// entry point (`argv[0]` = its short name) + `args`. Empty means "the image default".
pub fn argv(
    container: &Container,
    image_short_name: &str,
    env: &[(String, String)],
) -> Vec<String> {
    let vars: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let x = |s: &String| expand(s, |n| vars.get(n).copied());
    let args = container.args.iter().flatten().map(x);
    match container.command.as_ref().filter(|c| !c.is_empty()) {
        Some(command) => command.iter().map(x).chain(args).collect(),
        None if container.args.as_ref().is_some_and(|a| !a.is_empty()) => {
            std::iter::once(image_short_name.to_string())
                .chain(args)
                .collect()
        }
        None => Vec::new(),
    }
}

#[cfg(test)]
#[path = "env_tests.rs"]
mod tests;
