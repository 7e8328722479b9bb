//! The list of every kind the API server serves, in discovery order.

use k8s_openapi::api::{
    apps::v1 as apps, autoscaling::v1 as autoscaling_v1, autoscaling::v2 as autoscaling_v2,
    batch::v1 as batch, coordination::v1 as coordination, core::v1 as core,
    discovery::v1 as discovery, events::v1 as events, policy::v1 as policy, storage::v1 as storage,
};

use super::autoscaler::AutoscalerStrategy;
use super::conversion::{EVENTS_V1, HPA_V1, HPA_V2BETA2, normalize_v2beta2};
use super::pod::PodStrategy;
use super::service::ServiceStrategy;
use super::simple::{
    ConfigMapStrategy, EventStrategy, NamespaceStrategy, NodeStrategy, SecretStrategy,
};
use super::storage::{ClaimStrategy, StorageClassStrategy, VolumeStrategy};
use super::workloads::{Workload, WorkloadStrategy};
use super::{Plain, ResourceType, Subresource};

const ALL: &[&str] = &["all"];
const RW: &[&str] = &["get", "patch", "update"];

const fn sub(
    name: &'static str,
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    verbs: &'static [&'static str],
) -> Subresource {
    Subresource {
        name,
        group,
        version,
        kind,
        verbs,
    }
}

const fn status(group: &'static str, version: &'static str, kind: &'static str) -> Subresource {
    sub("status", group, version, kind, RW)
}

const SCALE: Subresource = sub("scale", "autoscaling", "v1", "Scale", RW);

static PLAIN: Plain = Plain {
    status: false,
    generation: false,
};
static WITH_STATUS: Plain = Plain {
    status: true,
    generation: true,
};
static DEPLOYMENT: WorkloadStrategy = WorkloadStrategy(Workload::Deployment);
static REPLICASET: WorkloadStrategy = WorkloadStrategy(Workload::ReplicaSet);
static RC: WorkloadStrategy = WorkloadStrategy(Workload::ReplicationController);
static STATEFULSET: WorkloadStrategy = WorkloadStrategy(Workload::StatefulSet);
static DAEMONSET: WorkloadStrategy = WorkloadStrategy(Workload::DaemonSet);
static JOB: WorkloadStrategy = WorkloadStrategy(Workload::Job);
static CRONJOB: WorkloadStrategy = WorkloadStrategy(Workload::CronJob);

const HPA_V2BETA2_WARNING: &str = "autoscaling/v2beta2 HorizontalPodAutoscaler is deprecated in \
v1.23+, unavailable in v1.26+; use autoscaling/v2 HorizontalPodAutoscaler";

/// Every served kind.
pub fn all() -> Vec<ResourceType> {
    vec![
        // core/v1
        ResourceType::of::<core::Namespace>(&NamespaceStrategy)
            .names(&["ns"], &[])
            .subresources(
                const {
                    &[
                        status("", "v1", "Namespace"),
                        sub("finalize", "", "v1", "Namespace", &["update"]),
                    ]
                },
            ),
        ResourceType::of::<core::Pod>(&PodStrategy)
            .names(&["po"], ALL)
            .subresources(
                const {
                    &[
                        status("", "v1", "Pod"),
                        sub("binding", "", "v1", "Binding", &["create"]),
                        sub("eviction", "policy", "v1", "Eviction", &["create"]),
                        sub("ephemeralcontainers", "", "v1", "Pod", RW),
                        sub("log", "", "v1", "Pod", &["get"]),
                        sub("exec", "", "v1", "PodExecOptions", &["create", "get"]),
                        sub("attach", "", "v1", "PodAttachOptions", &["create", "get"]),
                        sub(
                            "portforward",
                            "",
                            "v1",
                            "PodPortForwardOptions",
                            &["create", "get"],
                        ),
                    ]
                },
            ),
        ResourceType::of::<core::Node>(&NodeStrategy)
            .names(&["no"], &[])
            .subresources(const { &[status("", "v1", "Node")] }),
        ResourceType::of::<core::Service>(&ServiceStrategy)
            .names(&["svc"], ALL)
            .subresources(const { &[status("", "v1", "Service")] }),
        ResourceType::of::<core::Endpoints>(&PLAIN).names(&["ep"], &[]),
        ResourceType::of::<core::ConfigMap>(&ConfigMapStrategy).names(&["cm"], &[]),
        ResourceType::of::<core::Secret>(&SecretStrategy),
        ResourceType::of::<core::ServiceAccount>(&PLAIN).names(&["sa"], &[]),
        ResourceType::of::<core::Event>(&EventStrategy).names(&["ev"], &[]),
        ResourceType::of::<core::ReplicationController>(&RC)
            .names(&["rc"], ALL)
            .subresources(const { &[status("", "v1", "ReplicationController"), SCALE] }),
        ResourceType::of::<core::PersistentVolume>(&VolumeStrategy)
            .names(&["pv"], &[])
            .subresources(const { &[status("", "v1", "PersistentVolume")] }),
        ResourceType::of::<core::PersistentVolumeClaim>(&ClaimStrategy)
            .names(&["pvc"], &[])
            .subresources(const { &[status("", "v1", "PersistentVolumeClaim")] }),
        // apps/v1
        ResourceType::of::<apps::Deployment>(&DEPLOYMENT)
            .names(&["deploy"], ALL)
            .subresources(const { &[status("apps", "v1", "Deployment"), SCALE] }),
        ResourceType::of::<apps::ReplicaSet>(&REPLICASET)
            .names(&["rs"], ALL)
            .subresources(const { &[status("apps", "v1", "ReplicaSet"), SCALE] }),
        ResourceType::of::<apps::StatefulSet>(&STATEFULSET)
            .names(&["sts"], ALL)
            .subresources(const { &[status("apps", "v1", "StatefulSet"), SCALE] }),
        ResourceType::of::<apps::DaemonSet>(&DAEMONSET)
            .names(&["ds"], ALL)
            .subresources(const { &[status("apps", "v1", "DaemonSet")] }),
        ResourceType::of::<apps::ControllerRevision>(&PLAIN),
        // batch/v1
        ResourceType::of::<batch::Job>(&JOB)
            .names(&[], ALL)
            .subresources(const { &[status("batch", "v1", "Job")] }),
        ResourceType::of::<batch::CronJob>(&CRONJOB)
            .names(&["cj"], ALL)
            .subresources(const { &[status("batch", "v1", "CronJob")] }),
        // autoscaling
        ResourceType::of::<autoscaling_v2::HorizontalPodAutoscaler>(&AutoscalerStrategy)
            .names(&["hpa"], ALL)
            .subresources(const { &[status("autoscaling", "v2", "HorizontalPodAutoscaler")] }),
        ResourceType::of::<autoscaling_v1::HorizontalPodAutoscaler>(&AutoscalerStrategy)
            .names(&["hpa"], ALL)
            .stored_as(&HPA_V1)
            .subresources(const { &[status("autoscaling", "v1", "HorizontalPodAutoscaler")] }),
        ResourceType::of::<autoscaling_v2::HorizontalPodAutoscaler>(&AutoscalerStrategy)
            .names(&["hpa"], ALL)
            .stored_as(&HPA_V2BETA2)
            .deprecated(HPA_V2BETA2_WARNING)
            .normalized_by(normalize_v2beta2)
            .version("v2beta2")
            .subresources(const { &[status("autoscaling", "v2beta2", "HorizontalPodAutoscaler")] }),
        // others
        ResourceType::of::<policy::PodDisruptionBudget>(&WITH_STATUS)
            .names(&["pdb"], &[])
            .subresources(const { &[status("policy", "v1", "PodDisruptionBudget")] }),
        ResourceType::of::<coordination::Lease>(&PLAIN),
        ResourceType::of::<discovery::EndpointSlice>(&PLAIN),
        ResourceType::of::<events::Event>(&EventStrategy)
            .names(&["ev"], &[])
            .stored_as(&EVENTS_V1),
        ResourceType::of::<storage::StorageClass>(&StorageClassStrategy).names(&["sc"], &[]),
    ]
}
