//! Server-side printing: the `meta.k8s.io/v1` Table that `kubectl get` renders, per kind.
//!
//! kube-apiserver builds these tables itself (`pkg/printers/internalversion/printers.go`), and
//! kubectl only lays them out, so the columns and cell values here follow that file: same column
//! names, types and priorities, same strings (`Init:0/1`, `80:30080/TCP`, `<none>`, `3 (5m ago)`).
//! Like kube-apiserver, every row carries the wide cells too; kubectl hides the priority-1 columns
//! unless asked for `-o wide`. Start at [`columns`] and [`cells`]; each kind has one helper that
//! reads the object as served (JSON), tolerating any missing field: workload kinds in
//! `workloads.rs`, cluster and networking kinds in `cluster.rs`, the field getters and
//! formatters they share in `fields.rs`.

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

mod cluster;
mod fields;
mod workloads;

use cluster::*;
use fields::*;
use workloads::*;

#[cfg(test)]
mod cluster_tests;
#[cfg(test)]
mod tests;
