//! The HPA's status: conditions (a transition time that moves only when the status does),
//! `currentMetrics` in the shape `kubectl get hpa` prints (`cpu: 73%/50%`), replicas and
//! `lastScaleTime`.

use k8s_openapi::api::autoscaling::v2::{
    ContainerResourceMetricStatus, HorizontalPodAutoscaler, HorizontalPodAutoscalerCondition,
    HorizontalPodAutoscalerStatus, MetricSpec, MetricStatus, MetricValueStatus,
    ResourceMetricStatus,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::replicas::Proposal;

/// The HPA's conditions, in kube's order.
#[derive(Debug, Default)]
pub struct Conditions(Vec<HorizontalPodAutoscalerCondition>);

impl From<Vec<HorizontalPodAutoscalerCondition>> for Conditions {
    fn from(v: Vec<HorizontalPodAutoscalerCondition>) -> Self {
        Conditions(v)
    }
}

impl Conditions {
    /// Sets condition `type_`; its transition time changes only with its status.
    pub fn set(&mut self, type_: &str, status: bool, reason: &str, message: &str) {
        let status = if status { "True" } else { "False" }.to_string();
        let now = Some(Time(jiff::Timestamp::now()));
        match self.0.iter_mut().find(|c| c.type_ == type_) {
            Some(c) => {
                if c.status != status {
                    c.last_transition_time = now;
                }
                c.status = status;
                c.reason = Some(reason.into());
                c.message = Some(message.into());
            }
            None => self.0.push(HorizontalPodAutoscalerCondition {
                type_: type_.into(),
                status,
                reason: Some(reason.into()),
                message: Some(message.into()),
                last_transition_time: now,
                observed_generation: None,
            }),
        }
        let order = |t: &str| match t {
            "AbleToScale" => 0,
            "ScalingActive" => 1,
            "ScalingLimited" => 2,
            _ => 3,
        };
        self.0.sort_by_key(|c| order(&c.type_));
    }
}

/// A milli-value as a quantity (`250m`, `10485760`).
pub fn milli_quantity(milli: i64) -> Quantity {
    if milli % 1000 == 0 {
        Quantity((milli / 1000).to_string())
    } else {
        Quantity(format!("{milli}m"))
    }
}

/// The `currentMetrics` entry of a computed metric.
pub fn metric_status(
    spec: &MetricSpec,
    resource: &str,
    container: Option<&str>,
    p: &Proposal,
) -> MetricStatus {
    let current = MetricValueStatus {
        average_utilization: p.utilization,
        average_value: Some(milli_quantity(p.average)),
        value: None,
    };
    match container {
        Some(c) => MetricStatus {
            type_: spec.type_.clone(),
            container_resource: Some(ContainerResourceMetricStatus {
                container: c.into(),
                name: resource.into(),
                current,
            }),
            ..MetricStatus::default()
        },
        None => MetricStatus {
            type_: spec.type_.clone(),
            resource: Some(ResourceMetricStatus {
                name: resource.into(),
                current,
            }),
            ..MetricStatus::default()
        },
    }
}

/// The new status.
pub fn status(
    hpa: &HorizontalPodAutoscaler,
    old: &HorizontalPodAutoscalerStatus,
    conditions: Conditions,
    current: i32,
    desired: i32,
    metrics: Vec<MetricStatus>,
    rescaled: bool,
) -> HorizontalPodAutoscalerStatus {
    HorizontalPodAutoscalerStatus {
        conditions: Some(conditions.0),
        current_metrics: (!metrics.is_empty()).then_some(metrics),
        current_replicas: Some(current),
        desired_replicas: desired,
        last_scale_time: if rescaled {
            Some(Time(jiff::Timestamp::now()))
        } else {
            old.last_scale_time.clone()
        },
        observed_generation: hpa.metadata.generation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_with_the_status() {
        let mut c = Conditions::default();
        c.set("ScalingLimited", false, "DesiredWithinRange", "x");
        c.set("AbleToScale", true, "SucceededGetScale", "y");
        assert_eq!(c.0[0].type_, "AbleToScale", "kube's order");
        let first = c.0[1].last_transition_time.clone();
        std::thread::sleep(std::time::Duration::from_millis(2));
        c.set("ScalingLimited", false, "DesiredWithinRange", "again");
        assert_eq!(c.0[1].last_transition_time, first);
        c.set("ScalingLimited", true, "TooManyReplicas", "now");
        assert_ne!(c.0[1].last_transition_time, first);
        assert_eq!(milli_quantity(250).0, "250m");
        assert_eq!(milli_quantity(10_485_760_000).0, "10485760");
    }
}
