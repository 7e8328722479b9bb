//! Rows of the cluster and networking kinds: nodes, services, endpoints, storage, events.

use super::*;

pub(super) fn node(n: &Value, now: Timestamp) -> Vec<Value> {
    let ready = list(n, "/status/conditions")
        .iter()
        .rfind(|c| str_at(c, "/type") == "Ready");
    let mut status = match ready {
        Some(c) if str_at(c, "/status") == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }
    .to_string();
    if bool_at(n, "/spec/unschedulable") {
        status.push_str(",SchedulingDisabled");
    }
    let mut roles = BTreeSet::new();
    for (k, v) in at(n, "/metadata/labels").as_object().into_iter().flatten() {
        if let Some(role) = k
            .strip_prefix("node-role.kubernetes.io/")
            .filter(|r| !r.is_empty())
        {
            roles.insert(role);
        } else if k == "kubernetes.io/role" {
            roles.extend(v.as_str().filter(|r| !r.is_empty()));
        }
    }
    let roles = if roles.is_empty() {
        "<none>".into()
    } else {
        roles.into_iter().collect::<Vec<_>>().join(",")
    };
    let address = |type_: &str| {
        let found = list(n, "/status/addresses")
            .iter()
            .find(|a| str_at(a, "/type") == type_);
        found.map_or("<none>", |a| str_at(a, "/address"))
    };
    let info =
        |field: &str| or(str_at(n, &format!("/status/nodeInfo/{field}")), "<unknown>").to_string();
    vec![
        name(n).into(),
        status.into(),
        roles.into(),
        age(n, now),
        str_at(n, "/status/nodeInfo/kubeletVersion").into(),
        address("InternalIP").into(),
        address("ExternalIP").into(),
        info("osImage").into(),
        info("kernelVersion").into(),
        info("containerRuntimeVersion").into(),
    ]
}

pub(super) fn service(s: &Value, now: Timestamp) -> Vec<Value> {
    let type_ = or(str_at(s, "/spec/type"), "ClusterIP");
    let cluster_ip = or(
        str_at(s, "/spec/clusterIPs/0"),
        or(str_at(s, "/spec/clusterIP"), "<none>"),
    );
    let external: Vec<&str> = list(s, "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let external_ip = match type_ {
        "ClusterIP" | "NodePort" if external.is_empty() => "<none>".to_string(),
        "ClusterIP" | "NodePort" => external.join(","),
        "LoadBalancer" => {
            // The server renders wide, so ingress addresses are never clipped; a set, so sorted.
            let ingress: BTreeSet<&str> = list(s, "/status/loadBalancer/ingress")
                .iter()
                .map(|i| or(str_at(i, "/ip"), str_at(i, "/hostname")))
                .filter(|a| !a.is_empty())
                .collect();
            let all: Vec<&str> = ingress.into_iter().chain(external).collect();
            if all.is_empty() {
                "<pending>".into()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => str_at(s, "/spec/externalName").into(),
        _ => "<unknown>".into(),
    };
    let ports: Vec<String> = list(s, "/spec/ports")
        .iter()
        .map(|p| {
            let (port, protocol) = (int_at(p, "/port"), or(str_at(p, "/protocol"), "TCP"));
            match int_at(p, "/nodePort") {
                n if n > 0 => format!("{port}:{n}/{protocol}"),
                _ => format!("{port}/{protocol}"),
            }
        })
        .collect();
    let ports = if ports.is_empty() {
        "<none>".into()
    } else {
        ports.join(",")
    };
    vec![
        name(s).into(),
        type_.into(),
        cluster_ip.into(),
        external_ip.into(),
        ports.into(),
        age(s, now),
        format_labels(at(s, "/spec/selector")).into(),
    ]
}

/// printers.go's `formatEndpoints`: the first three `ip:port`s.
pub(super) fn endpoints(e: &Value) -> String {
    let subsets = list(e, "/subsets");
    if subsets.is_empty() {
        return "<none>".into();
    }
    const MAX: usize = 3;
    let (mut shown, mut count) = (Vec::new(), 0);
    for ss in subsets {
        let ips: Vec<&str> = list(ss, "/addresses")
            .iter()
            .map(|a| str_at(a, "/ip"))
            .collect();
        let ports = list(ss, "/ports");
        // Headless services may have no ports: list bare addresses.
        let ports: Vec<Option<i64>> = if ports.is_empty() {
            vec![None]
        } else {
            ports.iter().map(|p| Some(int_at(p, "/port"))).collect()
        };
        for port in ports {
            count += ips.len();
            for ip in &ips {
                if shown.len() == MAX {
                    break;
                }
                shown.push(match port {
                    None => ip.to_string(),
                    Some(p) if ip.contains(':') => format!("[{ip}]:{p}"),
                    Some(p) => format!("{ip}:{p}"),
                });
            }
        }
    }
    list_with_more(&shown, count, MAX, "")
}

pub(super) fn endpoint_slice(s: &Value) -> Vec<Value> {
    const MAX: usize = 3;
    let ports = list(s, "/ports");
    let shown: Vec<String> = ports
        .iter()
        .take(MAX)
        .map(|p| match at(p, "/port").as_i64() {
            Some(n) => n.to_string(),
            None => or(str_at(p, "/name"), "*").into(),
        })
        .collect();
    let addresses: Vec<&str> = list(s, "/endpoints")
        .iter()
        .flat_map(|e| list(e, "/addresses"))
        .filter_map(Value::as_str)
        .collect();
    let shown_addresses: Vec<String> = addresses.iter().take(MAX).map(|a| a.to_string()).collect();
    vec![
        str_at(s, "/addressType").into(),
        list_with_more(&shown, ports.len(), MAX, "<unset>").into(),
        list_with_more(&shown_addresses, addresses.len(), MAX, "<unset>").into(),
    ]
}

/// `helper.GetAccessModesAsString`: abbreviated, in a fixed order.
pub(super) fn access_modes(modes: &[Value]) -> String {
    let has = |m: &str| modes.iter().any(|v| v.as_str() == Some(m));
    let abbreviated = [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ];
    abbreviated
        .iter()
        .filter(|(m, _)| has(m))
        .map(|(_, a)| *a)
        .collect::<Vec<_>>()
        .join(",")
}

/// The storage class of a PV or PVC: the beta annotation still wins over the field.
pub(super) fn storage_class_of(obj: &Value) -> &str {
    let annotation = at(obj, "/metadata/annotations")
        .get("volume.beta.kubernetes.io/storage-class")
        .and_then(Value::as_str);
    annotation.unwrap_or_else(|| str_at(obj, "/spec/storageClassName"))
}

pub(super) fn pvc(c: &Value, now: Timestamp) -> Vec<Value> {
    let phase = if deleting(c) {
        "Terminating"
    } else {
        str_at(c, "/status/phase")
    };
    let volume = str_at(c, "/spec/volumeName");
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (
            quantity(at(c, "/status/capacity/storage"), "0"),
            access_modes(list(c, "/status/accessModes")),
        )
    };
    vec![
        name(c).into(),
        phase.into(),
        volume.into(),
        capacity.into(),
        modes.into(),
        storage_class_of(c).into(),
        or(str_at(c, "/spec/volumeAttributesClassName"), "<unset>").into(),
        age(c, now),
        or(str_at(c, "/spec/volumeMode"), "<unset>").into(),
    ]
}

pub(super) fn pv(v: &Value, now: Timestamp) -> Vec<Value> {
    let claim = at(v, "/spec/claimRef");
    let claim = if claim.is_object() {
        format!("{}/{}", str_at(claim, "/namespace"), str_at(claim, "/name"))
    } else {
        String::new()
    };
    let phase = if deleting(v) {
        "Terminating"
    } else {
        str_at(v, "/status/phase")
    };
    vec![
        name(v).into(),
        quantity(at(v, "/spec/capacity/storage"), "0").into(),
        access_modes(list(v, "/spec/accessModes")).into(),
        str_at(v, "/spec/persistentVolumeReclaimPolicy").into(),
        phase.into(),
        claim.into(),
        storage_class_of(v).into(),
        or(str_at(v, "/spec/volumeAttributesClassName"), "<unset>").into(),
        str_at(v, "/status/reason").into(),
        age(v, now),
        or(str_at(v, "/spec/volumeMode"), "<unset>").into(),
    ]
}

pub(super) fn storage_class(s: &Value, now: Timestamp) -> Vec<Value> {
    let annotations = at(s, "/metadata/annotations");
    let is_default = [
        "storageclass.kubernetes.io/is-default-class",
        "storageclass.beta.kubernetes.io/is-default-class",
    ]
    .iter()
    .any(|k| annotations.get(k).and_then(Value::as_str) == Some("true"));
    let marker = if is_default { " (default)" } else { "" };
    vec![
        format!("{}{marker}", name(s)).into(),
        str_at(s, "/provisioner").into(),
        or(str_at(s, "/reclaimPolicy"), "Delete").into(),
        or(str_at(s, "/volumeBindingMode"), "Immediate").into(),
        bool_at(s, "/allowVolumeExpansion").into(),
        age(s, now),
    ]
}

/// Events, core/v1 or events.k8s.io/v1 (whose fields the API server renames on conversion).
pub(super) fn event(e: &Value, now: Timestamp) -> Vec<Value> {
    let v1 = e.get("regarding").is_some() || str_at(e, "/apiVersion").starts_with("events.k8s.io/");
    let field = |core: &str, events: &str| at(e, if v1 { events } else { core });
    let text = |core: &str, events: &str| field(core, events).as_str().unwrap_or("");
    let stamp = |core: &str, events: &str| text(core, events).parse::<Timestamp>().ok();

    let first = match stamp("/firstTimestamp", "/deprecatedFirstTimestamp") {
        Some(t) => since(Some(t), now),
        None => since(time_at(e, "/eventTime"), now),
    };
    let mut last = match stamp("/lastTimestamp", "/deprecatedLastTimestamp") {
        Some(t) => since(Some(t), now),
        None => first.clone(),
    };
    let mut count = field("/count", "/deprecatedCount").as_i64().unwrap_or(0);
    if e.get("series").is_some_and(Value::is_object) {
        last = since(time_at(e, "/series/lastObservedTime"), now);
        count = int_at(e, "/series/count");
    } else if count == 0 {
        // Singleton events carry no count in the new API.
        count = 1;
    }
    let object = field("/involvedObject", "/regarding");
    let kind = str_at(object, "/kind").to_lowercase();
    let target = match str_at(object, "/name") {
        "" => kind,
        name => format!("{kind}/{name}"),
    };
    let component = or(
        text("/source/component", "/deprecatedSource/component"),
        text("/reportingComponent", "/reportingController"),
    );
    let host = or(
        text("/source/host", "/deprecatedSource/host"),
        str_at(e, "/reportingInstance"),
    );
    let source = if host.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {host}")
    };
    vec![
        last.into(),
        str_at(e, "/type").into(),
        str_at(e, "/reason").into(),
        target.into(),
        str_at(object, "/fieldPath").into(),
        source.into(),
        text("/message", "/note").trim().into(),
        first.into(),
        count.into(),
        name(e).into(),
    ]
}
