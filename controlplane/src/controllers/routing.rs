//! The shared front half of every workload controller: a reflector that mirrors one kind
//! into a store and hands each object an event touches (applied, deleted, or listed when the
//! watch (re)starts) to a router, which wakes the owners it concerns; and the wait for that
//! store's first full list, since deciding on an empty cache after a restart would create
//! everything again.

use std::fmt::Debug;

use futures::StreamExt;
use kube::runtime::reflector::{Store, store::Writer};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Mirrors every object of `api` into `writer`'s store and calls `route` with each object an
/// event touches; runs until the returned task is aborted.
pub fn follow<K>(
    api: Api<K>,
    writer: Writer<K>,
    route: impl Fn(&K) + Send + 'static,
) -> JoinHandle<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    tokio::spawn(async move {
        let events = reflector(writer, watcher(api, watcher::Config::default())).default_backoff();
        futures::pin_mut!(events);
        while let Some(event) = events.next().await {
            if let Ok(
                watcher::Event::Apply(object)
                | watcher::Event::Delete(object)
                | watcher::Event::InitApply(object),
            ) = event
            {
                route(&object);
            }
        }
    })
}

/// Waits until `store` holds its first full list; false if `shutdown` came first (or the
/// reflector ended), and then the caller should stop.
pub async fn synced<K>(store: &Store<K>, shutdown: &CancellationToken) -> bool
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    tokio::select! {
        () = shutdown.cancelled() => false,
        ready = store.wait_until_ready() => ready.is_ok(),
    }
}

/// Runs `controller` until `shutdown`, reconciling each object `wakes` names (and every
/// object at the controller's own watch events) with `reconcile` and `error_policy`.
pub async fn drive<K, Fut, Ctx>(
    controller: kube::runtime::Controller<K>,
    wakes: tokio::sync::mpsc::UnboundedReceiver<kube::runtime::reflector::ObjectRef<K>>,
    shutdown: CancellationToken,
    reconcile: impl FnMut(std::sync::Arc<K>, std::sync::Arc<Ctx>) -> Fut,
    error_policy: impl Fn(
        std::sync::Arc<K>,
        &Fut::Error,
        std::sync::Arc<Ctx>,
    ) -> kube::runtime::controller::Action,
    ctx: std::sync::Arc<Ctx>,
) where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    Fut: futures::TryFuture<Ok = kube::runtime::controller::Action> + Send + 'static,
    Fut::Error: std::error::Error + Send + 'static,
{
    controller
        .reconcile_on(tokio_stream::wrappers::UnboundedReceiverStream::new(wakes))
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}
