//! The HorizontalPodAutoscaler controller (autoscaling/v2; v1 and v2beta2 are conversions of
//! it): every `--horizontal-pod-autoscaler-sync-period` (15 s) each HPA reads its target's
//! `scale` subresource (any kind that has one: Deployments, ReplicaSets, StatefulSets,
//! ReplicationControllers), the `metrics.k8s.io` PodMetrics of the pods its selector names,
//! proposes a replica count per metric (`hpa/replicas.rs`), takes the largest, stabilizes and
//! rate-limits it (`hpa/behavior.rs`) and writes the scale. Status: current and desired
//! replicas, `currentMetrics`, `lastScaleTime`, and the conditions `AbleToScale`,
//! `ScalingActive` and `ScalingLimited`; Events `SuccessfulRescale`, `FailedGetScale`,
//! `FailedGetResourceMetric`, `FailedComputeMetricsReplicas`, `FailedRescale`.
//!
//! Resource and ContainerResource metrics (cpu, memory; `Utilization` and `AverageValue`)
//! are supported; Pods, Object and External metrics need a custom metrics API wasmkube does
//! not serve, and say so in `ScalingActive`.

mod behavior;
mod replicas;
mod source;
mod status;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::autoscaling::v2::{HorizontalPodAutoscaler, MetricStatus};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::reflector::{self, Store};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use self::behavior::{Args, History};
use self::source::{compute, pod_metrics};
use self::status::Conditions;
use super::informer::Informers;
use super::{ControllerOptions, events};

const COMPONENT: &str = "horizontal-pod-autoscaler";

/// The HPA controller's flags (kube-controller-manager's of the same names).
#[derive(Debug, Clone)]
pub struct HpaOptions {
    /// How often every HPA is evaluated (`--horizontal-pod-autoscaler-sync-period`, 15 s).
    pub sync_period: Duration,
    /// How long scale-down looks back for higher recommendations
    /// (`--horizontal-pod-autoscaler-downscale-stabilization`, 5 min).
    pub downscale_stabilization: Duration,
    /// The usage ratio around 1.0 that causes no change (`--horizontal-pod-autoscaler-tolerance`, 0.1).
    pub tolerance: f64,
    /// How long after a pod starts its CPU needs a sample taken after it became ready
    /// (`--horizontal-pod-autoscaler-cpu-initialization-period`, 5 min).
    pub cpu_initialization_period: Duration,
    /// How long after start an unready pod may still become ready without counting as
    /// never-ready (`--horizontal-pod-autoscaler-initial-readiness-delay`, 30 s).
    pub initial_readiness_delay: Duration,
}

impl Default for HpaOptions {
    fn default() -> Self {
        HpaOptions {
            sync_period: Duration::from_secs(15),
            downscale_stabilization: Duration::from_secs(300),
            tolerance: 0.1,
            cpu_initialization_period: Duration::from_secs(300),
            initial_readiness_delay: Duration::from_secs(30),
        }
    }
}

/// Why one HPA's sync failed (it is retried at the next sync).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("api request failed")]
    Api(#[from] kube::Error),
}

struct Context {
    client: Client,
    pods: Store<Pod>,
    options: HpaOptions,
}

/// Runs until `shutdown`.
pub async fn run(
    client: Client,
    informers: Informers,
    options: ControllerOptions,
    shutdown: CancellationToken,
) {
    let (hpas, hpa_writer) = reflector::store::<HorizontalPodAutoscaler>();
    let pods = informers.pods.store();
    let follow_hpas = super::routing::follow(Api::all(client.clone()), hpa_writer, |_| {});
    let follow_pods = informers.pods.follow(|_| {});
    let stop = || {
        follow_hpas.abort();
        follow_pods.abort();
    };
    if !super::routing::synced(&hpas, &shutdown).await
        || !super::routing::synced(&pods, &shutdown).await
    {
        stop();
        return;
    }
    let ctx = Context {
        client,
        pods,
        options: options.hpa,
    };
    let mut histories: HashMap<String, History> = HashMap::new();
    let mut ticks = tokio::time::interval(ctx.options.sync_period.max(Duration::from_millis(50)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = ticks.tick() => {}
        }
        let all = hpas.state();
        for hpa in &all {
            let key = format!("{}/{}", hpa.namespace().unwrap_or_default(), hpa.name_any());
            let history = histories.entry(key.clone()).or_default();
            if let Err(e) = reconcile(hpa, &ctx, history).await {
                tracing::debug!(hpa = %key, error = %e, "hpa sync failed; retrying at the next sync");
            }
        }
        histories.retain(|k, _| {
            all.iter()
                .any(|h| format!("{}/{}", h.namespace().unwrap_or_default(), h.name_any()) == *k)
        });
    }
    stop();
}

/// What one metric proposed, or why it could not.
struct Computed {
    replicas: i32,
    /// `cpu resource utilization (percentage of request)`, as kube names it in messages.
    name: String,
    status: MetricStatus,
}

/// One sync of one HPA.
async fn reconcile(
    hpa: &HorizontalPodAutoscaler,
    ctx: &Context,
    history: &mut History,
) -> Result<(), Error> {
    let ns = hpa.namespace().unwrap_or_default();
    let spec = hpa.spec.clone();
    let old_status = hpa.status.clone().unwrap_or_default();
    let out = Out {
        hpa,
        ctx,
        old: &old_status,
    };
    let mut conditions = Conditions::from(old_status.conditions.clone().unwrap_or_default());
    let reference = events::reference(hpa);
    let target = &spec.scale_target_ref;
    let emit = |warning: bool, reason: &'static str, message: String| {
        let client = ctx.client.clone();
        let reference = reference.clone();
        async move { events::emit(&client, COMPONENT, reference, warning, reason, message).await }
    };

    let scale_api = match scale_api(&ctx.client, &ns, target).await {
        Ok(api) => api,
        Err(message) => {
            return failed_get_scale(hpa, ctx, &mut conditions, &old_status, message, emit).await;
        }
    };
    let scale = match scale_api.get_scale(&target.name).await {
        Ok(scale) => scale,
        Err(e) => {
            let message = match &e {
                kube::Error::Api(s) => s.message.clone(),
                other => other.to_string(),
            };
            return failed_get_scale(hpa, ctx, &mut conditions, &old_status, message, emit).await;
        }
    };
    conditions.set(
        "AbleToScale",
        true,
        "SucceededGetScale",
        "the HPA controller was able to get the target's current scale",
    );
    let current = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    let min = spec.min_replicas.unwrap_or(1);
    let mut metric_statuses: Vec<MetricStatus> = Vec::new();
    let (desired, reason) = if current == 0 && min != 0 {
        conditions.set(
            "ScalingActive",
            false,
            "ScalingDisabled",
            "scaling is disabled since the replica count of the target is zero",
        );
        (0, String::new())
    } else if current > spec.max_replicas {
        (
            spec.max_replicas,
            "Current number of replicas above Spec.MaxReplicas".to_string(),
        )
    } else if current < min {
        (
            min,
            "Current number of replicas below Spec.MinReplicas".to_string(),
        )
    } else {
        let selector = scale
            .status
            .as_ref()
            .and_then(|s| s.selector.clone())
            .unwrap_or_default();
        if selector.is_empty() {
            let message = "the HPA target's scale is missing a selector".to_string();
            conditions.set("ScalingActive", false, "InvalidSelector", &message);
            emit(true, "SelectorRequired", "selector is required".into()).await;
            return out
                .write(conditions, current, current, metric_statuses, false)
                .await;
        }
        let metrics = spec.metrics.clone().unwrap_or_default();
        let mut best: Option<Computed> = None;
        let mut first_error: Option<(String, &'static str, String)> = None;
        let mut invalid = 0usize;
        let pod_samples = pod_metrics(&ctx.client, &ns, &selector).await;
        for metric in &metrics {
            match compute(metric, &spec, current, &ns, &selector, &pod_samples, ctx) {
                Ok(c) => {
                    metric_statuses.push(c.status.clone());
                    if best.as_ref().is_none_or(|b| c.replicas > b.replicas) {
                        best = Some(c);
                    }
                }
                Err((reason, message)) => {
                    invalid += 1;
                    metric_statuses.push(MetricStatus {
                        type_: metric.type_.clone(),
                        ..MetricStatus::default()
                    });
                    if first_error.is_none() {
                        first_error = Some((metric.type_.clone(), reason, message));
                    }
                }
            }
        }
        let proposal = best.as_ref().map_or(0, |b| b.replicas);
        if let Some((_, reason, message)) = &first_error
            && (invalid >= metrics.len() || proposal < current)
        {
            let full = format!("the HPA was unable to compute the replica count: {message}");
            conditions.set("ScalingActive", false, reason, &full);
            emit(true, reason, message.clone()).await;
            emit(
                true,
                "FailedComputeMetricsReplicas",
                format!(
                    "invalid metrics ({invalid} invalid out of {}), first error is: {message}",
                    metrics.len()
                ),
            )
            .await;
            metric_statuses.retain(|m| m.resource.is_some() || m.container_resource.is_some());
            return out
                .write(conditions, current, current, metric_statuses, false)
                .await;
        }
        metric_statuses.retain(|m| m.resource.is_some() || m.container_resource.is_some());
        let Some(best) = best else {
            return out
                .write(conditions, current, current, metric_statuses, false)
                .await;
        };
        conditions.set(
            "ScalingActive",
            true,
            "ValidMetricFound",
            &format!(
                "the HPA was able to successfully calculate a replica count from {}",
                best.name
            ),
        );
        let (desired, verdict) = history.normalize(
            Args {
                current,
                desired: best.replicas,
                min,
                max: spec.max_replicas,
                behavior: spec.behavior.as_ref(),
                downscale_window: ctx.options.downscale_stabilization,
            },
            Instant::now(),
        );
        conditions.set("AbleToScale", true, verdict.able.0, verdict.able.1);
        conditions.set(
            "ScalingLimited",
            verdict.limited.0,
            verdict.limited.1,
            verdict.limited.2,
        );
        let reason = if desired > current {
            format!("{} above target", best.name)
        } else {
            "All metrics below target".to_string()
        };
        (desired, reason)
    };

    let rescale = desired != current;
    if rescale {
        let patch = Patch::Merge(json!({"spec": {"replicas": desired}}));
        if let Err(e) = scale_api
            .patch_scale(&target.name, &PatchParams::default(), &patch)
            .await
        {
            let message = e.to_string();
            conditions.set(
                "AbleToScale",
                false,
                "FailedUpdateScale",
                &format!("the HPA controller was unable to update the target scale: {message}"),
            );
            emit(
                true,
                "FailedRescale",
                format!("New size: {desired}; reason: {reason}; error: {message}"),
            )
            .await;
            return out
                .write(conditions, current, current, metric_statuses, false)
                .await;
        }
        history.scaled(
            current,
            desired,
            Instant::now(),
            behavior::longest_period(spec.behavior.as_ref()),
        );
        conditions.set(
            "AbleToScale",
            true,
            "SucceededRescale",
            &format!("the HPA controller was able to update the target scale to {desired}"),
        );
        emit(
            false,
            "SuccessfulRescale",
            format!("New size: {desired}; reason: {reason}"),
        )
        .await;
        tracing::info!(hpa = %hpa.name_any(), namespace = %ns, from = current, to = desired, %reason, "rescaled");
    }
    out.write(conditions, current, desired, metric_statuses, rescale)
        .await
}

/// The target's scale could not be read (no such kind, no such object, no scale).
async fn failed_get_scale<F, Fut>(
    hpa: &HorizontalPodAutoscaler,
    ctx: &Context,
    conditions: &mut Conditions,
    old: &k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerStatus,
    message: String,
    emit: F,
) -> Result<(), Error>
where
    F: Fn(bool, &'static str, String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let full =
        format!("the HPA controller was unable to get the target's current scale: {message}");
    conditions.set("AbleToScale", false, "FailedGetScale", &full);
    // kube-controller-manager sets only AbleToScale here; ScalingActive says it too, so
    // `kubectl describe` and `-o jsonpath` on ScalingActive see why nothing scales.
    conditions.set("ScalingActive", false, "FailedGetScale", &full);
    emit(true, "FailedGetScale", message).await;
    let current = old.current_replicas.unwrap_or(0);
    let metrics = old.current_metrics.clone().unwrap_or_default();
    let conditions = std::mem::take(conditions);
    Out { hpa, ctx, old }
        .write(conditions, current, old.desired_replicas, metrics, false)
        .await
}

/// The `Api` of the target's kind, found through discovery (any kind with a `scale`).
async fn scale_api(
    client: &Client,
    ns: &str,
    target: &k8s_openapi::api::autoscaling::v2::CrossVersionObjectReference,
) -> Result<Api<DynamicObject>, String> {
    let api_version = target.api_version.as_deref().unwrap_or("v1");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, &target.kind);
    let (resource, caps) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .map_err(|_| {
            format!(
                "unable to resolve the kind {} of {}: no matches for kind \"{}\" in group \"{group}\"",
                target.kind, target.name, target.kind
            )
        })?;
    let resource: ApiResource = resource;
    Ok(if caps.scope == kube::discovery::Scope::Namespaced {
        Api::namespaced_with(client.clone(), ns, &resource)
    } else {
        Api::all_with(client.clone(), &resource)
    })
}

/// Where a reconcile writes the HPA's status: the HPA and its status as read.
struct Out<'a> {
    hpa: &'a HorizontalPodAutoscaler,
    ctx: &'a Context,
    old: &'a k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerStatus,
}

impl Out<'_> {
    /// Writes the status if it changed.
    #[allow(
        clippy::too_many_arguments,
        reason = "the status is assembled from these parts, as kube's setStatus does"
    )]
    async fn write(
        &self,
        conditions: Conditions,
        current: i32,
        desired: i32,
        metrics: Vec<MetricStatus>,
        rescaled: bool,
    ) -> Result<(), Error> {
        let (hpa, ctx, old) = (self.hpa, self.ctx, self.old);
        let new = status::status(hpa, old, conditions, current, desired, metrics, rescaled);
        if serde_json::to_value(&new).ok() == serde_json::to_value(old).ok() {
            return Ok(());
        }
        let mut body = serde_json::to_value(&new).unwrap_or(Value::Null);
        for key in ["currentMetrics", "lastScaleTime", "currentReplicas"] {
            if body.get(key).is_none() {
                body[key] = Value::Null;
            }
        }
        let api: Api<HorizontalPodAutoscaler> =
            Api::namespaced(ctx.client.clone(), &hpa.namespace().unwrap_or_default());
        api.patch_status(
            &hpa.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({"status": body})),
        )
        .await?;
        Ok(())
    }
}
