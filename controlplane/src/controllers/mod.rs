//! Controllers that run inside the control plane process.
//!
//! Most controllers talk to the API like any client (a `kube::Client`, in-process in
//! `wasmkube up` and `wasmkube server` alike): [`replicaset`] (ReplicaSets and
//! ReplicationControllers), [`deployment`], [`statefulset`] and [`daemonset`] (with
//! ControllerRevisions, [`history`]), [`job`] and [`cronjob`], [`garbage_collector`]
//! (cascading deletion through `ownerReferences`), [`podgc`] (pods of deleted nodes),
//! [`node_lifecycle`] (unreachable nodes, taints, evictions), [`disruption`]
//! (PodDisruptionBudget status) and [`volume`] (binding claims to volumes, the local-path
//! provisioner, storage protection). The scheduler is one more such client
//! (`crate::scheduler`). The namespace controller is owned by the API server itself, as
//! kube-apiserver's namespace lifecycle is, and works on the
//! [`ApiState`](crate::apiserver::ApiState) directly.
//!
//! Every timer is in [`ControllerOptions`], so tests shorten them; the defaults are
//! Kubernetes'.

use std::time::Duration;

pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod events;
pub mod expectations;
pub mod garbage_collector;
pub mod history;
pub mod hpa;
pub mod informer;
pub mod job;
pub mod namespace;
pub mod node_lifecycle;
pub mod podgc;
pub mod pods;
pub mod replicaset;
pub mod rollout;
pub mod routing;
pub mod selector;
pub mod statefulset;
pub mod volume;

/// The controllers' timers (kube-controller-manager's flags of the same names).
#[derive(Debug, Clone)]
pub struct ControllerOptions {
    /// How long a node's Lease may go unrenewed before the node is `Ready=Unknown` and
    /// tainted unreachable (`--node-monitor-grace-period`, 50 s since Kubernetes 1.32).
    pub node_monitor_grace_period: Duration,
    /// How often node health is checked (`--node-monitor-period`, 5 s).
    pub node_monitor_period: Duration,
    /// How often every controller re-examines everything even when nothing changed.
    pub resync: Duration,
    /// A Job's first delay before replacing a failed pod; doubles per failure (10 s).
    pub job_backoff_base: Duration,
    /// A Job's longest such delay (6 min).
    pub job_backoff_max: Duration,
    /// How often the volume controller syncs every claim and volume even when nothing
    /// changed (`--pvclaimbinder-sync-period`, 15 s).
    pub pvclaimbinder_sync_period: Duration,
    /// The HorizontalPodAutoscaler controller's timers and tolerance.
    pub hpa: hpa::HpaOptions,
}

impl Default for ControllerOptions {
    fn default() -> Self {
        ControllerOptions {
            node_monitor_grace_period: Duration::from_secs(50),
            node_monitor_period: Duration::from_secs(5),
            resync: Duration::from_secs(300),
            job_backoff_base: Duration::from_secs(10),
            job_backoff_max: Duration::from_secs(360),
            pvclaimbinder_sync_period: Duration::from_secs(15),
            hpa: hpa::HpaOptions::default(),
        }
    }
}
