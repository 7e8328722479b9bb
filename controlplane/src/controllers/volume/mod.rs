//! The volume controller: kube-controller-manager's persistentvolume binder, its pvc- and
//! pv-protection controllers, and the local-path provisioner, in one level-triggered loop.
//!
//! Reflectors mirror PersistentVolumeClaims, PersistentVolumes, StorageClasses, Nodes and
//! the pods that mount claims; any change to them (and every `--pvclaimbinder-sync-period`)
//! wakes one pass that takes a [`World`] snapshot and syncs every volume
//! ([`volumes::decide`]), then every claim ([`claims::decide`]), then releases the protection
//! finalizers of objects no longer in use ([`protection`]). Decisions are pure functions of
//! the snapshot; the writes are in [`writes`] and carry resourceVersions, so a pass on a
//! stale cache only fails and is repeated. Matching a claim to a volume is [`binding`];
//! making a volume for a claim is [`provision`] (the contract with the node agent is
//! there). Events go through [`events::Recorder`], once per object and phase.
//!
//! Start reading at [`run`], then [`claims`].

pub mod binding;
pub mod claims;
pub mod events;
pub mod protection;
pub mod provision;
pub mod volumes;
pub mod world;
pub mod writes;

use std::collections::HashSet;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::runtime::reflector::{self, Store};
use kube::{Api, Client, ResourceExt};
use tokio::sync::Notify;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::ControllerOptions;
use super::informer::Informers;
use super::routing;
use events::{Note, Recorder};
use world::World;

/// Set on a claim and a volume when the binder chose the other side.
pub const BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
/// Set on a claim once it is bound.
pub const BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
/// The claim annotation naming the provisioner that makes its volume.
pub const STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
/// Its beta name, still written by Kubernetes.
pub const BETA_STORAGE_PROVISIONER: &str = "volume.beta.kubernetes.io/storage-provisioner";
/// The node the scheduler chose for a `WaitForFirstConsumer` claim's first pod.
pub const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// The class annotation that predates `storageClassName`.
pub const BETA_STORAGE_CLASS: &str = "volume.beta.kubernetes.io/storage-class";
/// The StorageClass annotation that makes it the default.
pub const DEFAULT_CLASS: &str = "storageclass.kubernetes.io/is-default-class";
/// Its beta name.
pub const DEFAULT_CLASS_BETA: &str = "storageclass.beta.kubernetes.io/is-default-class";

/// The caches a pass reads.
struct Stores {
    claims: Store<PersistentVolumeClaim>,
    volumes: Store<PersistentVolume>,
    classes: Store<StorageClass>,
    nodes: Store<Node>,
    pods: Store<Pod>,
}

impl Stores {
    fn world(&self) -> World {
        World::new(
            self.claims.state(),
            self.volumes.state(),
            self.classes.state(),
            self.nodes.state(),
            self.pods.state(),
        )
    }
}

/// Whether a pod change can matter here: it mounts a claim (directly or ephemeral).
fn mounts_claims(pod: &Pod) -> bool {
    pod.spec.as_ref().is_some_and(|s| {
        s.volumes
            .iter()
            .flatten()
            .any(|v| v.persistent_volume_claim.is_some() || v.ephemeral.is_some())
    })
}

/// A route that wakes the pass on any change of a `K`.
fn on<K>(wake: &Arc<Notify>) -> impl Fn(&K) + Send + 'static {
    let wake = wake.clone();
    move |_| wake.notify_one()
}

/// Runs the volume controller until `shutdown`.
pub async fn run(
    client: Client,
    informers: Informers,
    options: ControllerOptions,
    shutdown: CancellationToken,
) {
    let wake = Arc::new(Notify::new());
    let (claims, claims_w) = reflector::store();
    let (volumes, volumes_w) = reflector::store();
    let (classes, classes_w) = reflector::store();
    let (nodes, nodes_w) = reflector::store();
    let pods = informers.pods.store();
    let pod_wake = wake.clone();
    let followers = [
        routing::follow(Api::all(client.clone()), claims_w, on(&wake)),
        routing::follow(Api::all(client.clone()), volumes_w, on(&wake)),
        routing::follow(Api::all(client.clone()), classes_w, on(&wake)),
        routing::follow(Api::all(client.clone()), nodes_w, on(&wake)),
        informers.pods.follow(move |p: &Pod| {
            if mounts_claims(p) {
                pod_wake.notify_one();
            }
        }),
    ];
    let stores = Stores {
        claims,
        volumes,
        classes,
        nodes,
        pods,
    };
    // Never decide on an empty cache: every bound claim would look Lost.
    let synced = routing::synced(&stores.claims, &shutdown).await
        && routing::synced(&stores.volumes, &shutdown).await
        && routing::synced(&stores.classes, &shutdown).await
        && routing::synced(&stores.nodes, &shutdown).await
        && routing::synced(&stores.pods, &shutdown).await;
    if synced {
        let period = options
            .pvclaimbinder_sync_period
            .max(std::time::Duration::from_millis(10));
        let mut resync = tokio::time::interval(period);
        resync.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut recorder = Recorder::default();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = wake.notified() => {}
                _ = resync.tick() => {}
            }
            sync(&client, &stores.world(), &mut recorder).await;
        }
    }
    for f in followers {
        f.abort();
    }
}

/// One pass over every volume and claim.
#[tracing::instrument(skip_all)]
async fn sync(client: &Client, world: &World, recorder: &mut Recorder) {
    for volume in world.volumes.values() {
        if let Err(e) = sync_volume(client, world, volume, recorder).await {
            let volume = volume.name_any();
            tracing::debug!(%volume, error = %e, "volume sync failed; retrying");
        }
    }
    for claim in world.claims.values() {
        if let Err(e) = sync_claim(client, world, claim, recorder).await {
            let claim = world::claim_key(claim);
            tracing::debug!(%claim, error = %e, "claim sync failed; retrying");
        }
    }
    release(client, world).await;
    let live: HashSet<String> = world
        .claims
        .values()
        .filter_map(|c| c.metadata.uid.clone())
        .chain(
            world
                .volumes
                .values()
                .filter_map(|v| v.metadata.uid.clone()),
        )
        .collect();
    recorder.retain(&live);
}

async fn sync_volume(
    client: &Client,
    world: &World,
    volume: &PersistentVolume,
    recorder: &mut Recorder,
) -> Result<(), kube::Error> {
    match volumes::decide(volume, world) {
        volumes::Step::Nothing => {}
        volumes::Step::Phase {
            phase,
            message,
            note,
        } => {
            writes::set_volume_phase(client, volume, phase, message.as_deref()).await?;
            if let Some(note) = note {
                let regarding = super::events::reference(volume);
                recorder.record(client, regarding, phase, &note).await;
            }
        }
        volumes::Step::Unbind => writes::unbind(client, volume).await?,
    }
    Ok(())
}

async fn sync_claim(
    client: &Client,
    world: &World,
    claim: &PersistentVolumeClaim,
    recorder: &mut Recorder,
) -> Result<(), kube::Error> {
    let regarding = || super::events::reference(claim);
    match claims::decide(claim, world) {
        claims::Step::AssignClass(class) => writes::assign_class(client, claim, &class).await?,
        claims::Step::Bind(name) => {
            if let Some(volume) = world.volume(&name) {
                writes::bind(client, claim, volume).await?;
            }
        }
        claims::Step::Pending(note) => {
            writes::set_claim_phase(client, claim, "Pending").await?;
            if let Some(note) = note {
                recorder.record(client, regarding(), "Pending", &note).await;
            }
        }
        claims::Step::Lost(note) => {
            writes::set_claim_phase(client, claim, "Lost").await?;
            recorder.record(client, regarding(), "Lost", &note).await;
        }
        claims::Step::Provision(p) => provision(client, claim, p, recorder).await?,
    }
    Ok(())
}

/// Dynamic provisioning: the claim names its provisioner; ours makes the volume at once.
async fn provision(
    client: &Client,
    claim: &PersistentVolumeClaim,
    p: claims::Provisioning,
    recorder: &mut Recorder,
) -> Result<(), kube::Error> {
    let regarding = || super::events::reference(claim);
    writes::set_provisioner(client, claim, &p.provisioner).await?;
    let waiting = Note::normal(
        "ExternalProvisioning",
        format!(
            "Waiting for a volume to be created either by the external provisioner '{}' or \
             manually by the system administrator. If volume creation is delayed, please \
             verify that the provisioner is running and correctly registered.",
            p.provisioner
        ),
    );
    recorder
        .record(client, regarding(), "Pending", &waiting)
        .await;
    let component = provision::component(&p.provisioner);
    let volume = match p.ours {
        None => return Ok(()),
        Some(Err(message)) => {
            let note = Note::warning("ProvisioningFailed", message).from(&component);
            recorder.record(client, regarding(), "Pending", &note).await;
            return Ok(());
        }
        Some(Ok(volume)) => volume,
    };
    // Already made (by an earlier pass whose result the cache does not show yet): quiet.
    if writes::create_volume(client, &volume).await? {
        let key = world::claim_key(claim);
        let notes = [
            Note::normal(
                "Provisioning",
                format!("External provisioner is provisioning volume for claim {key:?}"),
            ),
            Note::normal(
                "ProvisioningSucceeded",
                format!("Successfully provisioned volume {}", volume.name_any()),
            ),
        ];
        for note in notes {
            let note = note.from(&component);
            recorder.record(client, regarding(), "Pending", &note).await;
        }
    }
    Ok(())
}

/// Drops the protection finalizers of claims and volumes being deleted that nothing uses.
async fn release(client: &Client, world: &World) {
    for claim in world.claims.values() {
        if protection::claim_releasable(claim, world.pods.iter().map(|p| &**p)) {
            let api: Api<PersistentVolumeClaim> =
                Api::namespaced(client.clone(), &claim.namespace().unwrap_or_default());
            if let Err(e) =
                writes::remove_finalizer(&api, &**claim, protection::PVC_PROTECTION).await
            {
                let claim = world::claim_key(claim);
                tracing::debug!(%claim, error = %e, "releasing the claim failed; retrying");
            }
        }
    }
    for volume in world.volumes.values() {
        if protection::volume_releasable(volume) {
            let api: Api<PersistentVolume> = Api::all(client.clone());
            if let Err(e) =
                writes::remove_finalizer(&api, &**volume, protection::PV_PROTECTION).await
            {
                let volume = volume.name_any();
                tracing::debug!(%volume, error = %e, "releasing the volume failed; retrying");
            }
        }
    }
}
