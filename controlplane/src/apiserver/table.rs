//! Server-side printing: the `meta.k8s.io/v1` Table that `kubectl get` renders, per kind.
//!
//! kube-apiserver builds these tables itself (`pkg/printers/internalversion/printers.go`), and
//! kubectl only lays them out, so the columns and cell values here follow that file: same column
//! names, types and priorities, same strings (`Init:0/1`, `80:30080/TCP`, `<none>`, `3 (5m ago)`).
//! Like kube-apiserver, every row carries the wide cells too; kubectl hides the priority-1 columns
//! unless asked for `-o wide`. Start at [`columns`] and [`cells`]; each kind has one helper that
//! reads the object as served (JSON), tolerating any missing field.

use std::collections::BTreeSet;

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

/// One column of a Table (a `TableColumnDefinition`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Column {
    /// Human-readable name; kubectl upper-cases it for the header.
    pub name: &'static str,
    /// OpenAPI type of the column: `string`, `integer`, `boolean` or `date`.
    pub type_: &'static str,
    /// OpenAPI format; `name` marks the column that holds the object's name.
    pub format: &'static str,
    /// What the column shows.
    pub description: &'static str,
    /// 0 for the default view, 1 for columns that only `-o wide` shows.
    pub priority: i32,
}

const NAME_DOC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const AGE_DOC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// A default-view column.
const fn col(name: &'static str, type_: &'static str, description: &'static str) -> Column {
    Column {
        name,
        type_,
        format: "",
        description,
        priority: 0,
    }
}

/// A string column only `-o wide` shows.
const fn wide(name: &'static str, description: &'static str) -> Column {
    Column {
        name,
        type_: "string",
        format: "",
        description,
        priority: 1,
    }
}

const NAME: Column = Column {
    name: "Name",
    type_: "string",
    format: "name",
    description: NAME_DOC,
    priority: 0,
};
const AGE: Column = col("Age", "string", AGE_DOC);
const CONTAINERS: Column = wide("Containers", "Names of each container in the template.");
const IMAGES: Column = wide(
    "Images",
    "Images referenced by each container in the template.",
);
const JOB_SELECTOR: Column = wide(
    "Selector",
    "A label query over pods that should match the pod count.",
);

/// The column definitions kube-apiserver uses for `kind`; `Name` and `Age` for kinds it has no
/// printer for (what a custom resource without `additionalPrinterColumns` gets).
#[rustfmt::skip]
pub fn columns(kind: &str) -> &'static [Column] {
    match kind {
        "Pod" => const { &[
            NAME,
            col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
            col("Status", "string", "The aggregate status of the containers in this pod."),
            col("Restarts", "string", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
            AGE,
            wide("IP", "podIP address allocated to the pod."),
            wide("Node", "NodeName indicates in which node this pod is scheduled."),
            wide("Nominated Node", "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods."),
            wide("Readiness Gates", "If specified, all readiness gates will be evaluated for pod readiness."),
        ] },
        "Namespace" => const { &[NAME, col("Status", "string", "The status of the namespace"), AGE] },
        "Node" => const { &[
            NAME,
            col("Status", "string", "The status of the node"),
            col("Roles", "string", "The roles of the node"),
            AGE,
            col("Version", "string", "Kubelet Version reported by the node."),
            wide("Internal-IP", "List of addresses reachable to the node."),
            wide("External-IP", "List of addresses reachable to the node."),
            wide("OS-Image", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."),
            wide("Kernel-Version", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."),
            wide("Container-Runtime", "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2)."),
        ] },
        "Service" => const { &[
            NAME,
            col("Type", "string", "type determines how the Service is exposed."),
            col("Cluster-IP", "string", "clusterIP is the IP address of the service and is usually assigned randomly."),
            col("External-IP", "string", "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
            col("Port(s)", "string", "The list of ports that are exposed by this service."),
            AGE,
            wide("Selector", "Route service traffic to pods with label keys and values matching this selector."),
        ] },
        "Endpoints" => const { &[NAME, col("Endpoints", "string", "The set of all endpoints is the union of all subsets."), AGE] },
        "EndpointSlice" => const { &[
            NAME,
            col("AddressType", "string", "addressType specifies the type of address carried by this EndpointSlice."),
            col("Ports", "string", "ports specifies the list of network ports exposed by each endpoint in this slice."),
            col("Endpoints", "string", "endpoints is a list of unique endpoints in this slice."),
            AGE,
        ] },
        "ConfigMap" => const { &[NAME, col("Data", "string", "Data contains the configuration data."), AGE] },
        "Secret" => const { &[
            NAME,
            col("Type", "string", "Used to facilitate programmatic handling of secret data."),
            col("Data", "string", "Data contains the secret data."),
            AGE,
        ] },
        // The Secrets column went upstream (kubernetes#117160): nothing has filled the field
        // since 1.24, so the count misled more than it told.
        "ServiceAccount" => const { &[NAME, AGE] },
        "Deployment" => const { &[
            NAME,
            col("Ready", "string", "Number of the pod with ready state"),
            col("Up-to-date", "string", "Total number of non-terminating pods targeted by this deployment that have the desired template spec."),
            col("Available", "string", "Total number of available non-terminating pods (ready for at least minReadySeconds) targeted by this deployment."),
            AGE,
            CONTAINERS,
            IMAGES,
            wide("Selector", "Label selector for pods."),
        ] },
        "ReplicaSet" | "ReplicationController" => const { &[
            NAME,
            col("Desired", "integer", "Replicas is the number of desired replicas."),
            col("Current", "integer", "Replicas is the most recently observed number of replicas."),
            col("Ready", "integer", "The number of ready replicas."),
            AGE,
            CONTAINERS,
            IMAGES,
            wide("Selector", "Selector is a label query over pods that should match the replica count."),
        ] },
        "StatefulSet" => const { &[NAME, col("Ready", "string", "Number of the pod with ready state"), AGE, CONTAINERS, IMAGES] },
        "DaemonSet" => const { &[
            NAME,
            col("Desired", "integer", "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod)."),
            col("Current", "integer", "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod."),
            col("Ready", "integer", "numberReady is the number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition."),
            col("Up-to-date", "integer", "The total number of nodes that are running updated daemon pod"),
            col("Available", "integer", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)"),
            col("Node Selector", "string", "NodeSelector is a selector which must be true for the pod to fit on a node."),
            AGE,
            CONTAINERS,
            IMAGES,
            wide("Selector", "A label query over pods that are managed by the daemon set."),
        ] },
        "Job" => const { &[
            NAME,
            col("Status", "string", "Status of the job."),
            col("Completions", "string", "The number of pods which reached phase Succeeded."),
            col("Duration", "string", "Time required to complete the job."),
            AGE,
            CONTAINERS,
            IMAGES,
            JOB_SELECTOR,
        ] },
        "CronJob" => const { &[
            NAME,
            col("Schedule", "string", "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron."),
            col("Timezone", "string", "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones."),
            col("Suspend", "boolean", "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions."),
            col("Active", "integer", "A list of pointers to currently running jobs."),
            col("Last Schedule", "string", "Information when was the last time the job was successfully scheduled."),
            AGE,
            CONTAINERS,
            IMAGES,
            JOB_SELECTOR,
        ] },
        "HorizontalPodAutoscaler" => const { &[
            NAME,
            col("Reference", "string", "scaleTargetRef points to the target resource to scale."),
            col("Targets", "string", "metrics contains the specifications for which to use to calculate the desired replica count."),
            col("MinPods", "string", "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down."),
            col("MaxPods", "string", "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up."),
            col("Replicas", "string", "currentReplicas is current number of replicas of pods managed by this autoscaler, as last seen by the autoscaler."),
            AGE,
        ] },
        "PersistentVolumeClaim" => const { &[
            NAME,
            col("Status", "string", "phase represents the current phase of PersistentVolumeClaim."),
            col("Volume", "string", "volumeName is the binding reference to the PersistentVolume backing this claim."),
            col("Capacity", "string", "capacity represents the actual resources of the underlying volume."),
            col("Access Modes", "string", "accessModes contains the actual access modes the volume backing the PVC has."),
            col("StorageClass", "string", "StorageClass of the pvc"),
            col("VolumeAttributesClass", "string", "VolumeAttributesClass of the pvc"),
            AGE,
            wide("VolumeMode", "volumeMode defines what type of volume is required by the claim."),
        ] },
        "PersistentVolume" => const { &[
            NAME,
            col("Capacity", "string", "capacity is the description of the persistent volume's resources and capacity."),
            col("Access Modes", "string", "accessModes contains all ways the volume can be mounted."),
            col("Reclaim Policy", "string", "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim."),
            col("Status", "string", "phase indicates if a volume is available, bound to a claim, or released by a claim."),
            col("Claim", "string", "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim."),
            col("StorageClass", "string", "StorageClass of the pv"),
            col("VolumeAttributesClass", "string", "VolumeAttributesClass of the pv"),
            col("Reason", "string", "reason is a brief CamelCase string that describes any failure and is meant for machine parsing and tidy display in the CLI."),
            AGE,
            wide("VolumeMode", "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state."),
        ] },
        "StorageClass" => const { &[
            NAME,
            col("Provisioner", "string", "provisioner indicates the type of the provisioner."),
            col("ReclaimPolicy", "string", "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage class."),
            col("VolumeBindingMode", "string", "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound."),
            col("AllowVolumeExpansion", "string", "allowVolumeExpansion shows whether the storage class allow volume expand."),
            AGE,
        ] },
        // Events lead with Last Seen and keep their name for `-o wide`, as printers.go does.
        "Event" => const { &[
            col("Last Seen", "string", "The time at which the most recent occurrence of this event was recorded."),
            col("Type", "string", "Type of this event (Normal, Warning), new types could be added in the future"),
            col("Reason", "string", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
            col("Object", "string", "The object that this event is about."),
            wide("Subobject", "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement."),
            wide("Source", "The component reporting this event. Should be a short machine understandable string."),
            col("Message", "string", "A human-readable description of the status of this operation."),
            wide("First Seen", "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)"),
            wide("Count", "The number of times this event has occurred."),
            Column { priority: 1, ..NAME },
        ] },
        "Lease" => const { &[NAME, col("Holder", "string", "holderIdentity contains the identity of the holder of a current lease."), AGE] },
        "PodDisruptionBudget" => const { &[
            NAME,
            col("Min Available", "string", "The minimum number of pods that must be available."),
            col("Max Unavailable", "string", "The maximum number of pods that may be unavailable."),
            col("Allowed Disruptions", "integer", "Calculated number of pods that may be disrupted at this time."),
            AGE,
        ] },
        "ControllerRevision" => const { &[
            NAME,
            col("Controller", "string", "Controller of the object"),
            col("Revision", "string", "Revision indicates the revision of the state represented by Data."),
            AGE,
        ] },
        _ => const { &[NAME, col("Age", "date", AGE_DOC)] },
    }
}

/// One row's cells for `obj` (as served), in the order of [`columns`], wide cells included.
/// Ages are measured up to `now`.
pub fn cells(kind: &str, obj: &Value, now: Timestamp) -> Vec<Value> {
    match kind {
        "Pod" => pod(obj, now),
        "Namespace" => row(obj, now, vec![str_at(obj, "/status/phase").into()]),
        "Node" => node(obj, now),
        "Service" => service(obj, now),
        "Endpoints" => row(obj, now, vec![endpoints(obj).into()]),
        "EndpointSlice" => row(obj, now, endpoint_slice(obj)),
        "ConfigMap" => row(
            obj,
            now,
            vec![(len_at(obj, "/data") + len_at(obj, "/binaryData")).into()],
        ),
        "Secret" => row(
            obj,
            now,
            vec![str_at(obj, "/type").into(), len_at(obj, "/data").into()],
        ),
        "Deployment" => deployment(obj, now),
        "ReplicaSet" => replica_set(obj, now, format_selector),
        "ReplicationController" => replica_set(obj, now, format_labels),
        "StatefulSet" => stateful_set(obj, now),
        "DaemonSet" => daemon_set(obj, now),
        "Job" => job(obj, now),
        "CronJob" => cron_job(obj, now),
        "HorizontalPodAutoscaler" => row(obj, now, hpa(obj)),
        "PersistentVolumeClaim" => pvc(obj, now),
        "PersistentVolume" => pv(obj, now),
        "StorageClass" => storage_class(obj, now),
        "Event" => event(obj, now),
        "Lease" => row(obj, now, vec![str_at(obj, "/spec/holderIdentity").into()]),
        "PodDisruptionBudget" => row(obj, now, pdb(obj)),
        "ControllerRevision" => row(
            obj,
            now,
            vec![controller_of(obj).into(), int_at(obj, "/revision").into()],
        ),
        _ => row(obj, now, Vec::new()),
    }
}

/// The row of a kind whose table is Name, `middle`, Age.
fn row(obj: &Value, now: Timestamp, middle: Vec<Value>) -> Vec<Value> {
    let mut cells = Vec::with_capacity(middle.len() + 2);
    cells.push(name(obj).into());
    cells.extend(middle);
    cells.push(age(obj, now));
    cells
}

/// kubectl's `HumanDuration` (`k8s.io/apimachinery/pkg/util/duration`): about two significant
/// figures, `0s` for clock skew under two seconds, `<invalid>` for anything further negative.
pub fn human_duration(d: SignedDuration) -> String {
    let secs = d.as_secs();
    if secs < -1 {
        return "<invalid>".into();
    } else if secs < 0 {
        return "0s".into();
    } else if secs < 60 * 2 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        return match secs % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        };
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = secs / 3600;
    let days = hours / 24;
    if hours < 8 {
        match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        }
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        match hours % 24 {
            0 => format!("{days}d"),
            h => format!("{days}d{h}h"),
        }
    } else if hours < 24 * 365 * 2 {
        format!("{days}d")
    } else if hours < 24 * 365 * 8 {
        match days % 365 {
            0 => format!("{}y", days / 365),
            dy => format!("{}y{dy}d", days / 365),
        }
    } else {
        format!("{}y", days / 365)
    }
}

// --- field access: every getter yields a neutral value for a missing field ---

fn at<'a>(v: &'a Value, pointer: &str) -> &'a Value {
    v.pointer(pointer).unwrap_or(&Value::Null)
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    at(v, pointer).as_str().unwrap_or("")
}

fn int_at(v: &Value, pointer: &str) -> i64 {
    at(v, pointer).as_i64().unwrap_or(0)
}

fn bool_at(v: &Value, pointer: &str) -> bool {
    at(v, pointer).as_bool().unwrap_or(false)
}

fn list<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    at(v, pointer).as_array().map_or(&[], Vec::as_slice)
}

/// Number of entries of a map or list field.
fn len_at(v: &Value, pointer: &str) -> i64 {
    let n = match at(v, pointer) {
        Value::Object(m) => m.len(),
        Value::Array(a) => a.len(),
        _ => 0,
    };
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn time_at(v: &Value, pointer: &str) -> Option<Timestamp> {
    str_at(v, pointer).parse().ok()
}

fn or<'a>(s: &'a str, default: &'a str) -> &'a str {
    if s.is_empty() { default } else { s }
}

fn name(obj: &Value) -> &str {
    str_at(obj, "/metadata/name")
}

/// printers.go's `translateTimestampSince`.
fn since(t: Option<Timestamp>, now: Timestamp) -> String {
    t.map_or_else(
        || "<unknown>".into(),
        |t| human_duration(now.duration_since(t)),
    )
}

fn age(obj: &Value, now: Timestamp) -> Value {
    since(time_at(obj, "/metadata/creationTimestamp"), now).into()
}

fn deleting(obj: &Value) -> bool {
    !at(obj, "/metadata/deletionTimestamp").is_null()
}

/// A `resource.Quantity` as its canonical string (the form the served JSON already holds), or
/// `missing`: Go prints a nil pointer as `<nil>` and a zero value as `0`.
fn quantity(v: &Value, missing: &str) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => missing.into(),
    }
}

/// An `IntOrString` as printed, `N/A` when unset.
fn int_or_string(v: &Value) -> String {
    match v {
        Value::Null => "N/A".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn condition_true(obj: &Value, pointer: &str, type_: &str) -> bool {
    list(obj, pointer)
        .iter()
        .find(|c| str_at(c, "/type") == type_)
        .is_some_and(|c| str_at(c, "/status") == "True")
}

/// `labels.FormatLabels`: sorted `k=v` pairs, `<none>` when empty.
fn format_labels(map: &Value) -> String {
    let mut pairs: Vec<String> = map
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    pairs.sort();
    if pairs.is_empty() {
        "<none>".into()
    } else {
        pairs.join(",")
    }
}

/// `metav1.LabelSelectorAsSelector(sel).String()`, or `None` when the selector is invalid.
fn selector_string(sel: &Value) -> Option<String> {
    let mut reqs: Vec<(&str, String)> = Vec::new();
    for (k, v) in sel
        .get("matchLabels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        reqs.push((k, format!("{k}={}", v.as_str().unwrap_or(""))));
    }
    for e in list(sel, "/matchExpressions") {
        let key = str_at(e, "/key");
        let mut values: Vec<&str> = list(e, "/values")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        values.sort_unstable();
        let req = match str_at(e, "/operator") {
            "In" if !values.is_empty() => format!("{key} in ({})", values.join(",")),
            "NotIn" if !values.is_empty() => format!("{key} notin ({})", values.join(",")),
            "Exists" if values.is_empty() => key.to_string(),
            "DoesNotExist" if values.is_empty() => format!("!{key}"),
            _ => return None,
        };
        reqs.push((key, req));
    }
    reqs.sort_by(|a, b| a.0.cmp(b.0));
    Some(
        reqs.into_iter()
            .map(|(_, r)| r)
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// `metav1.FormatLabelSelector`: `<none>` when empty, `<error>` when invalid.
fn format_selector(sel: &Value) -> String {
    match selector_string(sel) {
        None => "<error>".into(),
        Some(s) if s.is_empty() => "<none>".into(),
        Some(s) => s,
    }
}

/// printers.go's `layoutContainerCells`: container names and images, comma-separated.
fn containers(pod_spec: &Value) -> [Value; 2] {
    let cs = list(pod_spec, "/containers");
    let names: Vec<&str> = cs.iter().map(|c| str_at(c, "/name")).collect();
    let images: Vec<&str> = cs.iter().map(|c| str_at(c, "/image")).collect();
    [names.join(",").into(), images.join(",").into()]
}

/// `a + N more...` after `max` entries, as the endpoint columns print lists.
fn list_with_more(items: &[String], count: usize, max: usize, empty: &str) -> String {
    let ret = items.join(",");
    if count > max {
        format!("{ret} + {} more...", count - max)
    } else if ret.is_empty() {
        empty.into()
    } else {
        ret
    }
}

// --- one helper per kind: a whole row, or (with `row`) the cells between Name and Age ---

/// printers.go's `printPod`: the STATUS column is the last non-empty reason among init
/// containers, then containers, then deletion.
fn pod(p: &Value, now: Timestamp) -> Vec<Value> {
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

fn node(n: &Value, now: Timestamp) -> Vec<Value> {
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

fn service(s: &Value, now: Timestamp) -> Vec<Value> {
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
fn endpoints(e: &Value) -> String {
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

fn endpoint_slice(s: &Value) -> Vec<Value> {
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

fn deployment(d: &Value, now: Timestamp) -> Vec<Value> {
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
fn replica_set(r: &Value, now: Timestamp, selector: fn(&Value) -> String) -> Vec<Value> {
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

fn stateful_set(s: &Value, now: Timestamp) -> Vec<Value> {
    let [names, images] = containers(at(s, "/spec/template/spec"));
    let desired = at(s, "/spec/replicas").as_i64().unwrap_or(1);
    let ready = format!("{}/{desired}", int_at(s, "/status/readyReplicas"));
    vec![name(s).into(), ready.into(), age(s, now), names, images]
}

fn daemon_set(d: &Value, now: Timestamp) -> Vec<Value> {
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

fn job(j: &Value, now: Timestamp) -> Vec<Value> {
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

fn cron_job(c: &Value, now: Timestamp) -> Vec<Value> {
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

fn hpa(h: &Value) -> Vec<Value> {
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
fn hpa_targets(h: &Value) -> String {
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

/// `helper.GetAccessModesAsString`: abbreviated, in a fixed order.
fn access_modes(modes: &[Value]) -> String {
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
fn storage_class_of(obj: &Value) -> &str {
    let annotation = at(obj, "/metadata/annotations")
        .get("volume.beta.kubernetes.io/storage-class")
        .and_then(Value::as_str);
    annotation.unwrap_or_else(|| str_at(obj, "/spec/storageClassName"))
}

fn pvc(c: &Value, now: Timestamp) -> Vec<Value> {
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

fn pv(v: &Value, now: Timestamp) -> Vec<Value> {
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

fn storage_class(s: &Value, now: Timestamp) -> Vec<Value> {
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
fn event(e: &Value, now: Timestamp) -> Vec<Value> {
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

fn pdb(p: &Value) -> Vec<Value> {
    vec![
        int_or_string(at(p, "/spec/minAvailable")).into(),
        int_or_string(at(p, "/spec/maxUnavailable")).into(),
        int_at(p, "/status/disruptionsAllowed").into(),
    ]
}

/// `kind.group/name` of the controlling owner, lower-cased, or `<none>`.
fn controller_of(obj: &Value) -> String {
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const KINDS: &[&str] = &[
        "Pod",
        "Namespace",
        "Node",
        "Service",
        "Endpoints",
        "EndpointSlice",
        "ConfigMap",
        "Secret",
        "ServiceAccount",
        "Deployment",
        "ReplicaSet",
        "ReplicationController",
        "StatefulSet",
        "DaemonSet",
        "Job",
        "CronJob",
        "HorizontalPodAutoscaler",
        "PersistentVolumeClaim",
        "PersistentVolume",
        "StorageClass",
        "Event",
        "Lease",
        "PodDisruptionBudget",
        "ControllerRevision",
        "Widget",
    ];

    fn now() -> Timestamp {
        "2025-01-01T12:00:00Z".parse().unwrap()
    }

    /// An object named `web`, created five hours before [`now`], with `extra` merged in.
    fn object(extra: Value) -> Value {
        let mut obj =
            json!({"metadata": {"name": "web", "creationTimestamp": "2025-01-01T07:00:00Z"}});
        for (k, v) in extra.as_object().unwrap() {
            obj[k] = v.clone();
        }
        obj
    }

    /// The cell under `column` (by name) of `obj`'s row.
    fn cell(kind: &str, obj: &Value, column: &str) -> Value {
        let i = columns(kind).iter().position(|c| c.name == column).unwrap();
        cells(kind, obj, now())[i].clone()
    }

    fn secs(s: i64) -> String {
        human_duration(SignedDuration::from_secs(s))
    }

    fn pod_status(status: Value) -> Value {
        cell(
            "Pod",
            &object(json!({"spec": {"containers": [{"name": "app"}]}, "status": status})),
            "Status",
        )
    }

    #[test]
    fn human_duration_matches_apimachinery_boundaries() {
        let cases = [
            (-2, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (45, "45s"),
            (119, "119s"),
            (120, "2m"),
            (330, "5m30s"),
            (599, "9m59s"),
            (600, "10m"),
            (179 * 60 + 59, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 30 * 60, "3h30m"),
            (8 * 3600 - 1, "7h59m"),
            (8 * 3600, "8h"),
            (48 * 3600 - 1, "47h"),
            (48 * 3600, "2d"),
            (51 * 3600, "2d3h"),
            (8 * 86400, "8d"),
            (730 * 86400 - 1, "729d"),
            (730 * 86400, "2y"),
            (731 * 86400, "2y1d"),
            (8 * 365 * 86400, "8y"),
            (20 * 365 * 86400, "20y"),
        ];
        for (s, want) in cases {
            assert_eq!(secs(s), want, "{s}s");
        }
        assert_eq!(human_duration(SignedDuration::from_millis(-1500)), "0s");
    }

    #[test]
    fn every_kind_renders_one_cell_per_column_even_from_partial_objects() {
        for kind in KINDS {
            let cols = columns(kind);
            assert_eq!(
                cols.iter().filter(|c| c.format == "name").count(),
                1,
                "{kind}"
            );
            for obj in [
                json!({}),
                json!(null),
                json!("x"),
                json!({"spec": 5, "status": []}),
                object(json!({})),
            ] {
                assert_eq!(cells(kind, &obj, now()).len(), cols.len(), "{kind} {obj}");
            }
        }
        assert_eq!(
            cells("Widget", &object(json!({})), now()),
            [json!("web"), json!("5h")]
        );
        assert_eq!(cell("Widget", &json!({}), "Age"), "<unknown>");
        assert_eq!(columns("Pod")[0].name, "Name");
        assert_eq!(columns("Pod").iter().filter(|c| c.priority == 1).count(), 4);
    }

    #[test]
    fn pod_status_follows_the_container_states() {
        let running = json!({"ready": true, "restartCount": 0, "state": {"running": {}}});
        assert_eq!(
            pod_status(json!({"phase": "Running", "containerStatuses": [running]})),
            "Running"
        );
        let waiting = |reason: &str| json!({"phase": "Pending", "containerStatuses": [{"state": {"waiting": {"reason": reason}}}]});
        for reason in [
            "CrashLoopBackOff",
            "ErrImagePull",
            "ImagePullBackOff",
            "ContainerCreating",
        ] {
            assert_eq!(pod_status(waiting(reason)), reason);
        }
        let terminated = |t: Value| json!({"phase": "Failed", "containerStatuses": [{"state": {"terminated": t}}]});
        assert_eq!(
            pod_status(terminated(json!({"reason": "OOMKilled", "exitCode": 137}))),
            "OOMKilled"
        );
        assert_eq!(
            pod_status(terminated(json!({"reason": "Completed", "exitCode": 0}))),
            "Completed"
        );
        assert_eq!(
            pod_status(terminated(json!({"exitCode": 0, "signal": 9}))),
            "Signal:9"
        );
        assert_eq!(pod_status(terminated(json!({"exitCode": 3}))), "ExitCode:3");
        assert_eq!(pod_status(json!({"phase": "Pending"})), "Pending");
        assert_eq!(
            pod_status(json!({"phase": "Failed", "reason": "Evicted"})),
            "Evicted"
        );
    }

    #[test]
    fn pod_status_shows_completed_sidecar_peers_as_running_or_not_ready() {
        let statuses = json!([
            {"state": {"terminated": {"reason": "Completed"}}},
            {"ready": true, "state": {"running": {}}},
        ]);
        let status = |ready: &str| {
            pod_status(json!({"phase": "Running", "containerStatuses": statuses,
            "conditions": [{"type": "Ready", "status": ready}]}))
        };
        assert_eq!(status("True"), "Running");
        assert_eq!(status("False"), "NotReady");
    }

    #[test]
    fn pod_status_reports_init_progress_and_failures() {
        let pod = |init_status: Value| {
            let spec =
                json!({"initContainers": [{"name": "init"}], "containers": [{"name": "app"}]});
            let status = json!({"phase": "Pending", "initContainerStatuses": [init_status],
                "containerStatuses": [{"name": "app", "state": {"waiting": {"reason": "PodInitializing"}}}]});
            cell(
                "Pod",
                &object(json!({"spec": spec, "status": status})),
                "Status",
            )
        };
        assert_eq!(
            pod(json!({"name": "init", "state": {"running": {}}})),
            "Init:0/1"
        );
        assert_eq!(
            pod(json!({"name": "init", "state": {"waiting": {"reason": "PodInitializing"}}})),
            "Init:0/1"
        );
        assert_eq!(
            pod(
                json!({"name": "init", "state": {"terminated": {"reason": "Error", "exitCode": 1}}})
            ),
            "Init:Error"
        );
        assert_eq!(
            pod(json!({"name": "init", "state": {"waiting": {"reason": "CrashLoopBackOff"}}})),
            "Init:CrashLoopBackOff"
        );
        assert_eq!(
            pod(json!({"name": "init", "state": {"terminated": {"exitCode": 2}}})),
            "Init:ExitCode:2"
        );
        // A finished init container hands over to the app containers.
        assert_eq!(
            pod(
                json!({"name": "init", "state": {"terminated": {"reason": "Completed", "exitCode": 0}}})
            ),
            "PodInitializing"
        );
    }

    #[test]
    fn pod_status_is_terminating_while_deleting_a_live_pod() {
        let mut pod = object(json!({"status": {"phase": "Running"}}));
        pod["metadata"]["deletionTimestamp"] = json!("2025-01-01T11:59:00Z");
        assert_eq!(cell("Pod", &pod, "Status"), "Terminating");
        pod["status"]["phase"] = json!("Succeeded");
        assert_eq!(cell("Pod", &pod, "Status"), "Succeeded");
        pod["status"] = json!({"phase": "Running", "reason": "NodeLost"});
        assert_eq!(cell("Pod", &pod, "Status"), "Unknown");
    }

    #[test]
    fn pod_row_counts_ready_containers_and_recent_restarts() {
        let pod = object(json!({
            "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "node-1",
                "readinessGates": [{"conditionType": "example.com/lb"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.5", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 2, "state": {"running": {}},
                    "lastState": {"terminated": {"finishedAt": "2025-01-01T11:55:00Z"}}},
                {"name": "b", "ready": false, "restartCount": 1, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"finishedAt": "2025-01-01T11:50:00Z"}}},
            ]},
        }));
        let row = cells("Pod", &pod, now());
        assert_eq!(
            row,
            [
                json!("web"),
                json!("1/2"),
                json!("CrashLoopBackOff"),
                json!("3 (5m ago)"),
                json!("5h"),
                json!("10.0.0.5"),
                json!("node-1"),
                json!("<none>"),
                json!("0/1"),
            ]
        );
        let fresh = object(
            json!({"spec": {"containers": [{"name": "a"}]}, "status": {"containerStatuses": [{"restartCount": 0}]}}),
        );
        assert_eq!(cell("Pod", &fresh, "Restarts"), "0");
        assert_eq!(cell("Pod", &fresh, "IP"), "<none>");
    }

    #[test]
    fn pod_counts_started_sidecars_as_containers() {
        let pod = object(json!({
            "spec": {"initContainers": [{"name": "proxy", "restartPolicy": "Always"}], "containers": [{"name": "app"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Initialized", "status": "True"}],
                "initContainerStatuses": [{"name": "proxy", "started": true, "ready": true, "state": {"running": {}}}],
                "containerStatuses": [{"name": "app", "ready": true, "state": {"running": {}}}]},
        }));
        assert_eq!(cell("Pod", &pod, "Ready"), "2/2");
        assert_eq!(cell("Pod", &pod, "Status"), "Running");
    }

    #[test]
    fn deployment_row_shows_ready_of_desired_and_the_template() {
        let d = object(json!({
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"},
                    "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "edge"]}]},
                "template": {"spec": {"containers": [{"name": "web", "image": "nginx:1"}, {"name": "log", "image": "busybox"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
        }));
        assert_eq!(
            cells("Deployment", &d, now()),
            [
                json!("web"),
                json!("2/3"),
                json!(3),
                json!(2),
                json!("5h"),
                json!("web,log"),
                json!("nginx:1,busybox"),
                json!("app=web,tier in (edge,front)"),
            ]
        );
        let bad = object(
            json!({"spec": {"selector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}}),
        );
        assert_eq!(cell("Deployment", &bad, "Selector"), "<invalid>");
        assert_eq!(cell("Deployment", &bad, "Ready"), "0/1");
        assert_eq!(cell("ReplicaSet", &object(json!({})), "Selector"), "<none>");
        let rc = object(json!({"spec": {"replicas": 2, "selector": {"b": "2", "a": "1"}}}));
        assert_eq!(cell("ReplicationController", &rc, "Selector"), "a=1,b=2");
        assert_eq!(cell("ReplicationController", &rc, "Desired"), 2);
    }

    #[test]
    fn service_ports_show_node_ports() {
        let svc = object(json!({
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
                "selector": {"app": "web"}},
        }));
        assert_eq!(
            cells("Service", &svc, now()),
            [
                json!("web"),
                json!("NodePort"),
                json!("10.96.0.10"),
                json!("<none>"),
                json!("80:30080/TCP,53/UDP"),
                json!("5h"),
                json!("app=web"),
            ]
        );
    }

    #[test]
    fn service_external_ip_depends_on_type() {
        let svc = |spec: Value, status: Value| {
            cell(
                "Service",
                &object(json!({"spec": spec, "status": status})),
                "External-IP",
            )
        };
        assert_eq!(svc(json!({"type": "LoadBalancer"}), json!({})), "<pending>");
        let ingress = json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}, {"hostname": "lb.example.com"}]}});
        assert_eq!(
            svc(
                json!({"type": "LoadBalancer", "externalIPs": ["198.51.100.1"]}),
                ingress
            ),
            "203.0.113.9,lb.example.com,198.51.100.1"
        );
        assert_eq!(
            svc(json!({"externalIPs": ["198.51.100.1"]}), json!({})),
            "198.51.100.1"
        );
        assert_eq!(
            svc(
                json!({"type": "ExternalName", "externalName": "db.example.com"}),
                json!({})
            ),
            "db.example.com"
        );
        assert_eq!(cell("Service", &object(json!({})), "Port(s)"), "<none>");
    }

    #[test]
    fn node_status_adds_scheduling_disabled_and_roles() {
        let node = object(json!({
            "metadata": {"name": "n1", "creationTimestamp": "2025-01-01T07:00:00Z",
                "labels": {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/": "x", "kubernetes.io/role": "edge"}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
                "addresses": [{"type": "InternalIP", "address": "192.168.1.2"}],
                "nodeInfo": {"kubeletVersion": "v1.34.0", "osImage": "wasm"}},
        }));
        assert_eq!(
            cells("Node", &node, now()),
            [
                json!("n1"),
                json!("Ready,SchedulingDisabled"),
                json!("control-plane,edge"),
                json!("5h"),
                json!("v1.34.0"),
                json!("192.168.1.2"),
                json!("<none>"),
                json!("wasm"),
                json!("<unknown>"),
                json!("<unknown>"),
            ]
        );
        let not_ready =
            object(json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}));
        assert_eq!(cell("Node", &not_ready, "Status"), "NotReady");
        assert_eq!(cell("Node", &object(json!({})), "Status"), "Unknown");
        assert_eq!(cell("Node", &object(json!({})), "Roles"), "<none>");
    }

    #[test]
    fn hpa_targets_pair_current_with_target() {
        let hpa = |metrics: Value, current: Value| {
            let obj = object(json!({
                "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 1, "maxReplicas": 5, "metrics": metrics},
                "status": {"currentReplicas": 2, "currentMetrics": current},
            }));
            cells("HorizontalPodAutoscaler", &obj, now())
        };
        let cpu = json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}});
        let mem = json!({"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}});
        let cpu_now = json!({"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 73, "averageValue": "73m"}}});
        let mem_now = json!({"type": "Resource", "resource": {"name": "memory", "current": {"averageValue": "10Mi"}}});
        let row = hpa(json!([cpu, mem]), json!([cpu_now, mem_now]));
        assert_eq!(
            row,
            [
                json!("web"),
                json!("Deployment/web"),
                json!("cpu: 73%/50%, memory: 10Mi/100Mi"),
                json!("1"),
                json!(5),
                json!(2),
                json!("5h"),
            ]
        );
        assert_eq!(hpa(json!([cpu]), json!(null))[2], "cpu: <unknown>/50%");
        let pods = json!({"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"averageValue": "10"}}});
        assert_eq!(
            hpa(json!([cpu, mem, pods]), json!([]))[2],
            json!("cpu: <unknown>/50%, memory: <unknown>/100Mi + 1 more...")
        );
        assert_eq!(hpa(json!([]), json!([]))[2], "<none>");
        let v1 = object(
            json!({"spec": {"targetCPUUtilizationPercentage": 80}, "status": {"currentCPUUtilizationPercentage": 12}}),
        );
        assert_eq!(
            cell("HorizontalPodAutoscaler", &v1, "Targets"),
            "cpu: 12%/80%"
        );
        assert_eq!(cell("HorizontalPodAutoscaler", &v1, "MinPods"), "<unset>");
    }

    #[test]
    fn job_and_cronjob_rows() {
        let job = object(json!({
            "spec": {"completions": 3, "selector": {"matchLabels": {"job": "x"}}, "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}},
            "status": {"succeeded": 3, "startTime": "2025-01-01T11:00:00Z", "completionTime": "2025-01-01T11:02:30Z",
                "conditions": [{"type": "Complete", "status": "True"}]},
        }));
        assert_eq!(
            cells("Job", &job, now()),
            [
                json!("web"),
                json!("Complete"),
                json!("3/3"),
                json!("2m30s"),
                json!("5h"),
                json!("c"),
                json!("i"),
                json!("job=x"),
            ]
        );
        let running = object(
            json!({"spec": {"parallelism": 2}, "status": {"startTime": "2025-01-01T11:59:15Z"}}),
        );
        assert_eq!(
            cells("Job", &running, now())[1..4],
            [json!("Running"), json!("0/1 of 2"), json!("45s")]
        );
        let cron = object(
            json!({"spec": {"schedule": "*/5 * * * *", "suspend": false}, "status": {"active": [{}], "lastScheduleTime": "2025-01-01T11:55:00Z"}}),
        );
        assert_eq!(
            cells("CronJob", &cron, now())[1..7],
            [
                json!("*/5 * * * *"),
                json!("<none>"),
                json!("False"),
                json!(1),
                json!("5m"),
                json!("5h"),
            ]
        );
    }

    #[test]
    fn storage_rows_abbreviate_access_modes() {
        let pv = object(json!({
            "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain", "claimRef": {"namespace": "default", "name": "data"},
                "storageClassName": "standard", "volumeMode": "Filesystem"},
            "status": {"phase": "Bound"},
        }));
        assert_eq!(
            cells("PersistentVolume", &pv, now()),
            [
                json!("web"),
                json!("10Gi"),
                json!("RWO,RWX"),
                json!("Retain"),
                json!("Bound"),
                json!("default/data"),
                json!("standard"),
                json!("<unset>"),
                json!(""),
                json!("5h"),
                json!("Filesystem"),
            ]
        );
        let pending = object(
            json!({"spec": {"storageClassName": "standard"}, "status": {"phase": "Pending"}}),
        );
        assert_eq!(
            cells("PersistentVolumeClaim", &pending, now())[1..6],
            [
                json!("Pending"),
                json!(""),
                json!(""),
                json!(""),
                json!("standard"),
            ]
        );
        let sc = object(
            json!({"metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "wasmkube.io/hostpath"}),
        );
        assert_eq!(
            cells("StorageClass", &sc, now())[..5],
            [
                json!("standard (default)"),
                json!("wasmkube.io/hostpath"),
                json!("Delete"),
                json!("Immediate"),
                json!(false),
            ]
        );
    }

    #[test]
    fn event_row_leads_with_last_seen_in_either_api_shape() {
        let core = object(json!({
            "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{web}"},
            "type": "Warning", "reason": "BackOff", "message": " Back-off restarting \n", "count": 4,
            "source": {"component": "kubelet", "host": "node-1"},
            "firstTimestamp": "2025-01-01T11:00:00Z", "lastTimestamp": "2025-01-01T11:59:00Z",
        }));
        assert_eq!(
            cells("Event", &core, now()),
            [
                json!("60s"),
                json!("Warning"),
                json!("BackOff"),
                json!("pod/web-1"),
                json!("spec.containers{web}"),
                json!("kubelet, node-1"),
                json!("Back-off restarting"),
                json!("60m"),
                json!(4),
                json!("web"),
            ]
        );
        let events_v1 = object(
            json!({"apiVersion": "events.k8s.io/v1", "regarding": {"kind": "Node", "name": "n1"},
            "note": "ok", "reportingController": "wasmkube", "eventTime": "2025-01-01T11:58:00.000000Z"}),
        );
        let row = cells("Event", &events_v1, now());
        assert_eq!(
            (&row[0], &row[3], &row[5], &row[6], &row[8]),
            (
                &json!("2m"),
                &json!("node/n1"),
                &json!("wasmkube"),
                &json!("ok"),
                &json!(1)
            )
        );
    }

    #[test]
    fn small_kinds_render_their_summaries() {
        let cm = object(json!({"data": {"a": "1", "b": "2"}, "binaryData": {"c": ""}}));
        assert_eq!(
            cells("ConfigMap", &cm, now()),
            [json!("web"), json!(3), json!("5h")]
        );
        let secret = object(json!({"type": "Opaque", "data": {"k": "dg=="}}));
        assert_eq!(
            cells("Secret", &secret, now()),
            [json!("web"), json!("Opaque"), json!(1), json!("5h")]
        );
        assert_eq!(
            cells("ServiceAccount", &object(json!({"secrets": [{}]})), now()),
            [json!("web"), json!("5h")]
        );
        let ep = object(
            json!({"subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "fd00::2"}], "ports": [{"port": 80}, {"port": 443}]}]}),
        );
        assert_eq!(
            cell("Endpoints", &ep, "Endpoints"),
            "10.0.0.1:80,[fd00::2]:80,10.0.0.1:443 + 1 more..."
        );
        assert_eq!(cell("Endpoints", &object(json!({})), "Endpoints"), "<none>");
        let slice = object(
            json!({"addressType": "IPv4", "ports": [{"port": 80}, {"name": "dns"}, {}],
            "endpoints": [{"addresses": ["10.0.0.1"]}]}),
        );
        assert_eq!(
            cells("EndpointSlice", &slice, now())[1..4],
            [json!("IPv4"), json!("80,dns,*"), json!("10.0.0.1")]
        );
        assert_eq!(
            cell("EndpointSlice", &object(json!({})), "Endpoints"),
            "<unset>"
        );
        let pdb =
            object(json!({"spec": {"minAvailable": "50%"}, "status": {"disruptionsAllowed": 1}}));
        assert_eq!(
            cells("PodDisruptionBudget", &pdb, now())[1..4],
            [json!("50%"), json!("N/A"), json!(1)]
        );
        let rev = object(
            json!({"revision": 2, "metadata": {"name": "web-1", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "controller": true}]}}),
        );
        assert_eq!(
            cells("ControllerRevision", &rev, now())[..3],
            [json!("web-1"), json!("statefulset.apps/web"), json!(2)]
        );
        let ds = object(
            json!({"status": {"desiredNumberScheduled": 2}, "spec": {"template": {"spec": {"nodeSelector": {"os": "wasi"}}}}}),
        );
        assert_eq!(
            cells("DaemonSet", &ds, now())[1..8],
            [
                json!(2),
                json!(0),
                json!(0),
                json!(0),
                json!(0),
                json!("os=wasi"),
                json!("5h")
            ]
        );
        let sts = object(json!({"spec": {"replicas": 3}, "status": {"readyReplicas": 1}}));
        assert_eq!(cells("StatefulSet", &sts, now())[1], "1/3");
        assert_eq!(
            cells(
                "Lease",
                &object(json!({"spec": {"holderIdentity": "cm-1"}})),
                now()
            )[1],
            "cm-1"
        );
        assert_eq!(
            cells(
                "Namespace",
                &object(json!({"status": {"phase": "Active"}})),
                now()
            )[1],
            "Active"
        );
    }
}
