//! `describe pod`, and the container and volume sections that pod templates share
//! (kubectl's `describePod`, `describeContainers`, `describeVolumes`).

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStatus, Pod, PodSpec, Probe, Toleration, Volume,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{Writer, annotations, controlled_by, labels, multiline, rfc1123z, since};

/// Writes the pod report (without events).
pub(super) fn describe(out: &mut Writer, pod: &Pod) {
    let meta = &pod.metadata;
    let spec = pod.spec.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    w!(out, 0, "Name:\t{}", meta.name.as_deref().unwrap_or(""));
    w!(
        out,
        0,
        "Namespace:\t{}",
        meta.namespace.as_deref().unwrap_or("")
    );
    if let Some(p) = spec.priority {
        w!(out, 0, "Priority:\t{p}");
    }
    if let Some(pc) = spec
        .priority_class_name
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        w!(out, 0, "Priority Class Name:\t{pc}");
    }
    if let Some(sa) = spec
        .service_account_name
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        w!(out, 0, "Service Account:\t{sa}");
    }
    match spec.node_name.as_deref().filter(|s| !s.is_empty()) {
        Some(node) => w!(
            out,
            0,
            "Node:\t{node}/{}",
            status.host_ip.as_deref().unwrap_or("")
        ),
        None => w!(out, 0, "Node:\t<none>"),
    }
    if let Some(t) = &status.start_time {
        w!(out, 0, "Start Time:\t{}", rfc1123z(t.0));
    }
    labels(out, "Labels", meta.labels.as_ref());
    annotations(out, "Annotations", meta.annotations.as_ref());
    let phase = status.phase.as_deref().unwrap_or("");
    match &meta.deletion_timestamp {
        Some(t) if phase != "Failed" && phase != "Succeeded" => {
            w!(
                out,
                0,
                "Status:\tTerminating (lasts {})",
                since(Some(t.0), jiff::Timestamp::now())
            );
            w!(
                out,
                0,
                "Termination Grace Period:\t{}s",
                meta.deletion_grace_period_seconds.unwrap_or(0)
            );
        }
        _ => w!(out, 0, "Status:\t{phase}"),
    }
    if let Some(r) = status.reason.as_deref().filter(|s| !s.is_empty()) {
        w!(out, 0, "Reason:\t{r}");
    }
    if let Some(m) = status.message.as_deref().filter(|s| !s.is_empty()) {
        w!(out, 0, "Message:\t{m}");
    }
    w!(out, 0, "IP:\t{}", status.pod_ip.as_deref().unwrap_or(""));
    match status.pod_ips.as_deref() {
        None | Some([]) => w!(out, 0, "IPs:\t<none>"),
        Some(ips) => {
            w!(out, 0, "IPs:");
            for ip in ips {
                w!(out, 1, "IP:\t{}", ip.ip);
            }
        }
    }
    if let Some(owner) = controlled_by(meta) {
        w!(out, 0, "Controlled By:\t{owner}");
    }
    if let Some(n) = status
        .nominated_node_name
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        w!(out, 0, "NominatedNodeName:\t{n}");
    }
    if let Some(init) = spec.init_containers.as_deref().filter(|c| !c.is_empty()) {
        containers(
            out,
            "Init Containers",
            init,
            status.init_container_statuses.as_deref(),
            false,
        );
    }
    containers(
        out,
        "Containers",
        &spec.containers,
        status.container_statuses.as_deref(),
        false,
    );
    if let Some(conditions) = status.conditions.as_deref().filter(|c| !c.is_empty()) {
        w!(out, 0, "Conditions:");
        w!(out, 1, "Type\tStatus");
        for c in conditions {
            w!(out, 1, "{} \t{} ", c.type_, c.status);
        }
    }
    volumes(out, spec.volumes.as_deref().unwrap_or_default(), false);
    w!(
        out,
        0,
        "QoS Class:\t{}",
        status.qos_class.as_deref().unwrap_or("")
    );
    labels(out, "Node-Selectors", spec.node_selector.as_ref());
    tolerations(
        out,
        "Tolerations",
        spec.tolerations.as_deref().unwrap_or_default(),
    );
}

/// The pod template part of `describe deployment` (kubectl's `DescribePodTemplate`).
pub(super) fn template(
    out: &mut Writer,
    meta: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
    spec: Option<&PodSpec>,
) {
    w!(out, 0, "Pod Template:");
    let Some(spec) = spec else {
        w!(out, 1, "<unset>");
        return;
    };
    labels(out, "  Labels", meta.and_then(|m| m.labels.as_ref()));
    if let Some(a) = meta
        .and_then(|m| m.annotations.as_ref())
        .filter(|a| !a.is_empty())
    {
        annotations(out, "  Annotations", Some(a));
    }
    if let Some(sa) = spec
        .service_account_name
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        w!(out, 1, "Service Account:\t{sa}");
    }
    if let Some(init) = spec.init_containers.as_deref().filter(|c| !c.is_empty()) {
        containers(out, "Init Containers", init, None, true);
    }
    containers(out, "Containers", &spec.containers, None, true);
    volumes(out, spec.volumes.as_deref().unwrap_or_default(), true);
    if let Some(pc) = spec
        .priority_class_name
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        w!(out, 0, "  Priority Class Name:\t{pc}");
    }
    labels(out, "  Node-Selectors", spec.node_selector.as_ref());
    tolerations(
        out,
        "  Tolerations",
        spec.tolerations.as_deref().unwrap_or_default(),
    );
}

/// `Containers:` with one block per container; `in_template` indents as kubectl does for
/// pod templates (section two spaces in, names three).
fn containers(
    out: &mut Writer,
    title: &str,
    containers: &[Container],
    statuses: Option<&[ContainerStatus]>,
    in_template: bool,
) {
    let (space, name_indent) = if in_template { ("  ", " ") } else { ("", "") };
    w!(out, 0, "{space}{title}:");
    for c in containers {
        let status = statuses.and_then(|s| s.iter().find(|s| s.name == c.name));
        w!(out, 1, "{name_indent}{}:", c.name);
        if let Some(s) = status {
            w!(
                out,
                2,
                "Container ID:\t{}",
                s.container_id.as_deref().unwrap_or("")
            );
        }
        w!(out, 2, "Image:\t{}", c.image.as_deref().unwrap_or(""));
        if let Some(s) = status {
            w!(out, 2, "Image ID:\t{}", s.image_id);
        }
        let ports = c.ports.as_deref().unwrap_or_default();
        let protocol = |p: &k8s_openapi::api::core::v1::ContainerPort| {
            p.protocol.clone().unwrap_or_else(|| "TCP".into())
        };
        let port_list: Vec<String> = ports
            .iter()
            .map(|p| format!("{}/{}", p.container_port, protocol(p)))
            .collect();
        let host_list: Vec<String> = ports
            .iter()
            .map(|p| format!("{}/{}", p.host_port.unwrap_or(0), protocol(p)))
            .collect();
        let (port_title, host_title) = if ports.len() > 1 {
            ("Ports", "Host Ports")
        } else {
            ("Port", "Host Port")
        };
        w!(out, 2, "{port_title}:\t{}", or_none(&port_list.join(", ")));
        w!(out, 2, "{host_title}:\t{}", or_none(&host_list.join(", ")));
        for (title, lines) in [("Command", &c.command), ("Args", &c.args)] {
            if let Some(lines) = lines.as_deref().filter(|l| !l.is_empty()) {
                w!(out, 2, "{title}:");
                for line in lines.iter().flat_map(|l| l.split('\n')) {
                    w!(out, 3, "{line}");
                }
            }
        }
        if let Some(s) = status {
            state(out, "State", s.state.as_ref());
            if let Some(last) = s.last_state.as_ref().filter(|l| l.terminated.is_some()) {
                state(out, "Last State", Some(last));
            }
            w!(out, 2, "Ready:\t{}", if s.ready { "True" } else { "False" });
            w!(out, 2, "Restart Count:\t{}", s.restart_count);
        }
        if let Some(res) = &c.resources {
            for (title, list) in [("Limits", &res.limits), ("Requests", &res.requests)] {
                if let Some(list) = list.as_ref().filter(|l| !l.is_empty()) {
                    w!(out, 2, "{title}:");
                    for (name, q) in list {
                        w!(out, 3, "{name}:\t{}", q.0);
                    }
                }
            }
        }
        for (title, probe) in [
            ("Liveness", &c.liveness_probe),
            ("Readiness", &c.readiness_probe),
            ("Startup", &c.startup_probe),
        ] {
            if let Some(p) = probe {
                w!(out, 2, "{title}:\t{}", describe_probe(p));
            }
        }
        env(out, c);
        match c.volume_mounts.as_deref() {
            None | Some([]) => w!(out, 2, "Mounts:\t<none>"),
            Some(mounts) => {
                w!(out, 2, "Mounts:");
                let mut mounts = mounts.to_vec();
                mounts.sort_by(|a, b| a.mount_path.cmp(&b.mount_path));
                for m in mounts {
                    let mut flags = vec![if m.read_only == Some(true) {
                        "ro".to_string()
                    } else {
                        "rw".to_string()
                    }];
                    if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
                        flags.push(format!("path={sub:?}"));
                    }
                    w!(
                        out,
                        3,
                        "{} from {} ({})",
                        m.mount_path,
                        m.name,
                        flags.join(",")
                    );
                }
            }
        }
    }
}

fn or_none(s: &str) -> &str {
    if s.is_empty() { "<none>" } else { s }
}

/// kubectl's `describeStatus`.
fn state(out: &mut Writer, title: &str, state: Option<&ContainerState>) {
    let state = state.cloned().unwrap_or_default();
    if let Some(r) = &state.running {
        w!(out, 2, "{title}:\tRunning");
        w!(
            out,
            3,
            "Started:\t{}",
            r.started_at
                .as_ref()
                .map_or_else(String::new, |t| rfc1123z(t.0))
        );
    } else if let Some(wt) = &state.waiting {
        w!(out, 2, "{title}:\tWaiting");
        if let Some(reason) = wt.reason.as_deref().filter(|s| !s.is_empty()) {
            w!(out, 3, "Reason:\t{reason}");
        }
    } else if let Some(t) = &state.terminated {
        w!(out, 2, "{title}:\tTerminated");
        if let Some(reason) = t.reason.as_deref().filter(|s| !s.is_empty()) {
            w!(out, 3, "Reason:\t{reason}");
        }
        if let Some(message) = t.message.as_deref().filter(|s| !s.is_empty()) {
            w!(out, 3, "Message:\t{}", message.trim_end());
        }
        w!(out, 3, "Exit Code:\t{}", t.exit_code);
        if let Some(signal) = t.signal.filter(|s| *s > 0) {
            w!(out, 3, "Signal:\t{signal}");
        }
        w!(
            out,
            3,
            "Started:\t{}",
            t.started_at
                .as_ref()
                .map_or_else(String::new, |t| rfc1123z(t.0))
        );
        w!(
            out,
            3,
            "Finished:\t{}",
            t.finished_at
                .as_ref()
                .map_or_else(String::new, |t| rfc1123z(t.0))
        );
    } else {
        w!(out, 2, "{title}:\tWaiting");
    }
}

/// kubectl's `DescribeProbe`: `http-get http://:80/ delay=0s timeout=1s period=10s #success=1 #failure=3`.
pub(super) fn describe_probe(p: &Probe) -> String {
    let attrs = format!(
        "delay={}s timeout={}s period={}s #success={} #failure={}",
        p.initial_delay_seconds.unwrap_or(0),
        p.timeout_seconds.unwrap_or(1),
        p.period_seconds.unwrap_or(10),
        p.success_threshold.unwrap_or(1),
        p.failure_threshold.unwrap_or(3)
    );
    let port = |p: &IntOrString| match p {
        IntOrString::Int(i) => i.to_string(),
        IntOrString::String(s) => s.clone(),
    };
    if let Some(exec) = &p.exec {
        format!(
            "exec [{}] {attrs}",
            exec.command.clone().unwrap_or_default().join(" ")
        )
    } else if let Some(h) = &p.http_get {
        let scheme = h.scheme.as_deref().unwrap_or("HTTP").to_lowercase();
        let host = h.host.as_deref().unwrap_or("");
        format!(
            "http-get {scheme}://{host}:{}{} {attrs}",
            port(&h.port),
            h.path.as_deref().unwrap_or("")
        )
    } else if let Some(t) = &p.tcp_socket {
        format!(
            "tcp-socket {}:{} {attrs}",
            t.host.as_deref().unwrap_or(""),
            port(&t.port)
        )
    } else if let Some(g) = &p.grpc {
        format!(
            "grpc <pod>:{} {} {attrs}",
            g.port,
            g.service.as_deref().unwrap_or("")
        )
    } else {
        format!("unknown {attrs}")
    }
}

fn env(out: &mut Writer, c: &Container) {
    let vars = c.env.as_deref().unwrap_or_default();
    let from = c.env_from.as_deref().unwrap_or_default();
    if vars.is_empty() && from.is_empty() {
        w!(out, 2, "Environment:\t<none>");
        return;
    }
    if !from.is_empty() {
        w!(out, 2, "Environment Variables from:");
        for f in from {
            let prefix = f.prefix.as_deref().unwrap_or("");
            if let Some(cm) = &f.config_map_ref {
                let optional = cm.optional.unwrap_or(false);
                w!(
                    out,
                    3,
                    "{}\tConfigMap\tPrefix: {prefix}\tOptional: {optional}",
                    cm.name
                );
            } else if let Some(s) = &f.secret_ref {
                let optional = s.optional.unwrap_or(false);
                w!(
                    out,
                    3,
                    "{}\tSecret\tPrefix: {prefix}\tOptional: {optional}",
                    s.name
                );
            }
        }
    }
    if vars.is_empty() {
        w!(out, 2, "Environment:\t<none>");
        return;
    }
    w!(out, 2, "Environment:");
    for v in vars {
        let Some(from) = &v.value_from else {
            let value = v.value.as_deref().unwrap_or("");
            let mut lines = value.split('\n');
            w!(out, 3, "{}:\t{}", v.name, lines.next().unwrap_or(""));
            for line in lines {
                w!(out, 3, "\t{line}");
            }
            continue;
        };
        let text = if let Some(f) = &from.field_ref {
            format!(
                "{} ({}:{})",
                "",
                f.api_version.as_deref().unwrap_or("v1"),
                f.field_path
            )
        } else if let Some(r) = &from.resource_field_ref {
            format!(
                "{} ({})",
                r.container_name.as_deref().unwrap_or(&c.name),
                r.resource
            )
        } else if let Some(k) = &from.config_map_key_ref {
            format!(
                "<set to the key '{}' of config map '{}'>\tOptional: {}",
                k.key,
                k.name,
                k.optional.unwrap_or(false)
            )
        } else if let Some(k) = &from.secret_key_ref {
            format!(
                "<set to the key '{}' in secret '{}'>\tOptional: {}",
                k.key,
                k.name,
                k.optional.unwrap_or(false)
            )
        } else {
            String::new()
        };
        w!(out, 3, "{}:\t{}", v.name, text.trim_start());
    }
}

/// kubectl's `describeVolumes` for the common volume kinds.
fn volumes(out: &mut Writer, volumes: &[Volume], in_template: bool) {
    let (space, name_indent) = if in_template { ("  ", " ") } else { ("", "") };
    if volumes.is_empty() {
        w!(out, 0, "{space}Volumes:\t<none>");
        return;
    }
    w!(out, 0, "{space}Volumes:");
    for v in volumes {
        w!(out, 1, "{name_indent}{}:", v.name);
        if let Some(e) = &v.empty_dir {
            w!(
                out,
                2,
                "Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)"
            );
            w!(out, 2, "Medium:\t{}", e.medium.as_deref().unwrap_or(""));
            w!(
                out,
                2,
                "SizeLimit:\t{}",
                e.size_limit.as_ref().map_or("<unset>", |q| q.0.as_str())
            );
        } else if let Some(cm) = &v.config_map {
            w!(
                out,
                2,
                "Type:\tConfigMap (a volume populated by a ConfigMap)"
            );
            w!(out, 2, "Name:\t{}", cm.name);
            w!(out, 2, "Optional:\t{}", cm.optional.unwrap_or(false));
        } else if let Some(s) = &v.secret {
            w!(out, 2, "Type:\tSecret (a volume populated by a Secret)");
            w!(
                out,
                2,
                "SecretName:\t{}",
                s.secret_name.as_deref().unwrap_or("")
            );
            w!(out, 2, "Optional:\t{}", s.optional.unwrap_or(false));
        } else if let Some(h) = &v.host_path {
            w!(out, 2, "Type:\tHostPath (bare host directory volume)");
            w!(out, 2, "Path:\t{}", h.path);
            w!(
                out,
                2,
                "HostPathType:\t{}",
                h.type_.as_deref().unwrap_or("")
            );
        } else if let Some(p) = &v.persistent_volume_claim {
            w!(
                out,
                2,
                "Type:\tPersistentVolumeClaim (a reference to a PersistentVolumeClaim in the same namespace)"
            );
            w!(out, 2, "ClaimName:\t{}", p.claim_name);
            w!(out, 2, "ReadOnly:\t{}", p.read_only.unwrap_or(false));
        } else if v.projected.is_some() {
            w!(
                out,
                2,
                "Type:\tProjected (a volume that contains injected data from multiple sources)"
            );
        } else if v.downward_api.is_some() {
            w!(
                out,
                2,
                "Type:\tDownwardAPI (a volume populated by information about the pod)"
            );
        } else {
            w!(out, 2, "<unknown>");
        }
    }
}

/// kubectl's `printPodTolerationsMultiline`: `key=value:effect op=Exists for 300s`.
fn tolerations(out: &mut Writer, title: &str, tolerations: &[Toleration]) {
    let entries: Vec<String> = tolerations
        .iter()
        .map(|t| {
            let key = t.key.as_deref().unwrap_or("");
            let value = t.value.as_deref().unwrap_or("");
            let effect = t.effect.as_deref().unwrap_or("");
            let mut s = key.to_string();
            if !value.is_empty() {
                s.push_str(&format!("={value}"));
            }
            if !effect.is_empty() {
                s.push_str(&format!(":{effect}"));
            }
            if t.operator.as_deref() == Some("Exists") && value.is_empty() {
                s.push_str(if key.is_empty() && effect.is_empty() {
                    "op=Exists"
                } else {
                    " op=Exists"
                });
            }
            if let Some(secs) = t.toleration_seconds {
                s.push_str(&format!(" for {secs}s"));
            }
            s
        })
        .collect();
    multiline(out, title, &entries);
}

#[cfg(test)]
#[path = "pod_tests.rs"]
mod tests;
