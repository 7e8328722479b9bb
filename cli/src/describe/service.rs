//! `describe service` (kubectl's `describeService`), with the addresses behind each port from
//! the service's Endpoints, or its EndpointSlices when there is no Endpoints object.

use k8s_openapi::api::core::v1::{Endpoints, Service, ServicePort};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ListParams};

use super::{Writer, annotations, labels};
use crate::client::Cluster;
use crate::print::format_labels;

/// Writes the service report (without events).
pub(super) async fn describe(cluster: &Cluster, out: &mut Writer, svc: &Service) {
    let backends = backends(cluster, svc).await;
    write(out, svc, &backends);
}

/// Where traffic goes: (port name, address, port) triples, from Endpoints or EndpointSlices.
type Backends = Vec<(String, String, i32)>;

fn write(out: &mut Writer, svc: &Service, backends: &Backends) {
    let meta = &svc.metadata;
    let spec = svc.spec.clone().unwrap_or_default();
    w!(out, 0, "Name:\t{}", meta.name.as_deref().unwrap_or(""));
    w!(
        out,
        0,
        "Namespace:\t{}",
        meta.namespace.as_deref().unwrap_or("")
    );
    labels(out, "Labels", meta.labels.as_ref());
    annotations(out, "Annotations", meta.annotations.as_ref());
    let selector = spec
        .selector
        .as_ref()
        .map(|s| serde_json::to_value(s).unwrap_or_default());
    let selector = format_labels(selector.as_ref());
    w!(
        out,
        0,
        "Selector:\t{}",
        if selector == "<none>" { "" } else { &selector }
    );
    w!(
        out,
        0,
        "Type:\t{}",
        spec.type_.as_deref().unwrap_or("ClusterIP")
    );
    if let Some(p) = &spec.ip_family_policy {
        w!(out, 0, "IP Family Policy:\t{p}");
    }
    match spec.ip_families.as_deref() {
        Some(f) if !f.is_empty() => w!(out, 0, "IP Families:\t{}", f.join(",")),
        _ => w!(out, 0, "IP Families:\t<none>"),
    }
    w!(out, 0, "IP:\t{}", spec.cluster_ip.as_deref().unwrap_or(""));
    match spec.cluster_ips.as_deref() {
        Some(ips) if !ips.is_empty() => w!(out, 0, "IPs:\t{}", ips.join(",")),
        _ => w!(out, 0, "IPs:\t<none>"),
    }
    if let Some(ips) = spec.external_ips.as_deref().filter(|i| !i.is_empty()) {
        w!(out, 0, "External IPs:\t{}", ips.join(","));
    }
    let ingress: Vec<String> = svc
        .status
        .iter()
        .filter_map(|s| s.load_balancer.as_ref())
        .flat_map(|lb| lb.ingress.iter().flatten())
        .filter_map(|i| i.ip.clone().or_else(|| i.hostname.clone()))
        .collect();
    if !ingress.is_empty() {
        w!(out, 0, "LoadBalancer Ingress:\t{}", ingress.join(", "));
    }
    if let Some(name) = spec.external_name.as_deref().filter(|n| !n.is_empty()) {
        w!(out, 0, "External Name:\t{name}");
    }
    let ports = spec.ports.as_deref().unwrap_or_default();
    for p in ports {
        let name = p
            .name
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or("<unset>");
        let proto = p.protocol.as_deref().unwrap_or("TCP");
        w!(out, 0, "Port:\t{name}\t{}/{proto}", p.port);
        match &p.target_port {
            Some(IntOrString::String(s)) => w!(out, 0, "TargetPort:\t{s}/{proto}"),
            Some(IntOrString::Int(i)) => w!(out, 0, "TargetPort:\t{i}/{proto}"),
            None => w!(out, 0, "TargetPort:\t{}/{proto}", p.port),
        }
        if let Some(np) = p.node_port.filter(|n| *n != 0) {
            w!(out, 0, "NodePort:\t{name}\t{np}/{proto}");
        }
        w!(out, 0, "Endpoints:\t{}", format_backends(backends, Some(p)));
    }
    if ports.is_empty() {
        w!(out, 0, "Endpoints:\t{}", format_backends(backends, None));
    }
    w!(
        out,
        0,
        "Session Affinity:\t{}",
        spec.session_affinity.as_deref().unwrap_or("None")
    );
    if let Some(p) = spec
        .external_traffic_policy
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        w!(out, 0, "External Traffic Policy:\t{p}");
    }
    if let Some(p) = &spec.internal_traffic_policy {
        w!(out, 0, "Internal Traffic Policy:\t{p}");
    }
    if let Some(p) = spec.health_check_node_port.filter(|p| *p != 0) {
        w!(out, 0, "HealthCheck NodePort:\t{p}");
    }
}

/// kubectl's `formatEndpoints`: up to three `ip:port`, then `+ N more...`; `<none>` if none.
fn format_backends(backends: &Backends, port: Option<&ServicePort>) -> String {
    if backends.is_empty() {
        return "<none>".to_string();
    }
    let wanted = port.map(|p| p.name.clone().unwrap_or_default());
    let matching: Vec<String> = backends
        .iter()
        .filter(|(name, _, _)| wanted.as_ref().is_none_or(|w| w == name))
        .map(|(_, ip, port)| {
            if ip.contains(':') {
                format!("[{ip}]:{port}")
            } else {
                format!("{ip}:{port}")
            }
        })
        .collect();
    const MAX: usize = 3;
    if matching.len() > MAX {
        format!(
            "{} + {} more...",
            matching[..MAX].join(","),
            matching.len() - MAX
        )
    } else {
        matching.join(",")
    }
}

async fn backends(cluster: &Cluster, svc: &Service) -> Backends {
    let (Some(ns), Some(name)) = (
        svc.metadata.namespace.as_deref(),
        svc.metadata.name.as_deref(),
    ) else {
        return Vec::new();
    };
    let endpoints: Api<Endpoints> = Api::namespaced(cluster.client.clone(), ns);
    if let Ok(Some(ep)) = endpoints.get_opt(name).await {
        let mut out = Vec::new();
        for subset in ep.subsets.iter().flatten() {
            for p in subset.ports.iter().flatten() {
                for a in subset.addresses.iter().flatten() {
                    out.push((p.name.clone().unwrap_or_default(), a.ip.clone(), p.port));
                }
            }
        }
        return out;
    }
    let slices: Api<EndpointSlice> = Api::namespaced(cluster.client.clone(), ns);
    let lp = ListParams::default().labels(&format!("kubernetes.io/service-name={name}"));
    let Ok(list) = slices.list(&lp).await else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for slice in list.items {
        for p in slice.ports.iter().flatten() {
            for e in slice
                .endpoints
                .iter()
                .flatten()
                .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) != Some(false))
            {
                for ip in &e.addresses {
                    out.push((
                        p.name.clone().unwrap_or_default(),
                        ip.clone(),
                        p.port.unwrap_or(0),
                    ));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn service_report_lists_ports_and_endpoints() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "NodePort", "selector": {"app": "web"}, "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                     "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", "sessionAffinity": "None",
                     "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP", "nodePort": 30080}]}
        }))
        .expect("service");
        let backends: Backends = (1..=4)
            .map(|i| (String::new(), format!("127.64.0.{i}"), 8080))
            .collect();
        let mut out = Writer::default();
        write(&mut out, &svc, &backends);
        let text = out.finish();
        let expected = "\
Name:              web
Namespace:         default
Labels:            <none>
Annotations:       <none>
Selector:          app=web
Type:              NodePort
IP Family Policy:  SingleStack
IP Families:       IPv4
IP:                10.96.0.10
IPs:               10.96.0.10
Port:              <unset>  80/TCP
TargetPort:        8080/TCP
NodePort:          <unset>  30080/TCP
Endpoints:         127.64.0.1:8080,127.64.0.2:8080,127.64.0.3:8080 + 1 more...
Session Affinity:  None
";
        assert_eq!(text, expected);
        assert_eq!(format_backends(&Vec::new(), None), "<none>");
    }
}
