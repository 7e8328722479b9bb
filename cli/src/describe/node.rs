//! `describe node` (kubectl's `describeNode`): conditions, addresses, capacity, system info,
//! the pods running there and what they request of the node.

use std::collections::BTreeMap;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, ListParams};

use super::{Writer, annotations, labels, multiline, since, time_or_unset};
use crate::client::Cluster;

/// Writes the node report (without events).
pub(super) async fn describe(cluster: &Cluster, out: &mut Writer, node: &Node) {
    let name = node.metadata.name.clone().unwrap_or_default();
    let lease = Api::<Lease>::namespaced(cluster.client.clone(), "kube-node-lease")
        .get_opt(&name)
        .await
        .ok()
        .flatten();
    let pods = node_pods(cluster, &name).await;
    write(
        out,
        node,
        lease.as_ref(),
        pods.as_deref(),
        jiff::Timestamp::now(),
    );
}

fn write(
    out: &mut Writer,
    node: &Node,
    lease: Option<&Lease>,
    pods: Option<&[Pod]>,
    now: jiff::Timestamp,
) {
    let meta = &node.metadata;
    let spec = node.spec.clone().unwrap_or_default();
    let status = node.status.clone().unwrap_or_default();
    w!(out, 0, "Name:\t{}", meta.name.as_deref().unwrap_or(""));
    let roles: Vec<&str> = meta
        .labels
        .iter()
        .flatten()
        .filter_map(|(k, _)| k.strip_prefix("node-role.kubernetes.io/"))
        .filter(|r| !r.is_empty())
        .collect();
    w!(
        out,
        0,
        "Roles:\t{}",
        if roles.is_empty() {
            "<none>".to_string()
        } else {
            roles.join(",")
        }
    );
    labels(out, "Labels", meta.labels.as_ref());
    annotations(out, "Annotations", meta.annotations.as_ref());
    w!(
        out,
        0,
        "CreationTimestamp:\t{}",
        time_or_unset(meta.creation_timestamp.as_ref().map(|t| t.0))
    );
    let taints: Vec<String> = spec
        .taints
        .iter()
        .flatten()
        .map(|t| match t.value.as_deref().filter(|v| !v.is_empty()) {
            Some(v) => format!("{}={v}:{}", t.key, t.effect),
            None => format!("{}:{}", t.key, t.effect),
        })
        .collect();
    multiline(out, "Taints", &taints);
    w!(
        out,
        0,
        "Unschedulable:\t{}",
        spec.unschedulable.unwrap_or(false)
    );
    if let Some(lease) = lease {
        let ls = lease.spec.clone().unwrap_or_default();
        w!(out, 0, "Lease:");
        w!(
            out,
            1,
            "HolderIdentity:\t{}",
            ls.holder_identity.as_deref().unwrap_or("<unset>")
        );
        w!(
            out,
            1,
            "AcquireTime:\t{}",
            time_or_unset(ls.acquire_time.map(|t| t.0))
        );
        w!(
            out,
            1,
            "RenewTime:\t{}",
            time_or_unset(ls.renew_time.map(|t| t.0))
        );
    }
    if let Some(conditions) = status.conditions.as_deref().filter(|c| !c.is_empty()) {
        w!(out, 0, "Conditions:");
        w!(
            out,
            1,
            "Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\tReason\tMessage"
        );
        w!(
            out,
            1,
            "----\t------\t-----------------\t------------------\t------\t-------"
        );
        for c in conditions {
            w!(
                out,
                1,
                "{} \t{} \t{} \t{} \t{} \t{}",
                c.type_,
                c.status,
                time_or_unset(c.last_heartbeat_time.as_ref().map(|t| t.0)),
                time_or_unset(c.last_transition_time.as_ref().map(|t| t.0)),
                c.reason.as_deref().unwrap_or(""),
                c.message.as_deref().unwrap_or("")
            );
        }
    }
    w!(out, 0, "Addresses:");
    for a in status.addresses.iter().flatten() {
        w!(out, 1, "{}:\t{}", a.type_, a.address);
    }
    for (title, list) in [
        ("Capacity", &status.capacity),
        ("Allocatable", &status.allocatable),
    ] {
        if let Some(list) = list.as_ref().filter(|l| !l.is_empty()) {
            w!(out, 0, "{title}:");
            for (resource, q) in list {
                w!(out, 1, "{resource}:\t{}", q.0);
            }
        }
    }
    let info = status.node_info.clone().unwrap_or_default();
    w!(out, 0, "System Info:");
    for (title, value) in [
        ("Machine ID", &info.machine_id),
        ("System UUID", &info.system_uuid),
        ("Boot ID", &info.boot_id),
        ("Kernel Version", &info.kernel_version),
        ("OS Image", &info.os_image),
        ("Operating System", &info.operating_system),
        ("Architecture", &info.architecture),
        ("Container Runtime Version", &info.container_runtime_version),
        ("Kubelet Version", &info.kubelet_version),
    ] {
        w!(out, 1, "{title}:\t{value}");
    }
    if let Some(cidr) = spec.pod_cidr.as_deref().filter(|c| !c.is_empty()) {
        w!(out, 0, "PodCIDR:\t{cidr}");
    }
    if let Some(cidrs) = spec.pod_cidrs.as_deref().filter(|c| !c.is_empty()) {
        w!(out, 0, "PodCIDRs:\t{}", cidrs.join(","));
    }
    if let Some(id) = spec.provider_id.as_deref().filter(|c| !c.is_empty()) {
        w!(out, 0, "ProviderID:\t{id}");
    }
    if let Some(pods) = pods {
        let allocatable = status
            .allocatable
            .as_ref()
            .filter(|a| !a.is_empty())
            .or(status.capacity.as_ref());
        resources(out, pods, allocatable, now);
    }
}

/// Pods bound to the node that have not terminated; `None` when they cannot be listed.
async fn node_pods(cluster: &Cluster, node: &str) -> Option<Vec<Pod>> {
    let api: Api<Pod> = Api::all(cluster.client.clone());
    let list = api
        .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
        .await
        .ok()?;
    Some(
        list.items
            .into_iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
            .filter(|p| {
                let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
                phase != Some("Succeeded") && phase != Some("Failed")
            })
            .collect(),
    )
}

/// Summed container requests and limits of a pod, in milli-CPU and bytes.
#[derive(Default, Clone, Copy, Debug, PartialEq)]
struct Usage {
    cpu_req: i128,
    cpu_lim: i128,
    mem_req: i128,
    mem_lim: i128,
}

fn pod_usage(pod: &Pod) -> Usage {
    let mut u = Usage::default();
    for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
        let Some(res) = &c.resources else { continue };
        let get = |list: &Option<BTreeMap<String, Quantity>>, key: &str| {
            list.as_ref()
                .and_then(|l| l.get(key))
                .and_then(|q| parse_quantity(&q.0))
                .unwrap_or(0)
        };
        u.cpu_req += ceil_div(get(&res.requests, "cpu"), 1_000_000);
        u.cpu_lim += ceil_div(get(&res.limits, "cpu"), 1_000_000);
        u.mem_req += ceil_div(get(&res.requests, "memory"), 1_000_000_000);
        u.mem_lim += ceil_div(get(&res.limits, "memory"), 1_000_000_000);
    }
    u
}

/// kubectl's `describeNodeResource`.
fn resources(
    out: &mut Writer,
    pods: &[Pod],
    allocatable: Option<&BTreeMap<String, Quantity>>,
    now: jiff::Timestamp,
) {
    let alloc = |key: &str, unit: i128| {
        allocatable
            .and_then(|a| a.get(key))
            .and_then(|q| parse_quantity(&q.0))
            .map_or(0, |n| ceil_div(n, unit))
    };
    let (alloc_cpu, alloc_mem) = (alloc("cpu", 1_000_000), alloc("memory", 1_000_000_000));
    let pct = |used: i128, total: i128| if total > 0 { used * 100 / total } else { 0 };
    w!(out, 0, "Non-terminated Pods:\t({} in total)", pods.len());
    w!(
        out,
        1,
        "Namespace\tName\t\tCPU Requests\tCPU Limits\tMemory Requests\tMemory Limits\tAge"
    );
    w!(
        out,
        1,
        "---------\t----\t\t------------\t----------\t---------------\t-------------\t---"
    );
    let mut total = Usage::default();
    for pod in pods {
        let u = pod_usage(pod);
        total.cpu_req += u.cpu_req;
        total.cpu_lim += u.cpu_lim;
        total.mem_req += u.mem_req;
        total.mem_lim += u.mem_lim;
        w!(
            out,
            1,
            "{}\t{}\t\t{} ({}%)\t{} ({}%)\t{} ({}%)\t{} ({}%)\t{}",
            pod.metadata.namespace.as_deref().unwrap_or(""),
            pod.metadata.name.as_deref().unwrap_or(""),
            format_cpu(u.cpu_req),
            pct(u.cpu_req, alloc_cpu),
            format_cpu(u.cpu_lim),
            pct(u.cpu_lim, alloc_cpu),
            format_bytes(u.mem_req),
            pct(u.mem_req, alloc_mem),
            format_bytes(u.mem_lim),
            pct(u.mem_lim, alloc_mem),
            since(pod.metadata.creation_timestamp.as_ref().map(|t| t.0), now)
        );
    }
    w!(out, 0, "Allocated resources:");
    w!(
        out,
        0,
        "  (Total limits may be over 100 percent, i.e., overcommitted.)"
    );
    w!(out, 1, "Resource\tRequests\tLimits");
    w!(out, 1, "--------\t--------\t------");
    w!(
        out,
        1,
        "cpu\t{} ({}%)\t{} ({}%)",
        format_cpu(total.cpu_req),
        pct(total.cpu_req, alloc_cpu),
        format_cpu(total.cpu_lim),
        pct(total.cpu_lim, alloc_cpu)
    );
    w!(
        out,
        1,
        "memory\t{} ({}%)\t{} ({}%)",
        format_bytes(total.mem_req),
        pct(total.mem_req, alloc_mem),
        format_bytes(total.mem_lim),
        pct(total.mem_lim, alloc_mem)
    );
}

fn ceil_div(n: i128, d: i128) -> i128 {
    if n <= 0 { 0 } else { (n + d - 1) / d }
}

/// A Kubernetes quantity (`100m`, `1.5Gi`, `2e3`, `128974848`) in nano-units.
fn parse_quantity(s: &str) -> Option<i128> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let (mantissa_nano, exp10): (i128, i32) = {
        let negative = number.starts_with('-');
        let digits = number.trim_start_matches(['+', '-']);
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        let frac = &frac[..frac.len().min(9)];
        let int: i128 = if int.is_empty() { 0 } else { int.parse().ok()? };
        let frac_nano: i128 = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<9}").parse().ok()?
        };
        let v = int.checked_mul(1_000_000_000)?.checked_add(frac_nano)?;
        (if negative { -v } else { v }, 0)
    };
    let (mul, exp10) = match suffix {
        "" => (1, exp10),
        "n" => (1, -9),
        "u" => (1, -6),
        "m" => (1, -3),
        "k" => (1, 3),
        "M" => (1, 6),
        "G" => (1, 9),
        "T" => (1, 12),
        "P" => (1, 15),
        "E" => (1, 18),
        "Ki" => (1i128 << 10, 0),
        "Mi" => (1i128 << 20, 0),
        "Gi" => (1i128 << 30, 0),
        "Ti" => (1i128 << 40, 0),
        "Pi" => (1i128 << 50, 0),
        "Ei" => (1i128 << 60, 0),
        e if e.starts_with(['e', 'E']) => (1, e[1..].parse().ok()?),
        _ => return None,
    };
    let scaled = mantissa_nano.checked_mul(mul)?;
    if exp10 >= 0 {
        scaled.checked_mul(10i128.checked_pow(u32::try_from(exp10).ok()?)?)
    } else {
        Some(scaled / 10i128.checked_pow(exp10.unsigned_abs())?)
    }
}

/// Milli-CPU as a quantity: `0`, `250m`, `2`.
fn format_cpu(milli: i128) -> String {
    match milli {
        0 => "0".to_string(),
        m if m % 1000 == 0 => (m / 1000).to_string(),
        m => format!("{m}m"),
    }
}

/// Bytes as a quantity in the largest exact binary unit: `0`, `128Mi`, `1Gi`, `1000`.
fn format_bytes(bytes: i128) -> String {
    if bytes == 0 {
        return "0".to_string();
    }
    for (suffix, shift) in [
        ("Ei", 60),
        ("Pi", 50),
        ("Ti", 40),
        ("Gi", 30),
        ("Mi", 20),
        ("Ki", 10),
    ] {
        let unit = 1i128 << shift;
        if bytes % unit == 0 {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_quantities() {
        assert_eq!(parse_quantity("100m"), Some(100_000_000));
        assert_eq!(parse_quantity("2"), Some(2_000_000_000));
        assert_eq!(parse_quantity("1.5"), Some(1_500_000_000));
        assert_eq!(
            parse_quantity("128Mi"),
            Some(128 * (1 << 20) * 1_000_000_000)
        );
        assert_eq!(parse_quantity("1e3"), Some(1000 * 1_000_000_000));
        assert_eq!(parse_quantity("500n"), Some(500));
        assert_eq!(parse_quantity("1k"), Some(1_000_000_000_000));
        assert_eq!(parse_quantity("bogus"), None);
        assert_eq!(parse_quantity("12Qi"), None);
    }

    #[test]
    fn formats_quantities() {
        assert_eq!(format_cpu(0), "0");
        assert_eq!(format_cpu(250), "250m");
        assert_eq!(format_cpu(2000), "2");
        assert_eq!(format_bytes(128 << 20), "128Mi");
        assert_eq!(format_bytes(1 << 30), "1Gi");
        assert_eq!(format_bytes(1000), "1000");
    }

    #[test]
    fn node_report_lists_pods_and_allocation() {
        let now: jiff::Timestamp = "2026-01-01T01:00:00Z".parse().expect("ts");
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": "node-1", "labels": {"kubernetes.io/hostname": "node-1"}},
            "spec": {"podCIDR": "127.64.0.0/16"},
            "status": {"addresses": [{"type": "InternalIP", "address": "127.1.1.1"}],
                       "allocatable": {"cpu": "2", "memory": "1Gi", "pods": "110"}}
        }))
        .expect("node");
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"nodeName": "node-1", "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "500m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}},
                {"name": "b", "resources": {"requests": {"cpu": "500m"}}}
            ]}
        }))
        .expect("pod");
        let mut out = Writer::default();
        write(&mut out, &node, None, Some(&[pod]), now);
        let text = out.finish();
        assert!(text.contains("Roles:              <none>\n"), "{text}");
        assert!(
            text.contains("Addresses:\n  InternalIP:  127.1.1.1\n"),
            "{text}"
        );
        assert!(
            text.contains("Non-terminated Pods:          (1 in total)\n"),
            "{text}"
        );
        assert!(
            text.contains("  default                     web     1 (50%)       0 (0%)      128Mi (12%)      256Mi (25%)    60m\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "  cpu       1 (50%)      0 (0%)\n  memory    128Mi (12%)  256Mi (25%)\n"
            ),
            "{text}"
        );
    }
}
