//! Where a metric's proposal comes from: the PodMetrics of the target's pods
//! (`metrics.k8s.io`, read through the API like any client) and the HPA's metric spec.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::autoscaling::v2::MetricSpec;
use k8s_openapi::api::core::v1::Pod;
use kube::{Client, ResourceExt};
use serde_json::Value;

use super::replicas::{self, PodSample, Proposal, Settings, Target};
use super::{Computed, Context, status};
use crate::apiserver::selectors::LabelSelector;

/// PodMetrics of the pods `selector` names: pod name -> sample, or why they are not there.
pub(super) async fn pod_metrics(
    client: &Client,
    ns: &str,
    selector: &str,
) -> Result<
    Vec<(
        String,
        jiff::Timestamp,
        Duration,
        BTreeMap<String, (i64, i64)>,
    )>,
    String,
> {
    let url = format!(
        "/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods?labelSelector={}",
        percent_encoding::utf8_percent_encode(selector, percent_encoding::NON_ALPHANUMERIC)
    );
    let request = http::Request::get(url)
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    let list: Value = client
        .request(request)
        .await
        .map_err(|e| format!("unable to fetch metrics from resource metrics API: {e}"))?;
    let items = list["items"].as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        return Err("no metrics returned from resource metrics API".into());
    }
    let quantity = |q: &Value| {
        q.as_str()
            .and_then(crate::scheduler::quantity::parse)
            .map(|v| (v * 1000.0).round() as i64)
    };
    Ok(items
        .iter()
        .filter_map(|item| {
            let name = item.pointer("/metadata/name")?.as_str()?.to_string();
            let at: jiff::Timestamp = item["timestamp"].as_str()?.parse().ok()?;
            let window = item["window"]
                .as_str()
                .and_then(|w| w.strip_suffix('s'))
                .and_then(|w| w.parse::<f64>().ok())
                .and_then(|w| Duration::try_from_secs_f64(w).ok())
                .unwrap_or_default();
            let containers = item["containers"]
                .as_array()?
                .iter()
                .filter_map(|c| {
                    Some((
                        c["name"].as_str()?.to_string(),
                        (
                            quantity(&c["usage"]["cpu"])?,
                            quantity(&c["usage"]["memory"])?,
                        ),
                    ))
                })
                .collect();
            Some((name, at, window, containers))
        })
        .collect())
}

pub(super) type Samples = Result<
    Vec<(
        String,
        jiff::Timestamp,
        Duration,
        BTreeMap<String, (i64, i64)>,
    )>,
    String,
>;

/// One metric's proposal.
pub(super) fn compute(
    metric: &MetricSpec,
    spec: &k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerSpec,
    current: i32,
    ns: &str,
    selector: &str,
    samples: &Samples,
    ctx: &Context,
) -> Result<Computed, (&'static str, String)> {
    let (resource, container, target) = match (
        metric.type_.as_str(),
        &metric.resource,
        &metric.container_resource,
    ) {
        ("Resource", Some(r), _) => (r.name.clone(), None, r.target.clone()),
        ("ContainerResource", _, Some(c)) => {
            (c.name.clone(), Some(c.container.clone()), c.target.clone())
        }
        (other, _, _) => {
            return Err((
                "InvalidMetricSourceType",
                format!(
                    "the HPA was unable to compute the replica count: {other} metrics need the custom or external metrics API, which wasmkube does not serve"
                ),
            ));
        }
    };
    let failed = |e: String| {
        (
            "FailedGetResourceMetric",
            format!(
                "failed to get {resource} utilization: unable to get metrics for resource {resource}: {e}"
            ),
        )
    };
    let samples = samples.as_ref().map_err(|e| failed(e.clone()))?;
    let index = if resource == "cpu" { 0 } else { 1 };
    let samples: BTreeMap<String, PodSample> = samples
        .iter()
        .map(|(name, at, window, containers)| {
            let values = containers
                .iter()
                .map(|(c, v)| (c.clone(), if index == 0 { v.0 } else { v.1 }))
                .collect();
            (
                name.clone(),
                PodSample {
                    at: *at,
                    window: *window,
                    containers: values,
                },
            )
        })
        .collect();
    let selector = LabelSelector::parse(selector).map_err(|e| ("InvalidSelector", e))?;
    let pods: Vec<Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(ns))
        .filter(|p| {
            let labels = serde_json::to_value(p.labels()).ok();
            selector.matches(labels.as_ref())
        })
        .collect();
    let pods: Vec<&Pod> = pods.iter().map(|p| p.as_ref()).collect();
    let tolerance = |rules: Option<&k8s_openapi::api::autoscaling::v2::HPAScalingRules>| {
        rules
            .and_then(|r| r.tolerance.as_ref())
            .and_then(|q| crate::scheduler::quantity::parse(&q.0))
            .unwrap_or(ctx.options.tolerance)
    };
    let behavior = spec.behavior.as_ref();
    let settings = Settings {
        resource: &resource,
        container: container.as_deref(),
        current,
        tolerance_down: tolerance(behavior.and_then(|b| b.scale_down.as_ref())),
        tolerance_up: tolerance(behavior.and_then(|b| b.scale_up.as_ref())),
        cpu_initialization: ctx.options.cpu_initialization_period,
        readiness_delay: ctx.options.initial_readiness_delay,
        now: jiff::Timestamp::now(),
    };
    let goal = match (
        target.type_.as_str(),
        target.average_utilization,
        &target.average_value,
    ) {
        ("Utilization", Some(u), _) => Target::Utilization(u),
        ("AverageValue", _, Some(v)) => Target::AverageValue(
            crate::scheduler::quantity::parse(&v.0)
                .map(|v| (v * 1000.0).round() as i64)
                .unwrap_or(0),
        ),
        (other, _, _) => {
            return Err((
                "FailedGetResourceMetric",
                format!(
                    "invalid resource metric source: target type {other:?} needs averageUtilization or averageValue"
                ),
            ));
        }
    };
    let proposal: Proposal = replicas::propose(&pods, &samples, goal, &settings).map_err(failed)?;
    let name = match goal {
        Target::Utilization(_) => {
            format!("{resource} resource utilization (percentage of request)")
        }
        Target::AverageValue(_) => format!("{resource} resource"),
    };
    Ok(Computed {
        replicas: proposal.replicas,
        name,
        status: status::metric_status(metric, &resource, container.as_deref(), &proposal),
    })
}
