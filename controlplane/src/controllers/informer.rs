//! One watch of pods that every controller shares (kube-controller-manager's shared informer
//! factory). Ten controllers follow pods; with a watch each, every pod write was encoded and
//! sent ten times and held in ten caches, which halved the pod burst rate (docs/benchmarks.md).
//!
//! [`Shared::start`] runs one reflector into one store and broadcasts each object an event
//! touches (applied, deleted, listed) to the followers. Controllers start only once it has
//! listed ([`Informers::then`]): kube-rs's `Store::wait_until_ready` wakes just one of
//! several waiters, so ten controllers waiting on one store at start would mostly hang. [`Shared::follow`] gives a controller
//! its router's calls: first every object already in the store (the list it did not see),
//! then each touched object. A follower that falls behind the broadcast buffer is handed
//! every stored object again; controllers are level-triggered, and each also resyncs its own
//! kind, so an owner whose last pod was deleted meanwhile is still looked at.

use std::fmt::Debug;
use std::sync::Arc;

use futures::StreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How many touched objects wait for slow followers before they must catch up from the store.
const BUFFER: usize = 16_384;

/// One kind's shared watch and cache.
pub struct Shared<K: Resource<DynamicType = ()> + 'static> {
    store: Store<K>,
    touched: broadcast::Sender<Arc<K>>,
    /// True once the first list is in the store.
    ready: watch::Sender<bool>,
}

impl<K> Shared<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// Starts watching every object of the kind, until `shutdown`.
    pub fn start(client: &Client, shutdown: &CancellationToken) -> Arc<Shared<K>> {
        let (store, writer) = reflector::store::<K>();
        let (touched, _) = broadcast::channel(BUFFER);
        let sender = touched.clone();
        let ready = watch::channel(false).0;
        let listed = ready.clone();
        let api: Api<K> = Api::all(client.clone());
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let events = reflector::reflector(writer, watcher(api, watcher::Config::default()))
                .default_backoff()
                .take_until(shutdown.cancelled_owned());
            futures::pin_mut!(events);
            while let Some(event) = events.next().await {
                match event {
                    Ok(
                        watcher::Event::Apply(object)
                        | watcher::Event::Delete(object)
                        | watcher::Event::InitApply(object),
                    ) => {
                        // No follower yet is fine: they start from the store.
                        let _ = sender.send(Arc::new(object));
                    }
                    Ok(watcher::Event::InitDone) => {
                        listed.send_replace(true);
                    }
                    _ => {}
                }
            }
        });
        Arc::new(Shared {
            store,
            touched,
            ready,
        })
    }

    /// The shared cache. Wait for [`Shared::synced`] before anyone waits on the store's own
    /// `wait_until_ready`: kube-rs wakes only one of several tasks waiting on it.
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// Waits until the first list is in the store; false if `shutdown` came first.
    pub async fn synced(&self, shutdown: &CancellationToken) -> bool {
        let mut ready = self.ready.subscribe();
        tokio::select! {
            () = shutdown.cancelled() => false,
            r = ready.wait_for(|r| *r) => r.is_ok(),
        }
    }

    /// Calls `route` with every stored object once the first list is in, then with each
    /// object an event touches; runs until the returned task is aborted.
    pub fn follow(&self, route: impl Fn(&K) + Send + 'static) -> JoinHandle<()> {
        // Subscribed before the store is read, so nothing falls between the two.
        let mut touched = self.touched.subscribe();
        let store = self.store.clone();
        let mut ready = self.ready.subscribe();
        tokio::spawn(async move {
            if ready.wait_for(|r| *r).await.is_err() {
                return;
            }
            for object in store.state() {
                route(&object);
            }
            loop {
                match touched.recv().await {
                    Ok(object) => route(&object),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::debug!(missed, "a controller fell behind the shared watch");
                        for object in store.state() {
                            route(&object);
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        })
    }
}

/// The watches the controllers share.
#[derive(Clone)]
pub struct Informers {
    /// Every pod.
    pub pods: Arc<Shared<k8s_openapi::api::core::v1::Pod>>,
}

impl Informers {
    /// Starts the shared watches, until `shutdown`.
    pub fn start(client: &Client, shutdown: &CancellationToken) -> Informers {
        Informers {
            pods: Shared::start(client, shutdown),
        }
    }

    /// Runs `controller` once every shared watch has listed (so the controllers' own waits on
    /// the shared stores return at once), or not at all if `shutdown` comes first.
    pub async fn then<F: std::future::Future<Output = ()>>(
        self,
        shutdown: CancellationToken,
        controller: F,
    ) {
        if self.pods.synced(&shutdown).await {
            controller.await;
        }
    }
}
