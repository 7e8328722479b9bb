//! Rows of the workload kinds: pods, their controllers, jobs, autoscalers, disruption budgets.

use super::*;

/// printers.go's `printPod`: the STATUS column is the last non-empty reason among init
/// containers, then containers, then deletion.
pub(super) fn pod(p: &Value, now: Timestamp) -> Vec<Value> {
    let init_specs = list(p, "/spec/initContainers");
    // Sidecars (restartable init containers) count as containers once started.
    let is_sidecar = |name: &str| {
        init_specs
            .iter()
            .any(|c| str_at(c, "/name") == name && str_at(c, "/restartPolicy") == "Always")
    };
    let sidecars = init_specs
        .iter()
        .filter(|c| str_at(c, "/restartPolicy") == "Always")
        .count();
    let total = list(p, "/spec/containers").len() + sidecars;
    let mut ready = 0;
    let (mut restarts, mut sidecar_restarts) = (0, 0);
    let (mut last_restart, mut sidecar_last_restart) = (None::<Timestamp>, None::<Timestamp>);

    let phase = str_at(p, "/status/phase");
    let mut reason = or(str_at(p, "/status/reason"), phase).to_string();
    let gated = list(p, "/status/conditions")
        .iter()
        .any(|c| str_at(c, "/type") == "PodScheduled" && str_at(c, "/reason") == "SchedulingGated");
    if gated {
        reason = "SchedulingGated".into();
    }

    let mut initializing = false;
    for (i, cs) in list(p, "/status/initContainerStatuses").iter().enumerate() {
        let finished = time_at(cs, "/lastState/terminated/finishedAt");
        restarts += int_at(cs, "/restartCount");
        last_restart = last_restart.max(finished);
        let sidecar = is_sidecar(str_at(cs, "/name"));
        if sidecar {
            sidecar_restarts += int_at(cs, "/restartCount");
            sidecar_last_restart = sidecar_last_restart.max(finished);
        }
        let terminated = at(cs, "/state/terminated");
        let waiting = str_at(cs, "/state/waiting/reason");
        if terminated.is_object() && int_at(terminated, "/exitCode") == 0 {
            continue;
        } else if sidecar && bool_at(cs, "/started") {
            if bool_at(cs, "/ready") {
                ready += 1;
            }
            continue;
        } else if terminated.is_object() {
            reason = match (str_at(terminated, "/reason"), int_at(terminated, "/signal")) {
                ("", 0) => format!("Init:ExitCode:{}", int_at(terminated, "/exitCode")),
                ("", signal) => format!("Init:Signal:{signal}"),
                (r, _) => format!("Init:{r}"),
            };
        } else if !waiting.is_empty() && waiting != "PodInitializing" {
            reason = format!("Init:{waiting}");
        } else {
            reason = format!("Init:{i}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }

    if !initializing || condition_true(p, "/status/conditions", "Initialized") {
        restarts = sidecar_restarts;
        last_restart = sidecar_last_restart;
        let mut has_running = false;
        for cs in list(p, "/status/containerStatuses").iter().rev() {
            restarts += int_at(cs, "/restartCount");
            last_restart = last_restart.max(time_at(cs, "/lastState/terminated/finishedAt"));
            let terminated = at(cs, "/state/terminated");
            let waiting = str_at(cs, "/state/waiting/reason");
            if !waiting.is_empty() {
                reason = waiting.into();
            } else if terminated.is_object() {
                reason = match (str_at(terminated, "/reason"), int_at(terminated, "/signal")) {
                    ("", 0) => format!("ExitCode:{}", int_at(terminated, "/exitCode")),
                    ("", signal) => format!("Signal:{signal}"),
                    (r, _) => r.into(),
                };
            } else if bool_at(cs, "/ready") && at(cs, "/state/running").is_object() {
                has_running = true;
                ready += 1;
            }
        }
        // A completed container next to a running one leaves the pod Running, not Completed.
        if reason == "Completed" && has_running {
            reason = if condition_true(p, "/status/conditions", "Ready") {
                "Running"
            } else {
                "NotReady"
            }
            .into();
        }
    }

    if deleting(p) && str_at(p, "/status/reason") == "NodeLost" {
        reason = "Unknown".into();
    } else if deleting(p) && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".into();
    }

    let restarts = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", since(Some(t), now)),
        _ => restarts.to_string(),
    };
    // podIP wins over podIPs, as in the v1 to internal conversion.
    let ip = or(str_at(p, "/status/podIP"), str_at(p, "/status/podIPs/0/ip"));
    let gates = list(p, "/spec/readinessGates");
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let met = gates
            .iter()
            .filter(|g| condition_true(p, "/status/conditions", str_at(g, "/conditionType")))
            .count();
        format!("{met}/{}", gates.len())
    };
    vec![
        name(p).into(),
        format!("{ready}/{total}").into(),
        reason.into(),
        restarts.into(),
        age(p, now),
        or(ip, "<none>").into(),
        or(str_at(p, "/spec/nodeName"), "<none>").into(),
        or(str_at(p, "/status/nominatedNodeName"), "<none>").into(),
        readiness_gates.into(),
    ]
}

pub(super) fn deployment(d: &Value, now: Timestamp) -> Vec<Value> {
    let [names, images] = containers(at(d, "/spec/template/spec"));
    let desired = at(d, "/spec/replicas").as_i64().unwrap_or(1);
    vec![
        name(d).into(),
        format!("{}/{desired}", int_at(d, "/status/readyReplicas")).into(),
        int_at(d, "/status/updatedReplicas").into(),
        int_at(d, "/status/availableReplicas").into(),
        age(d, now),
        names,
        images,
        selector_string(at(d, "/spec/selector"))
            .unwrap_or_else(|| "<invalid>".into())
            .into(),
    ]
}

/// ReplicaSets and ReplicationControllers print alike, but an RC's selector is a plain map.
pub(super) fn replica_set(r: &Value, now: Timestamp, selector: fn(&Value) -> String) -> Vec<Value> {
    let [names, images] = containers(at(r, "/spec/template/spec"));
    vec![
        name(r).into(),
        at(r, "/spec/replicas").as_i64().unwrap_or(1).into(),
        int_at(r, "/status/replicas").into(),
        int_at(r, "/status/readyReplicas").into(),
        age(r, now),
        names,
        images,
        selector(at(r, "/spec/selector")).into(),
    ]
}

pub(super) fn stateful_set(s: &Value, now: Timestamp) -> Vec<Value> {
    let [names, images] = containers(at(s, "/spec/template/spec"));
    let desired = at(s, "/spec/replicas").as_i64().unwrap_or(1);
    let ready = format!("{}/{desired}", int_at(s, "/status/readyReplicas"));
    vec![name(s).into(), ready.into(), age(s, now), names, images]
}

pub(super) fn daemon_set(d: &Value, now: Timestamp) -> Vec<Value> {
    let [names, images] = containers(at(d, "/spec/template/spec"));
    vec![
        name(d).into(),
        int_at(d, "/status/desiredNumberScheduled").into(),
        int_at(d, "/status/currentNumberScheduled").into(),
        int_at(d, "/status/numberReady").into(),
        int_at(d, "/status/updatedNumberScheduled").into(),
        int_at(d, "/status/numberAvailable").into(),
        format_labels(at(d, "/spec/template/spec/nodeSelector")).into(),
        age(d, now),
        names,
        images,
        format_selector(at(d, "/spec/selector")).into(),
    ]
}

pub(super) fn job(j: &Value, now: Timestamp) -> Vec<Value> {
    let succeeded = int_at(j, "/status/succeeded");
    let completions = match at(j, "/spec/completions").as_i64() {
        Some(c) => format!("{succeeded}/{c}"),
        None => match int_at(j, "/spec/parallelism") {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let duration = match (
        time_at(j, "/status/startTime"),
        time_at(j, "/status/completionTime"),
    ) {
        (None, _) => String::new(),
        (Some(start), None) => human_duration(now.duration_since(start)),
        (Some(start), Some(end)) => human_duration(end.duration_since(start)),
    };
    let has = |type_: &str| condition_true(j, "/status/conditions", type_);
    let status = if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if deleting(j) {
        "Terminating"
    } else if has("Suspended") {
        "Suspended"
    } else if has("FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let [names, images] = containers(at(j, "/spec/template/spec"));
    vec![
        name(j).into(),
        status.into(),
        completions.into(),
        duration.into(),
        age(j, now),
        names,
        images,
        format_selector(at(j, "/spec/selector")).into(),
    ]
}

pub(super) fn cron_job(c: &Value, now: Timestamp) -> Vec<Value> {
    let last = time_at(c, "/status/lastScheduleTime")
        .map_or_else(|| "<none>".into(), |t| since(Some(t), now));
    let suspend = match at(c, "/spec/suspend").as_bool() {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    };
    let template = at(c, "/spec/jobTemplate/spec");
    let [names, images] = containers(at(template, "/template/spec"));
    vec![
        name(c).into(),
        str_at(c, "/spec/schedule").into(),
        or(str_at(c, "/spec/timeZone"), "<none>").into(),
        suspend.into(),
        len_at(c, "/status/active").into(),
        last.into(),
        age(c, now),
        names,
        images,
        format_selector(at(template, "/selector")).into(),
    ]
}

pub(super) fn hpa(h: &Value) -> Vec<Value> {
    let target = at(h, "/spec/scaleTargetRef");
    let min = at(h, "/spec/minReplicas")
        .as_i64()
        .map_or_else(|| "<unset>".into(), |m| m.to_string());
    vec![
        format!("{}/{}", str_at(target, "/kind"), str_at(target, "/name")).into(),
        hpa_targets(h).into(),
        min.into(),
        int_at(h, "/spec/maxReplicas").into(),
        int_at(h, "/status/currentReplicas").into(),
    ]
}

/// printers.go's `formatHPAMetrics` over the autoscaling/v2 shape (`current/target` per metric,
/// two at most); an autoscaling/v1 object's CPU target prints as the v2 metric it converts to.
pub(super) fn hpa_targets(h: &Value) -> String {
    let specs = list(h, "/spec/metrics");
    if specs.is_empty() {
        return match at(h, "/spec/targetCPUUtilizationPercentage").as_i64() {
            Some(target) => {
                let current = at(h, "/status/currentCPUUtilizationPercentage").as_i64();
                format!(
                    "cpu: {}/{target}%",
                    current.map_or_else(|| "<unknown>".into(), |c| format!("{c}%"))
                )
            }
            None => "<none>".into(),
        };
    }
    const MAX: usize = 2;
    let statuses = list(h, "/status/currentMetrics");
    let unknown = || "<unknown>".to_string();
    let shown: Vec<String> = specs
        .iter()
        .take(MAX)
        .enumerate()
        .map(|(i, spec)| {
            let key = match str_at(spec, "/type") {
                "External" => "external",
                "Object" => "object",
                "Pods" => "pods",
                "Resource" => "resource",
                "ContainerResource" => "containerResource",
                _ => return "<unknown type>".into(),
            };
            let source = at(spec, &format!("/{key}"));
            let status = statuses
                .get(i)
                .map_or(&Value::Null, |s| at(s, &format!("/{key}")));
            let target = at(source, "/target");
            let avg_target = at(target, "/averageValue");
            let current = |field: &str| {
                if status.is_null() {
                    unknown()
                } else {
                    quantity(at(status, &format!("/current/{field}")), "<nil>")
                }
            };
            match key {
                "pods" => format!(
                    "{}/{}",
                    current("averageValue"),
                    quantity(avg_target, "<nil>")
                ),
                "external" | "object" if !avg_target.is_null() => {
                    let cur = at(status, "/current/averageValue");
                    let cur = quantity(cur, "<unknown>");
                    format!("{cur}/{} (avg)", quantity(avg_target, "<nil>"))
                }
                "external" | "object" => {
                    format!(
                        "{}/{}",
                        current("value"),
                        quantity(at(target, "/value"), "<nil>")
                    )
                }
                _ => {
                    let name = str_at(source, "/name");
                    if !avg_target.is_null() {
                        return format!(
                            "{name}: {}/{}",
                            current("averageValue"),
                            quantity(avg_target, "<nil>")
                        );
                    }
                    let percent = |v: &Value| v.as_i64().map(|p| format!("{p}%"));
                    let cur =
                        percent(at(status, "/current/averageUtilization")).unwrap_or_else(unknown);
                    let want = percent(at(target, "/averageUtilization"))
                        .unwrap_or_else(|| "<auto>".into());
                    format!("{name}: {cur}/{want}")
                }
            }
        })
        .collect();
    let ret = shown.join(", ");
    if specs.len() > MAX {
        format!("{ret} + {} more...", specs.len() - MAX)
    } else {
        ret
    }
}

pub(super) fn pdb(p: &Value) -> Vec<Value> {
    vec![
        int_or_string(at(p, "/spec/minAvailable")).into(),
        int_or_string(at(p, "/spec/maxUnavailable")).into(),
        int_at(p, "/status/disruptionsAllowed").into(),
    ]
}

/// `kind.group/name` of the controlling owner, lower-cased, or `<none>`.
pub(super) fn controller_of(obj: &Value) -> String {
    let owners = list(obj, "/metadata/ownerReferences");
    let Some(owner) = owners.iter().find(|o| bool_at(o, "/controller")) else {
        return "<none>".into();
    };
    let api_version = str_at(owner, "/apiVersion");
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    let (kind, name) = (str_at(owner, "/kind"), str_at(owner, "/name"));
    match (group, kind) {
        ("", "") => name.into(),
        ("", kind) => format!("{}/{name}", kind.to_lowercase()),
        (group, kind) => format!("{}.{}/{name}", kind.to_lowercase(), group.to_lowercase()),
    }
}
