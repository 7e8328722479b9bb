//! Services: defaults, validation, and ClusterIP/NodePort allocation (as kube-apiserver's
//! service REST storage does it). Nodes route to what is allocated here: ClusterIPs in the
//! socket layer, NodePorts and LoadBalancer ports on the host (`runtime/src/node/hostports.rs`).
//!
//! There is no allocation bitmap: what is taken is read from the other Services under the API
//! server's allocation lock, so a deleted Service frees its addresses at once and a failed
//! create (or a crash before the write) never leaks one.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use serde_json::{Value, json};

use super::meta::{default_field, each_mut, items};
use super::{Causes, CreateContext, ServiceCidr, Strategy};

/// The NodePort range.
const NODE_PORTS: std::ops::RangeInclusive<i64> = 30000..=32767;

/// The Service strategy.
pub struct ServiceStrategy;

impl Strategy for ServiceStrategy {
    fn default(&self, obj: &mut Value) {
        let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
            return;
        };
        default_field(spec, "type", json!("ClusterIP"));
        default_field(spec, "sessionAffinity", json!("None"));
        let ty = spec["type"].as_str().unwrap_or_default().to_string();
        if ty != "ExternalName" {
            default_field(spec, "ipFamilies", json!(["IPv4"]));
            default_field(spec, "ipFamilyPolicy", json!("SingleStack"));
            default_field(spec, "internalTrafficPolicy", json!("Cluster"));
        }
        if ty == "NodePort" || ty == "LoadBalancer" {
            default_field(spec, "externalTrafficPolicy", json!("Cluster"));
        }
        if ty == "LoadBalancer" {
            default_field(spec, "allocateLoadBalancerNodePorts", json!(true));
        }
        each_mut(spec, "ports", |p| {
            default_field(p, "protocol", json!("TCP"));
            if let Some(port) = p.get("port").cloned() {
                default_field(p, "targetPort", port);
            }
        });
    }

    fn allocates(&self) -> bool {
        true
    }

    fn prepare_create(&self, obj: &mut Value, ctx: &CreateContext) {
        if let Some(o) = obj.as_object_mut() {
            o.insert("status".into(), json!({"loadBalancer": {}}));
        }
        let ty = obj
            .pointer("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP")
            .to_string();
        if ty == "ExternalName" {
            return;
        }
        let wants_ip = obj
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty);
        if wants_ip {
            let used: HashSet<String> = ctx
                .existing
                .iter()
                .filter_map(|s| s.pointer("/spec/clusterIP").and_then(Value::as_str))
                .map(str::to_string)
                .collect();
            let name_ns = (
                obj.pointer("/metadata/name").and_then(Value::as_str),
                obj.pointer("/metadata/namespace").and_then(Value::as_str),
            );
            let kubernetes = name_ns == (Some("kubernetes"), Some("default"));
            if let Some(ip) = allocate_ip(ctx.service_cidr, &used, kubernetes) {
                obj["spec"]["clusterIP"] = json!(ip);
                obj["spec"]["clusterIPs"] = json!([ip]);
            }
        } else if let Some(ip) = obj.pointer("/spec/clusterIP").cloned() {
            default_field(
                obj["spec"].as_object_mut().expect("spec"),
                "clusterIPs",
                json!([ip]),
            );
        }
        allocate_node_ports(obj, ctx);
    }

    fn prepare_update(&self, obj: &mut Value, old: &Value, ctx: &CreateContext) {
        // The ClusterIP stays; a Service turned NodePort or LoadBalancer gets its node ports
        // (kept from the old object where the port is the same), one turned back loses them.
        for field in ["clusterIP", "clusterIPs"] {
            if obj.pointer(&format!("/spec/{field}")).is_none()
                && let Some(v) = old.pointer(&format!("/spec/{field}"))
                && let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut)
            {
                spec.insert(field.into(), v.clone());
            }
        }
        let ty = obj.pointer("/spec/type").and_then(Value::as_str);
        if matches!(ty, Some("NodePort" | "LoadBalancer")) {
            let kept: Vec<(i64, i64)> = items(old, "/spec/ports")
                .filter_map(|p| Some((p["port"].as_i64()?, p["nodePort"].as_i64()?)))
                .collect();
            if let Some(Value::Array(ports)) = obj.pointer_mut("/spec/ports") {
                for p in ports.iter_mut() {
                    if p.get("nodePort").and_then(Value::as_i64).is_none()
                        && let Some((_, n)) = kept.iter().find(|(port, _)| p["port"] == *port)
                    {
                        p["nodePort"] = json!(n);
                    }
                }
            }
            allocate_node_ports(obj, ctx);
        } else if let Some(Value::Array(ports)) = obj.pointer_mut("/spec/ports") {
            for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                p.remove("nodePort");
            }
        }
    }

    fn validate_allocation(&self, obj: &Value, ctx: &CreateContext, causes: &mut Causes) {
        let ty = obj.pointer("/spec/type").and_then(Value::as_str);
        if ty == Some("ExternalName") {
            return;
        }
        match obj.pointer("/spec/clusterIP").and_then(Value::as_str) {
            None | Some("") => causes.invalid(
                "spec.clusterIPs",
                &json!([]),
                &format!(
                    "failed to allocate IP: range is full (the range of valid IPs is {})",
                    ctx.service_cidr
                ),
            ),
            Some("None") => {}
            Some(ip) => match ip.parse::<Ipv4Addr>() {
                Err(_) => causes.invalid(
                    "spec.clusterIPs[0]",
                    &json!(ip),
                    "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                ),
                Ok(addr) if !ctx.service_cidr.contains(addr) => causes.invalid(
                    "spec.clusterIPs",
                    &json!([ip]),
                    &format!(
                        "failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid \
                         range. The range of valid IPs is {}",
                        ctx.service_cidr
                    ),
                ),
                Ok(_) if holder(ctx, "/spec/clusterIP", ip).is_some() => causes.invalid(
                    "spec.clusterIPs",
                    &json!([ip]),
                    &format!("failed to allocate IP {ip}: provided IP is already allocated"),
                ),
                Ok(_) => {}
            },
        }
        let mut seen = HashSet::new();
        for (i, p) in items(obj, "/spec/ports").enumerate() {
            let Some(n) = p.get("nodePort").and_then(Value::as_i64) else {
                continue;
            };
            let taken = ctx.existing.iter().any(|s| {
                items(s, "/spec/ports")
                    .any(|q| q.get("nodePort").and_then(Value::as_i64) == Some(n))
            });
            if taken || !seen.insert(n) {
                causes.invalid(
                    format!("spec.ports[{i}].nodePort"),
                    &json!(n),
                    "provided port is already allocated",
                );
            }
        }
    }

    fn validate(&self, obj: &Value, old: Option<&Value>, causes: &mut Causes) {
        if let Some(name) = obj.pointer("/metadata/name").and_then(Value::as_str) {
            causes.dns_label("metadata.name", name);
        }
        let spec = obj.get("spec").unwrap_or(&Value::Null);
        let ty = spec.get("type").cloned().unwrap_or(json!("ClusterIP"));
        let types = ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];
        if !types.contains(&ty.as_str().unwrap_or_default()) {
            causes.not_supported("spec.type", &ty, &types);
        }
        let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
        let ports: Vec<&Value> = items(spec, "/ports").collect();
        if ports.is_empty() && ty != "ExternalName" && !headless {
            causes.required("spec.ports");
        }
        for (i, p) in ports.iter().enumerate() {
            match p.get("port").and_then(Value::as_i64) {
                None => causes.required(format!("spec.ports[{i}].port")),
                Some(n) if !(1..=65535).contains(&n) => causes.invalid(
                    format!("spec.ports[{i}].port"),
                    &json!(n),
                    "must be between 1 and 65535, inclusive",
                ),
                _ => {}
            }
            if ports.len() > 1
                && p.get("name")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
            {
                causes.required(format!("spec.ports[{i}].name"));
            }
            if let Some(n) = p.get("nodePort").and_then(Value::as_i64)
                && !NODE_PORTS.contains(&n)
            {
                causes.invalid(
                    format!("spec.ports[{i}].nodePort"),
                    &json!(n),
                    "provided port is not in the valid range. The range of valid ports is 30000-32767",
                );
            }
        }
        if let Some(old) = old {
            let (was, is) = (
                old.pointer("/spec/clusterIP"),
                obj.pointer("/spec/clusterIP"),
            );
            if was.is_some() && is.is_some() && was != is {
                causes.immutable("spec.clusterIPs[0]", is.unwrap_or(&Value::Null));
            }
        }
    }
}

/// The existing Service whose `pointer` field is `value`.
fn holder<'a>(ctx: &'a CreateContext, pointer: &str, value: &str) -> Option<&'a Value> {
    ctx.existing
        .iter()
        .map(|s| &**s)
        .find(|s| s.pointer(pointer).and_then(Value::as_str) == Some(value))
}

/// Gives every port of a NodePort or LoadBalancer Service without a `nodePort` the lowest
/// free one.
fn allocate_node_ports(obj: &mut Value, ctx: &CreateContext) {
    let ty = obj.pointer("/spec/type").and_then(Value::as_str);
    if !matches!(ty, Some("NodePort" | "LoadBalancer")) {
        return;
    }
    let mut used: HashSet<i64> = ctx
        .existing
        .iter()
        .flat_map(|s| items(s, "/spec/ports").filter_map(|p| p["nodePort"].as_i64()))
        .chain(items(obj, "/spec/ports").filter_map(|p| p["nodePort"].as_i64()))
        .collect();
    if let Some(Value::Array(ports)) = obj.pointer_mut("/spec/ports") {
        for p in ports.iter_mut() {
            if p.get("nodePort").and_then(Value::as_i64).is_none()
                && let Some(n) = NODE_PORTS.clone().find(|n| !used.contains(n))
            {
                used.insert(n);
                p["nodePort"] = json!(n);
            }
        }
    }
}

/// The first addresses of the range, left to Services that ask for a fixed IP
/// (`min(max(16, size/16), 256)` in kube-apiserver).
const STATIC_BAND: u32 = 256;

fn allocate_ip(range: ServiceCidr, used: &HashSet<String>, is_kubernetes: bool) -> Option<String> {
    if is_kubernetes {
        return Some(range.nth(1).to_string());
    }
    // As kube-apiserver, dynamic allocation avoids the low band kept for addresses chosen by
    // hand (the `kubernetes` Service at .1, cluster DNS at .10), and takes it only when the
    // rest is full.
    let size = range.size();
    let band = STATIC_BAND.min(size / 16).max(16.min(size / 2));
    (band..size - 1)
        .chain(2..band)
        .map(|i| range.nth(i).to_string())
        .find(|ip| !used.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn allocates_distinct_cluster_ips_and_node_ports() {
        let mut a = json!({"metadata": {"name": "a", "namespace": "default"},
            "spec": {"type": "NodePort", "ports": [{"port": 80}]}});
        ServiceStrategy.default(&mut a);
        ServiceStrategy.prepare_create(
            &mut a,
            &CreateContext {
                existing: &[],
                ..Default::default()
            },
        );
        assert_eq!(a["spec"]["ports"][0]["targetPort"], 80);
        assert_eq!(a["spec"]["ports"][0]["nodePort"], 30000);
        let existing = [Arc::new(a.clone())];
        let mut b = a.clone();
        b["spec"]["clusterIP"] = Value::Null;
        b["spec"]["ports"][0]["nodePort"] = Value::Null;
        ServiceStrategy.prepare_create(
            &mut b,
            &CreateContext {
                existing: &existing,
                ..Default::default()
            },
        );
        assert_ne!(a["spec"]["clusterIP"], b["spec"]["clusterIP"]);
        assert_eq!(b["spec"]["ports"][0]["nodePort"], 30001);
    }

    #[test]
    fn multiple_ports_need_names() {
        let svc =
            json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}, {"port": 443}]}});
        let mut causes = Causes::default();
        ServiceStrategy.validate(&svc, None, &mut causes);
        assert_eq!(causes.0[0].field, "spec.ports[0].name");
    }

    fn created(spec: Value, existing: &[Arc<Value>]) -> (Value, Causes) {
        let mut svc = json!({"metadata": {"name": "s", "namespace": "default", "uid": "new"},
            "spec": spec});
        ServiceStrategy.default(&mut svc);
        let ctx = CreateContext {
            existing,
            ..Default::default()
        };
        ServiceStrategy.prepare_create(&mut svc, &ctx);
        let mut causes = Causes::default();
        ServiceStrategy.validate_allocation(&svc, &ctx, &mut causes);
        (svc, causes)
    }

    #[test]
    fn a_taken_or_outside_cluster_ip_is_refused_and_a_free_one_kept() {
        let (a, causes) = created(json!({"ports": [{"port": 80}]}), &[]);
        assert!(causes.0.is_empty());
        let ip = a["spec"]["clusterIP"].as_str().unwrap().to_string();
        assert!(ip.starts_with("10.9"), "{ip}");
        let existing = [Arc::new(a)];
        let (_, causes) = created(json!({"clusterIP": ip, "ports": [{"port": 80}]}), &existing);
        assert_eq!(causes.0[0].field, "spec.clusterIPs");
        assert!(
            causes.0[0].message.contains("already allocated"),
            "{causes:?}"
        );
        let (_, causes) = created(
            json!({"clusterIP": "192.168.0.9", "ports": [{"port": 80}]}),
            &existing,
        );
        assert!(
            causes.0[0].message.contains("not in the valid range"),
            "{causes:?}"
        );
        let (b, causes) = created(
            json!({"clusterIP": "10.96.0.10", "ports": [{"port": 53}]}),
            &existing,
        );
        assert!(causes.0.is_empty(), "{causes:?}");
        assert_eq!(b["spec"]["clusterIPs"], json!(["10.96.0.10"]));
        let (_, causes) = created(
            json!({"clusterIP": "None", "ports": [{"port": 80}]}),
            &existing,
        );
        assert!(causes.0.is_empty(), "headless");
    }

    #[test]
    fn a_node_port_clash_is_refused() {
        let (a, _) = created(
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}),
            &[],
        );
        let existing = [Arc::new(a)];
        let (_, causes) = created(
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}),
            &existing,
        );
        assert_eq!(causes.0[0].field, "spec.ports[0].nodePort");
        let (b, causes) = created(
            json!({"type": "NodePort", "ports": [{"port": 80}]}),
            &existing,
        );
        assert!(causes.0.is_empty());
        assert_eq!(b["spec"]["ports"][0]["nodePort"], 30000);
    }

    #[test]
    fn turning_a_service_into_a_node_port_allocates_and_back_frees() {
        let (old, _) = created(json!({"ports": [{"port": 80}]}), &[]);
        let mut new = json!({"metadata": old["metadata"], "spec": {"type": "NodePort",
            "ports": [{"port": 80}]}});
        ServiceStrategy.default(&mut new);
        ServiceStrategy.prepare_update(&mut new, &old, &CreateContext::default());
        assert_eq!(new["spec"]["clusterIP"], old["spec"]["clusterIP"]);
        assert_eq!(new["spec"]["ports"][0]["nodePort"], 30000);
        let mut back = new.clone();
        back["spec"]["type"] = json!("ClusterIP");
        ServiceStrategy.prepare_update(&mut back, &new, &CreateContext::default());
        assert!(back["spec"]["ports"][0].get("nodePort").is_none());
    }
}
