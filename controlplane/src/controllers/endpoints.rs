//! The Endpoints and EndpointSlice controllers (the services issue, first part): for every
//! Service with a selector, the pods it selects that have an IP, with each Service port
//! resolved against the pod (`targetPort` by number or by container port name). Ready pods
//! are `addresses`, the others `notReadyAddresses` (all ready with
//! `publishNotReadyAddresses`); terminating pods leave Endpoints and stay in slices marked
//! `terminating`, as Kubernetes does, so traffic drains before listeners close. Services
//! without a selector keep their hand-written Endpoints.
//!
//! Unlike Kubernetes, the Endpoints object carries the Service as its owner, so the garbage
//! collector removes it with the Service (kube's endpoints controller deletes it itself).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::ControllerOptions;
use super::informer::Informers;
use super::pods::{is_ready, is_terminal, owner_reference};

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME: &str = "kubernetes.io/service-name";
const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
const MANAGER: &str = "endpointslice-controller.k8s.io";

/// Why a reconcile failed (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("api request failed")]
    Api(#[from] kube::Error),
}

struct Context {
    client: Client,
    pods: Store<Pod>,
    options: ControllerOptions,
}

/// Runs until `shutdown`.
pub async fn run(
    client: Client,
    informers: Informers,
    options: ControllerOptions,
    shutdown: CancellationToken,
) {
    let pods = informers.pods.store();
    let controller = Controller::new(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    );
    let services = controller.store();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<ObjectRef<Service>>();
    let route = informers.pods.follow(move |pod: &Pod| {
        let ns = pod.namespace();
        for svc in services.state() {
            if svc.namespace() == ns && selects(&svc, pod.labels()) {
                let _ = tx.send(ObjectRef::from_obj(&*svc));
            }
        }
    });
    if !super::routing::synced(&pods, &shutdown).await {
        route.abort();
        return;
    }
    let ctx = Arc::new(Context {
        client,
        pods,
        options,
    });
    super::routing::drive(controller, rx, shutdown, reconcile, error_policy, ctx).await;
    route.abort();
}

fn error_policy(_: Arc<Service>, error: &Error, _: Arc<Context>) -> Action {
    tracing::debug!(error = %error, "endpoints reconcile failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

fn selector(svc: &Service) -> Option<&BTreeMap<String, String>> {
    svc.spec
        .as_ref()?
        .selector
        .as_ref()
        .filter(|s| !s.is_empty())
}

fn selects(svc: &Service, labels: &BTreeMap<String, String>) -> bool {
    selector(svc).is_some_and(|sel| sel.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

/// A Service port resolved on one pod: `(name, port, protocol)`; `None` when a named
/// `targetPort` names no port of the pod.
fn resolve_port(port: &k8s_openapi::api::core::v1::ServicePort, pod: &Pod) -> Option<ResolvedPort> {
    let number = match &port.target_port {
        None => port.port,
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(name)) => {
            pod.spec
                .as_ref()?
                .containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| p.name.as_deref() == Some(name.as_str()))?
                .container_port
        }
    };
    Some((
        port.name.clone().unwrap_or_default(),
        number,
        port.protocol.clone().unwrap_or_else(|| "TCP".into()),
    ))
}

/// A Service port resolved on a pod: `(name, port, protocol)`.
type ResolvedPort = (String, i32, String);

/// One pod as an endpoint: its address entry and whether it is ready and terminating.
struct Member {
    ports: Vec<ResolvedPort>,
    address: Value,
    ready: bool,
    terminating: bool,
}

fn members(svc: &Service, pods: &[Arc<Pod>]) -> Vec<Member> {
    let spec = svc.spec.clone().unwrap_or_default();
    let publish = spec.publish_not_ready_addresses.unwrap_or(false);
    let mut out = Vec::new();
    for pod in pods {
        if pod.namespace() != svc.namespace() || !selects(svc, pod.labels()) || is_terminal(pod) {
            continue;
        }
        let Some(ip) = pod.status.as_ref().and_then(|s| s.pod_ip.clone()) else {
            continue;
        };
        let ports: Vec<_> = spec
            .ports
            .iter()
            .flatten()
            .filter_map(|p| resolve_port(p, pod))
            .collect();
        // A pod named into the Service's domain (`hostname` + `subdomain`, as StatefulSet
        // pods are) is listed with its hostname, which DNS answers as `host.svc.ns.svc...`.
        let hostname = pod
            .spec
            .as_ref()
            .filter(|s| s.subdomain.as_deref() == svc.metadata.name.as_deref())
            .and_then(|s| s.hostname.clone())
            .filter(|h| !h.is_empty());
        let mut address = json!({
                "ip": ip,
                "nodeName": pod.spec.as_ref().and_then(|s| s.node_name.clone()),
                "targetRef": {"kind": "Pod", "namespace": pod.namespace(), "name": pod.name_any(),
                    "uid": pod.metadata.uid},
        });
        if let Some(hostname) = hostname {
            address["hostname"] = json!(hostname);
        }
        out.push(Member {
            ports,
            address,
            ready: publish || is_ready(pod),
            terminating: pod.metadata.deletion_timestamp.is_some(),
        });
    }
    out.sort_by(|a, b| a.address["ip"].as_str().cmp(&b.address["ip"].as_str()));
    out
}

fn ports_json(ports: &[ResolvedPort], endpoints_api: bool) -> Value {
    Value::Array(
        ports
            .iter()
            .map(|(name, port, protocol)| {
                let mut p = json!({"port": port, "protocol": protocol});
                if !name.is_empty() || !endpoints_api {
                    p["name"] = json!(name);
                }
                p
            })
            .collect(),
    )
}

/// The Endpoints subsets: members grouped by their resolved ports.
fn subsets(members: &[Member]) -> Value {
    #[allow(
        clippy::type_complexity,
        reason = "ports, ready and not-ready addresses of one subset"
    )]
    let mut groups: BTreeMap<String, (Vec<ResolvedPort>, Vec<Value>, Vec<Value>)> = BTreeMap::new();
    for m in members.iter().filter(|m| !m.terminating) {
        let key = format!("{:?}", m.ports);
        let g = groups
            .entry(key)
            .or_insert_with(|| (m.ports.clone(), Vec::new(), Vec::new()));
        if m.ready {
            g.1.push(m.address.clone())
        } else {
            g.2.push(m.address.clone())
        }
    }
    Value::Array(
        groups
            .into_values()
            .map(|(ports, ready, not_ready)| {
                let mut s = json!({"ports": ports_json(&ports, true)});
                if !ready.is_empty() {
                    s["addresses"] = json!(ready);
                }
                if !not_ready.is_empty() {
                    s["notReadyAddresses"] = json!(not_ready);
                }
                s
            })
            .collect(),
    )
}

/// One pass: write the Service's Endpoints and EndpointSlices if they differ.
async fn reconcile(svc: Arc<Service>, ctx: Arc<Context>) -> Result<Action, Error> {
    if selector(&svc).is_none() || svc.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    let members = members(&svc, &ctx.pods.state());
    let owner = owner_reference("v1", "Service", &svc.metadata);

    let endpoints: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &ns);
    let subsets = subsets(&members);
    let desired = json!({"apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": name, "namespace": ns, "labels": svc.labels(), "ownerReferences": [owner]},
        "subsets": subsets});
    match endpoints.get_opt(&name).await? {
        Some(current)
            if serde_json::to_value(&current.subsets).unwrap_or(Value::Null)
                == desired["subsets"] => {}
        Some(current) => {
            let mut object: Endpoints = serde_json::from_value(desired).unwrap_or_default();
            object.metadata.resource_version = current.metadata.resource_version;
            endpoints
                .replace(&name, &PostParams::default(), &object)
                .await?;
        }
        None => {
            let object: Endpoints = serde_json::from_value(desired).unwrap_or_default();
            endpoints.create(&PostParams::default(), &object).await?;
        }
    }

    // One slice per distinct port set, named after it so each pass rewrites the same ones.
    let slices: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), &ns);
    let mut groups: BTreeMap<String, (Vec<ResolvedPort>, Vec<Value>)> = BTreeMap::new();
    for m in &members {
        let key = format!("{:?}", m.ports);
        let g = groups
            .entry(key)
            .or_insert_with(|| (m.ports.clone(), Vec::new()));
        let mut endpoint = json!({
            "addresses": [m.address["ip"]],
            "conditions": {"ready": m.ready && !m.terminating, "serving": m.ready, "terminating": m.terminating},
            "targetRef": m.address["targetRef"],
        });
        if let Some(node) = m.address["nodeName"].as_str() {
            endpoint["nodeName"] = json!(node);
        }
        if let Some(hostname) = m.address.get("hostname") {
            endpoint["hostname"] = hostname.clone();
        }
        g.1.push(endpoint);
    }
    if groups.is_empty() {
        let ports: Vec<_> = svc
            .spec
            .iter()
            .flat_map(|s| s.ports.iter().flatten())
            .map(|p| {
                (
                    p.name.clone().unwrap_or_default(),
                    p.port,
                    p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                )
            })
            .collect();
        groups.insert(String::new(), (ports, Vec::new()));
    }
    let mut wanted = Vec::new();
    for (key, (ports, members)) in groups {
        let hash = super::rollout::template_hash(key.as_bytes(), 0);
        let slice_name = format!("{name}-{}", &hash[..hash.len().min(5)]);
        wanted.push(slice_name.clone());
        let desired = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": slice_name, "namespace": ns,
                "labels": {SERVICE_NAME: name, MANAGED_BY: MANAGER}, "ownerReferences": [owner]},
            "addressType": "IPv4", "endpoints": members, "ports": ports_json(&ports, false)});
        let mut object: EndpointSlice = match serde_json::from_value(desired) {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "building an EndpointSlice");
                continue;
            }
        };
        match slices.get_opt(&slice_name).await? {
            Some(current)
                if current.endpoints == object.endpoints && current.ports == object.ports => {}
            Some(current) => {
                object.metadata.resource_version = current.metadata.resource_version;
                slices
                    .replace(&slice_name, &PostParams::default(), &object)
                    .await?;
            }
            None => {
                slices.create(&PostParams::default(), &object).await?;
            }
        }
    }
    let listed = slices
        .list(&ListParams::default().labels(&format!("{SERVICE_NAME}={name}")))
        .await?;
    for old in listed.items {
        let old_name = old.name_any();
        if !wanted.contains(&old_name)
            && old.labels().get(MANAGED_BY).map(String::as_str) == Some(MANAGER)
        {
            slices.delete(&old_name, &DeleteParams::default()).await?;
        }
    }
    Ok(Action::requeue(ctx.options.resync))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ip: &str, ready: bool, ports: serde_json::Value) -> Arc<Pod> {
        Arc::new(serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}, "uid": name},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": ports}]},
            "status": {"phase": "Running", "podIP": ip, "conditions": [
                {"type": "Ready", "status": if ready { "True" } else { "False" }}]}
        })).unwrap())
    }

    fn service(target: serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": target}]}
        })).unwrap()
    }

    #[test]
    fn named_target_ports_resolve_per_pod_and_unready_pods_are_listed_apart() {
        let pods = [
            pod(
                "a",
                "127.64.0.2",
                true,
                json!([{"name": "web", "containerPort": 8080}]),
            ),
            pod(
                "b",
                "127.64.0.3",
                false,
                json!([{"name": "web", "containerPort": 8080}]),
            ),
            pod(
                "c",
                "127.64.0.4",
                true,
                json!([{"name": "web", "containerPort": 9090}]),
            ),
        ];
        let subsets = subsets(&members(&service(json!("web")), &pods));
        let subsets = subsets.as_array().unwrap();
        assert_eq!(subsets.len(), 2, "{subsets:?}");
        let by_port = |p: i64| subsets.iter().find(|s| s["ports"][0]["port"] == p).unwrap();
        assert_eq!(by_port(8080)["addresses"][0]["ip"], "127.64.0.2");
        assert_eq!(by_port(8080)["notReadyAddresses"][0]["ip"], "127.64.0.3");
        assert_eq!(by_port(9090)["addresses"][0]["targetRef"]["name"], "c");
    }

    #[test]
    fn numbered_and_missing_target_ports() {
        let pods = [pod("a", "127.64.0.2", true, json!([]))];
        let m = members(&service(json!(8081)), &pods);
        assert_eq!(
            m[0].ports,
            vec![("http".to_string(), 8081, "TCP".to_string())]
        );
        let m = members(&service(json!("nope")), &pods);
        assert!(
            m[0].ports.is_empty(),
            "a named port the pod lacks resolves to nothing"
        );
    }
}
