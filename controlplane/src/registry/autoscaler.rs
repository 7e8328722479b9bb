//! HorizontalPodAutoscaler defaulting and validation (autoscaling/v2, also for v1 and v2beta2
//! through their conversions), as kube-apiserver's `SetDefaults_HorizontalPodAutoscaler` and
//! `ValidateHorizontalPodAutoscalerSpec` do it.
//!
//! Defaults: `minReplicas: 1`; no metrics means CPU at 80% utilization; a `behavior` that is
//! set gets every rule it leaves out: scale up without stabilization, by the larger of 4 pods
//! or 100% per 15 s; scale down by up to 100% per 15 s, its stabilization window left to the
//! controller's `--horizontal-pod-autoscaler-downscale-stabilization` (5 min).

use serde_json::{Map, Value, json};

use super::meta::default_field;
use super::{Causes, Strategy};

/// HorizontalPodAutoscalers.
pub struct AutoscalerStrategy;

fn scale_up_default() -> Value {
    json!({"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
        {"type": "Pods", "value": 4, "periodSeconds": 15},
        {"type": "Percent", "value": 100, "periodSeconds": 15}]})
}

fn scale_down_default() -> Value {
    json!({"selectPolicy": "Max", "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]})
}

/// Fills the fields `rules` leaves out from `defaults`.
fn default_rules(behavior: &mut Map<String, Value>, key: &str, defaults: Value) {
    let rules = behavior
        .entry(key)
        .or_insert_with(|| json!({}))
        .as_object_mut();
    let (Some(rules), Value::Object(defaults)) = (rules, defaults) else {
        return;
    };
    for (k, v) in defaults {
        let empty = rules
            .get(&k)
            .is_none_or(|x| x.is_null() || x.as_array().is_some_and(Vec::is_empty));
        if empty {
            rules.insert(k, v);
        }
    }
}

impl Strategy for AutoscalerStrategy {
    fn default(&self, obj: &mut Value) {
        let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
            return;
        };
        default_field(spec, "minReplicas", json!(1));
        let no_metrics = spec
            .get("metrics")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        if no_metrics {
            spec.insert(
                "metrics".into(),
                json!([{"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 80}}}]),
            );
        }
        if let Some(behavior) = spec.get_mut("behavior").and_then(Value::as_object_mut) {
            default_rules(behavior, "scaleUp", scale_up_default());
            default_rules(behavior, "scaleDown", scale_down_default());
        }
    }

    fn validate(&self, obj: &Value, _old: Option<&Value>, causes: &mut Causes) {
        let spec = obj.get("spec").unwrap_or(&Value::Null);
        causes.at_least("spec.minReplicas", spec.get("minReplicas"), 1);
        let max = spec.get("maxReplicas").and_then(Value::as_i64);
        match max {
            None => causes.required("spec.maxReplicas"),
            Some(m) if m < spec.get("minReplicas").and_then(Value::as_i64).unwrap_or(1) => causes
                .invalid(
                    "spec.maxReplicas",
                    &json!(m),
                    "must be greater than or equal to `minReplicas`",
                ),
            _ => {}
        }
        if spec.pointer("/scaleTargetRef/kind").is_none() {
            causes.required("spec.scaleTargetRef.kind");
        }
        if spec.pointer("/scaleTargetRef/name").is_none() {
            causes.required("spec.scaleTargetRef.name");
        }
        for (i, m) in spec
            .get("metrics")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            validate_metric(&format!("spec.metrics[{i}]"), m, causes);
        }
        if let Some(b) = spec.get("behavior").filter(|b| !b.is_null()) {
            for key in ["scaleUp", "scaleDown"] {
                if let Some(rules) = b.get(key).filter(|r| !r.is_null()) {
                    validate_rules(&format!("spec.behavior.{key}"), rules, causes);
                }
            }
        }
    }
}

const SOURCES: &[&str] = &[
    "ContainerResource",
    "External",
    "Object",
    "Pods",
    "Resource",
];

fn validate_metric(path: &str, m: &Value, causes: &mut Causes) {
    let ty = m.get("type").and_then(Value::as_str).unwrap_or_default();
    if ty.is_empty() {
        causes.required(format!("{path}.type"));
        return;
    }
    if !SOURCES.contains(&ty) {
        causes.not_supported(format!("{path}.type"), &json!(ty), SOURCES);
        return;
    }
    let (field, needs_container) = match ty {
        "Resource" => ("resource", false),
        "ContainerResource" => ("containerResource", true),
        _ => return, // accepted, and reported by the controller as unavailable
    };
    let Some(source) = m.get(field).filter(|s| s.is_object()) else {
        causes.required(format!("{path}.{field}"));
        return;
    };
    let path = format!("{path}.{field}");
    if source
        .get("name")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        causes.required(format!("{path}.name"));
    }
    if needs_container
        && source
            .get("container")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        causes.required(format!("{path}.container"));
    }
    let target = source.get("target").unwrap_or(&Value::Null);
    let tt = target
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match tt {
        "Utilization" => match target.get("averageUtilization").and_then(Value::as_i64) {
            None => causes.required(format!("{path}.target.averageUtilization")),
            Some(u) if u <= 0 => causes.invalid(
                format!("{path}.target.averageUtilization"),
                &json!(u),
                "must be greater than 0",
            ),
            _ => {}
        },
        "AverageValue" => {
            let v = target.get("averageValue");
            let positive = v
                .and_then(Value::as_str)
                .and_then(crate::scheduler::quantity::parse)
                .or_else(|| v.and_then(Value::as_f64))
                .is_some_and(|x| x > 0.0);
            if v.is_none() {
                causes.required(format!("{path}.target.averageValue"));
            } else if !positive {
                causes.invalid(
                    format!("{path}.target.averageValue"),
                    v.unwrap_or(&Value::Null),
                    "must be positive",
                );
            }
        }
        "" => causes.required(format!("{path}.target.type")),
        other => causes.not_supported(
            format!("{path}.target.type"),
            &json!(other),
            &["AverageValue", "Utilization"],
        ),
    }
}

fn validate_rules(path: &str, rules: &Value, causes: &mut Causes) {
    if let Some(w) = rules
        .get("stabilizationWindowSeconds")
        .and_then(Value::as_i64)
        && !(0..=3600).contains(&w)
    {
        causes.invalid(
            format!("{path}.stabilizationWindowSeconds"),
            &json!(w),
            "must be between 0 and 3600",
        );
    }
    if let Some(p) = rules.get("selectPolicy").and_then(Value::as_str)
        && !["Max", "Min", "Disabled"].contains(&p)
    {
        causes.not_supported(
            format!("{path}.selectPolicy"),
            &json!(p),
            &["Disabled", "Max", "Min"],
        );
    }
    let policies = rules.get("policies").and_then(Value::as_array);
    if policies.is_none_or(Vec::is_empty) {
        causes.required(format!("{path}.policies"));
    }
    for (i, p) in policies.into_iter().flatten().enumerate() {
        let at = format!("{path}.policies[{i}]");
        let ty = p.get("type").and_then(Value::as_str).unwrap_or_default();
        if !["Pods", "Percent"].contains(&ty) {
            causes.not_supported(format!("{at}.type"), &json!(ty), &["Percent", "Pods"]);
        }
        match p.get("value").and_then(Value::as_i64) {
            Some(v) if v > 0 => {}
            v => causes.invalid(
                format!("{at}.value"),
                &json!(v),
                "must be greater than zero",
            ),
        }
        match p.get("periodSeconds").and_then(Value::as_i64) {
            Some(s) if (1..=1800).contains(&s) => {}
            s => causes.invalid(
                format!("{at}.periodSeconds"),
                &json!(s),
                "must be greater than zero and less than or equal to 1800",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hpa(spec: Value) -> Value {
        json!({"metadata": {"name": "h"}, "spec": spec})
    }

    #[test]
    fn a_set_behavior_gets_kubernetes_default_rules() {
        let mut h = hpa(
            json!({"maxReplicas": 5, "scaleTargetRef": {"kind": "Deployment", "name": "web"},
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}),
        );
        AutoscalerStrategy.default(&mut h);
        let b = &h["spec"]["behavior"];
        assert_eq!(b["scaleUp"], scale_up_default());
        assert_eq!(b["scaleDown"]["stabilizationWindowSeconds"], 60);
        assert_eq!(b["scaleDown"]["policies"][0]["type"], "Percent");
        assert_eq!(h["spec"]["minReplicas"], 1);
        assert_eq!(
            h["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            80
        );
        let mut causes = Causes::default();
        AutoscalerStrategy.validate(&h, None, &mut causes);
        assert!(causes.is_empty(), "{causes:?}");
        // Without behavior, none is invented: the controller's defaults apply.
        let mut plain =
            hpa(json!({"maxReplicas": 5, "scaleTargetRef": {"kind": "Deployment", "name": "web"}}));
        AutoscalerStrategy.default(&mut plain);
        assert!(plain["spec"].get("behavior").is_none());
    }

    #[test]
    fn rejects_bad_targets_and_policies() {
        let h = hpa(json!({"minReplicas": 1, "maxReplicas": 5,
            "scaleTargetRef": {"kind": "Deployment", "name": "web"},
            "metrics": [
                {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 0}}},
                {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "0"}}},
                {"type": "Bogus"}],
            "behavior": {"scaleUp": {"selectPolicy": "Most", "policies": [{"type": "Pods", "value": 0, "periodSeconds": 4000}]}}}));
        let mut causes = Causes::default();
        AutoscalerStrategy.validate(&h, None, &mut causes);
        let fields: Vec<String> = causes.0.iter().map(|c| c.field.clone()).collect();
        for f in [
            "spec.metrics[0].resource.target.averageUtilization",
            "spec.metrics[1].resource.target.averageValue",
            "spec.metrics[2].type",
            "spec.behavior.scaleUp.selectPolicy",
            "spec.behavior.scaleUp.policies[0].value",
            "spec.behavior.scaleUp.policies[0].periodSeconds",
        ] {
            assert!(fields.iter().any(|x| x == f), "{f} in {fields:?}");
        }
    }
}
