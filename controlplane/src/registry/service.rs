//! Services: defaults, validation, and ClusterIP/NodePort allocation at create time (as
//! kube-apiserver's service REST storage allocates them; nothing routes to them until the
//! Services issue's node network does).

use std::collections::HashSet;
use std::net::Ipv4Addr;

use serde_json::{Value, json};

use super::meta::{default_field, each_mut, items};
use super::{Causes, CreateContext, Strategy};

/// The service CIDR: 10.96.0.0/12. 10.96.0.1 belongs to the `kubernetes` Service.
const SERVICE_BASE: u32 = u32::from_be_bytes([10, 96, 0, 0]);
const SERVICE_SIZE: u32 = 1 << 20;
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
            if let Some(ip) = allocate_ip(&used, name_ns == (Some("kubernetes"), Some("default"))) {
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
        if ty == "NodePort" || ty == "LoadBalancer" {
            let mut used: HashSet<i64> = ctx
                .existing
                .iter()
                .flat_map(|s| items(s, "/spec/ports").filter_map(|p| p["nodePort"].as_i64()))
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

    fn warnings(&self, obj: &Value) -> Vec<String> {
        let mut out = Vec::new();
        if obj.pointer("/spec/sessionAffinity").and_then(Value::as_str) == Some("ClientIP") {
            out.push("spec.sessionAffinity: ClientIP is not implemented yet; the field is stored but has no effect".into());
        }
        out
    }
}

/// The first addresses of the range, left to Services that ask for a fixed IP
/// (`min(max(16, size/16), 256)` in kube-apiserver).
const STATIC_BAND: u32 = 256;

fn allocate_ip(used: &HashSet<String>, is_kubernetes: bool) -> Option<String> {
    if is_kubernetes {
        return Some(Ipv4Addr::from(SERVICE_BASE + 1).to_string());
    }
    // As kube-apiserver, dynamic allocation avoids the low band kept for addresses chosen by
    // hand (the `kubernetes` Service at .1, cluster DNS at .10).
    (STATIC_BAND..SERVICE_SIZE - 1)
        .map(|i| Ipv4Addr::from(SERVICE_BASE + i).to_string())
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
}
