//! Conversions for kinds served in more than one version: each kind has one storage version,
//! and other versions are converted on the way in and out (as kube-apiserver's conversion
//! functions do). HorizontalPodAutoscaler is stored as autoscaling/v2; core/v1 Events are the
//! storage of events.k8s.io/v1 Events.

use serde_json::{Map, Value, json};

/// How a served version maps to its storage version.
pub struct Conversion {
    /// The group objects are stored under.
    pub storage_group: &'static str,
    /// The plural objects are stored under.
    pub storage_plural: &'static str,
    /// The served form to the storage form.
    pub to_storage: fn(Value) -> Value,
    /// The storage form to the served form.
    pub from_storage: fn(Value) -> Value,
}

/// autoscaling/v2beta2 HPAs: the same shape as v2.
pub static HPA_V2BETA2: Conversion = Conversion {
    storage_group: "autoscaling",
    storage_plural: "horizontalpodautoscalers",
    to_storage: |v| with_api_version(v, "autoscaling/v2"),
    from_storage: |v| with_api_version(v, "autoscaling/v2beta2"),
};

/// autoscaling/v1 HPAs: `targetCPUUtilizationPercentage` is a v2 CPU utilization metric.
pub static HPA_V1: Conversion = Conversion {
    storage_group: "autoscaling",
    storage_plural: "horizontalpodautoscalers",
    to_storage: hpa_v1_to_v2,
    from_storage: hpa_v2_to_v1,
};

/// events.k8s.io/v1 Events, stored as core/v1 Events.
pub static EVENTS_V1: Conversion = Conversion {
    storage_group: "",
    storage_plural: "events",
    to_storage: event_to_core,
    from_storage: event_from_core,
};

/// Sets `apiVersion`.
pub fn with_api_version(mut v: Value, api_version: &str) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.insert("apiVersion".into(), json!(api_version));
    }
    v
}

/// Normalizes an autoscaling/v2beta2 HPA through the v2 type, which has the same fields.
pub fn normalize_v2beta2(v: Value) -> Result<Value, serde_json::Error> {
    use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
    let typed: HorizontalPodAutoscaler =
        serde_json::from_value(with_api_version(v, "autoscaling/v2"))?;
    Ok(with_api_version(
        serde_json::to_value(typed)?,
        "autoscaling/v2beta2",
    ))
}

fn cpu_metric(utilization: &Value) -> Value {
    json!({"type": "Resource", "resource": {"name": "cpu",
        "target": {"type": "Utilization", "averageUtilization": utilization}}})
}

fn hpa_v1_to_v2(mut v: Value) -> Value {
    if let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut)
        && let Some(target) = spec.remove("targetCPUUtilizationPercentage")
    {
        spec.insert("metrics".into(), json!([cpu_metric(&target)]));
    }
    if let Some(status) = v.get_mut("status").and_then(Value::as_object_mut) {
        if let Some(current) = status.remove("currentCPUUtilizationPercentage") {
            status.insert(
                "currentMetrics".into(),
                json!([{"type": "Resource", "resource": {"name": "cpu",
                    "current": {"averageUtilization": current}}}]),
            );
        }
        status
            .remove("lastScaleTime")
            .map(|t| status.insert("lastScaleTime".into(), t));
    }
    with_api_version(v, "autoscaling/v2")
}

fn hpa_v2_to_v1(mut v: Value) -> Value {
    let is_cpu =
        |m: &&Value| m["type"] == "Resource" && m.pointer("/resource/name") == Some(&json!("cpu"));
    if let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut)
        && let Some(Value::Array(metrics)) = spec.remove("metrics")
    {
        spec.remove("behavior");
        if let Some(u) = metrics
            .iter()
            .find(is_cpu)
            .and_then(|m| m.pointer("/resource/target/averageUtilization"))
        {
            spec.insert("targetCPUUtilizationPercentage".into(), u.clone());
        }
    }
    if let Some(status) = v.get_mut("status").and_then(Value::as_object_mut) {
        status.remove("conditions");
        if let Some(Value::Array(metrics)) = status.remove("currentMetrics")
            && let Some(u) = metrics
                .iter()
                .find(is_cpu)
                .and_then(|m| m.pointer("/resource/current/averageUtilization"))
        {
            status.insert("currentCPUUtilizationPercentage".into(), u.clone());
        }
    }
    with_api_version(v, "autoscaling/v1")
}

fn rename(from: &mut Map<String, Value>, to: &mut Map<String, Value>, a: &str, b: &str) {
    if let Some(v) = from.remove(a) {
        to.insert(b.to_string(), v);
    }
}

fn event_to_core(v: Value) -> Value {
    let Value::Object(mut src) = v else { return v };
    let mut out = Map::new();
    for (a, b) in [
        ("metadata", "metadata"),
        ("regarding", "involvedObject"),
        ("related", "related"),
        ("note", "message"),
        ("reason", "reason"),
        ("type", "type"),
        ("action", "action"),
        ("eventTime", "eventTime"),
        ("reportingController", "reportingComponent"),
        ("reportingInstance", "reportingInstance"),
        ("series", "series"),
        ("deprecatedFirstTimestamp", "firstTimestamp"),
        ("deprecatedLastTimestamp", "lastTimestamp"),
        ("deprecatedCount", "count"),
        ("deprecatedSource", "source"),
    ] {
        rename(&mut src, &mut out, a, b);
    }
    out.insert("apiVersion".into(), json!("v1"));
    out.insert("kind".into(), json!("Event"));
    if !out.contains_key("involvedObject") {
        out.insert("involvedObject".into(), json!({}));
    }
    Value::Object(out)
}

fn event_from_core(v: Value) -> Value {
    let Value::Object(mut src) = v else { return v };
    let mut out = Map::new();
    for (b, a) in [
        ("metadata", "metadata"),
        ("regarding", "involvedObject"),
        ("related", "related"),
        ("note", "message"),
        ("reason", "reason"),
        ("type", "type"),
        ("action", "action"),
        ("eventTime", "eventTime"),
        ("reportingController", "reportingComponent"),
        ("reportingInstance", "reportingInstance"),
        ("series", "series"),
        ("deprecatedFirstTimestamp", "firstTimestamp"),
        ("deprecatedLastTimestamp", "lastTimestamp"),
        ("deprecatedCount", "count"),
        ("deprecatedSource", "source"),
    ] {
        rename(&mut src, &mut out, a, b);
    }
    out.insert("apiVersion".into(), json!("events.k8s.io/v1"));
    out.insert("kind".into(), json!("Event"));
    if !out.contains_key("eventTime") {
        out.insert("eventTime".into(), Value::Null);
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hpa_v1_round_trips_through_v2() {
        let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "spec": {"maxReplicas": 5, "targetCPUUtilizationPercentage": 50,
                "scaleTargetRef": {"kind": "Deployment", "name": "web"}}});
        let v2 = (HPA_V1.to_storage)(v1.clone());
        assert_eq!(
            v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            50
        );
        assert_eq!((HPA_V1.from_storage)(v2), v1);
    }

    #[test]
    fn events_v1_map_to_core_fields() {
        let e = json!({"regarding": {"name": "p"}, "note": "hi", "reason": "Started"});
        let core = (EVENTS_V1.to_storage)(e);
        assert_eq!(core["involvedObject"]["name"], "p");
        assert_eq!(core["message"], "hi");
        assert_eq!((EVENTS_V1.from_storage)(core)["note"], "hi");
    }
}
