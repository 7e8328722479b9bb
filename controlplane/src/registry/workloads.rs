//! Workload kinds that embed a pod template: Deployment, ReplicaSet, ReplicationController,
//! StatefulSet, DaemonSet, Job and CronJob. Their defaults and checks differ in small ways
//! (which restart policies a template may use, which fields are immutable), so one strategy
//! type with a [`Workload`] tag serves them all.

use serde_json::{Map, Value, json};

use super::meta::{child, default_field};
use super::pod::{default_pod_spec, unimplemented_pod_fields, validate_pod_spec};
use super::{Causes, CreateContext, Strategy};

/// Which workload kind a [`WorkloadStrategy`] serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// apps/v1 Deployment.
    Deployment,
    /// apps/v1 ReplicaSet.
    ReplicaSet,
    /// core/v1 ReplicationController.
    ReplicationController,
    /// apps/v1 StatefulSet.
    StatefulSet,
    /// apps/v1 DaemonSet.
    DaemonSet,
    /// batch/v1 Job.
    Job,
    /// batch/v1 CronJob.
    CronJob,
}

/// The strategy of one workload kind.
pub struct WorkloadStrategy(pub Workload);

impl WorkloadStrategy {
    /// The JSON pointer of the pod template in this kind.
    fn template_path(&self) -> (&'static str, &'static str) {
        match self.0 {
            Workload::CronJob => (
                "/spec/jobTemplate/spec/template",
                "spec.jobTemplate.spec.template",
            ),
            _ => ("/spec/template", "spec.template"),
        }
    }
}

impl Strategy for WorkloadStrategy {
    fn default(&self, obj: &mut Value) {
        let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
            return;
        };
        match self.0 {
            Workload::Deployment => {
                default_field(spec, "replicas", json!(1));
                default_field(spec, "revisionHistoryLimit", json!(10));
                default_field(spec, "progressDeadlineSeconds", json!(600));
                let strategy = child(spec, "strategy");
                default_field(strategy, "type", json!("RollingUpdate"));
                if strategy["type"] == "RollingUpdate" {
                    let ru = child(strategy, "rollingUpdate");
                    default_field(ru, "maxUnavailable", json!("25%"));
                    default_field(ru, "maxSurge", json!("25%"));
                }
            }
            Workload::ReplicaSet => default_field(spec, "replicas", json!(1)),
            Workload::ReplicationController => {
                default_field(spec, "replicas", json!(1));
                // An RC without a selector selects its template's labels.
                let labels = spec
                    .get("template")
                    .and_then(|t| t.pointer("/metadata/labels"))
                    .cloned();
                if let Some(labels) = labels {
                    default_field(spec, "selector", labels);
                }
            }
            Workload::StatefulSet => {
                default_field(spec, "replicas", json!(1));
                default_field(spec, "revisionHistoryLimit", json!(10));
                default_field(spec, "podManagementPolicy", json!("OrderedReady"));
                let us = child(spec, "updateStrategy");
                default_field(us, "type", json!("RollingUpdate"));
                if us["type"] == "RollingUpdate" {
                    default_field(child(us, "rollingUpdate"), "partition", json!(0));
                }
                let retention = child(spec, "persistentVolumeClaimRetentionPolicy");
                default_field(retention, "whenDeleted", json!("Retain"));
                default_field(retention, "whenScaled", json!("Retain"));
            }
            Workload::DaemonSet => {
                default_field(spec, "revisionHistoryLimit", json!(10));
                let us = child(spec, "updateStrategy");
                default_field(us, "type", json!("RollingUpdate"));
                if us["type"] == "RollingUpdate" {
                    let ru = child(us, "rollingUpdate");
                    default_field(ru, "maxUnavailable", json!(1));
                    default_field(ru, "maxSurge", json!(0));
                }
            }
            Workload::Job => default_job_spec(spec),
            Workload::CronJob => {
                default_field(spec, "concurrencyPolicy", json!("Allow"));
                default_field(spec, "suspend", json!(false));
                default_field(spec, "successfulJobsHistoryLimit", json!(3));
                default_field(spec, "failedJobsHistoryLimit", json!(1));
                if let Some(Value::Object(jt)) =
                    spec.get_mut("jobTemplate").and_then(|t| t.get_mut("spec"))
                {
                    default_job_spec(jt);
                }
            }
        }
        let (template, _) = self.template_path();
        if let Some(Value::Object(pod)) = obj.pointer_mut(&format!("{template}/spec")) {
            default_pod_spec(pod);
        }
    }

    fn prepare_create(&self, obj: &mut Value, _ctx: &CreateContext) {
        if let Some(o) = obj.as_object_mut() {
            o.remove("status");
        }
        if self.0 == Workload::Job {
            label_job_pods(obj);
        }
    }

    fn validate(&self, obj: &Value, old: Option<&Value>, causes: &mut Causes) {
        let (tpl, tpl_field) = self.template_path();
        let spec = obj.get("spec").unwrap_or(&Value::Null);
        if spec.is_null() {
            causes.required("spec");
            return;
        }
        causes.at_least("spec.replicas", spec.get("replicas"), 0);
        causes.at_least(
            "spec.revisionHistoryLimit",
            spec.get("revisionHistoryLimit"),
            0,
        );
        let template = obj.pointer(tpl);
        match template {
            None => causes.required(tpl_field),
            Some(t) => {
                let pod_spec = t.get("spec").unwrap_or(&Value::Null);
                let pod_spec = match self.0 {
                    Workload::StatefulSet => with_claim_volumes(pod_spec, spec),
                    _ => pod_spec.clone(),
                };
                validate_pod_spec(&pod_spec, &format!("{tpl_field}.spec"), causes);
                if t.pointer("/spec/ephemeralContainers")
                    .and_then(Value::as_array)
                    .is_some_and(|l| !l.is_empty())
                {
                    causes.forbidden(
                        format!("{tpl_field}.spec.ephemeralContainers"),
                        "ephemeral containers not allowed in pod template",
                    );
                }
                causes.labels(
                    &format!("{tpl_field}.metadata.labels"),
                    t.pointer("/metadata/labels"),
                );
            }
        }
        let policy = template
            .and_then(|t| t.pointer("/spec/restartPolicy"))
            .cloned()
            .unwrap_or(Value::Null);
        let allowed: &[&str] = match self.0 {
            Workload::Job | Workload::CronJob => &["OnFailure", "Never"],
            _ => &["Always"],
        };
        if !policy.is_null() && !allowed.contains(&policy.as_str().unwrap_or_default()) {
            causes.not_supported(format!("{tpl_field}.spec.restartPolicy"), &policy, allowed);
        }
        match self.0 {
            Workload::Job | Workload::CronJob => {
                if self.0 == Workload::CronJob {
                    validate_schedule(spec.get("schedule"), causes);
                }
                let job = if self.0 == Workload::Job {
                    spec
                } else {
                    spec.pointer("/jobTemplate/spec").unwrap_or(&Value::Null)
                };
                let prefix = if self.0 == Workload::Job {
                    "spec"
                } else {
                    "spec.jobTemplate.spec"
                };
                for f in [
                    "parallelism",
                    "completions",
                    "backoffLimit",
                    "activeDeadlineSeconds",
                ] {
                    causes.at_least(&format!("{prefix}.{f}"), job.get(f), 0);
                }
            }
            Workload::ReplicationController => {}
            _ => validate_selector(spec, template, tpl_field, causes),
        }
        if let Some(old) = old {
            let immutable: &[(&str, &str)] = match self.0 {
                Workload::Deployment | Workload::ReplicaSet | Workload::DaemonSet => {
                    &[("/spec/selector", "spec.selector")]
                }
                Workload::StatefulSet => &[
                    ("/spec/selector", "spec.selector"),
                    ("/spec/serviceName", "spec.serviceName"),
                    ("/spec/volumeClaimTemplates", "spec.volumeClaimTemplates"),
                    ("/spec/podManagementPolicy", "spec.podManagementPolicy"),
                ],
                Workload::Job => &[
                    ("/spec/selector", "spec.selector"),
                    ("/spec/template", "spec.template"),
                    ("/spec/completions", "spec.completions"),
                    ("/spec/completionMode", "spec.completionMode"),
                ],
                _ => &[],
            };
            for (ptr, field) in immutable {
                if obj.pointer(ptr) != old.pointer(ptr) {
                    causes.immutable(*field, obj.pointer(ptr).unwrap_or(&Value::Null));
                }
            }
        }
    }

    fn field_labels(&self) -> &'static [(&'static str, &'static str)] {
        match self.0 {
            Workload::ReplicaSet | Workload::ReplicationController => {
                &[("status.replicas", "/status/replicas")]
            }
            Workload::Job => &[("status.successful", "/status/succeeded")],
            _ => &[],
        }
    }

    fn warnings(&self, obj: &Value) -> Vec<String> {
        let (tpl, field) = self.template_path();
        obj.pointer(&format!("{tpl}/spec"))
            .map(|s| unimplemented_pod_fields(s, &format!("{field}.spec")))
            .unwrap_or_default()
    }
}

fn default_job_spec(spec: &mut Map<String, Value>) {
    default_field(spec, "parallelism", json!(1));
    let manual_completions = spec.get("completions").is_some_and(|v| !v.is_null());
    if !manual_completions && spec["parallelism"] == 1 {
        spec.insert("completions".into(), json!(1));
    }
    default_field(spec, "backoffLimit", json!(6));
    default_field(spec, "completionMode", json!("NonIndexed"));
    default_field(spec, "suspend", json!(false));
    default_field(spec, "manualSelector", json!(false));
    default_field(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
}

/// As the job registry does: unless the user chose a selector, select on the job's own uid,
/// and put that label (and the job name) on the template.
fn label_job_pods(obj: &mut Value) {
    let uid = obj.pointer("/metadata/uid").cloned().unwrap_or(Value::Null);
    let name = obj
        .pointer("/metadata/name")
        .cloned()
        .unwrap_or(Value::Null);
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if spec.get("manualSelector") == Some(&json!(true)) {
        return;
    }
    spec.insert(
        "selector".into(),
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
    );
    let tpl_meta = child(child(spec, "template"), "metadata");
    let labels = child(tpl_meta, "labels");
    labels.insert("batch.kubernetes.io/controller-uid".into(), uid.clone());
    labels.insert("batch.kubernetes.io/job-name".into(), name.clone());
    labels.insert("controller-uid".into(), uid);
    labels.insert("job-name".into(), name);
}

fn validate_selector(spec: &Value, template: Option<&Value>, tpl_field: &str, causes: &mut Causes) {
    let Some(selector) = spec.get("selector").filter(|s| !s.is_null()) else {
        causes.required("spec.selector");
        return;
    };
    let match_labels = selector.get("matchLabels").and_then(Value::as_object);
    let expressions = selector.get("matchExpressions").and_then(Value::as_array);
    if match_labels.is_none_or(Map::is_empty) && expressions.is_none_or(Vec::is_empty) {
        causes.invalid(
            "spec.selector",
            selector,
            "empty selector is invalid for deployment",
        );
        return;
    }
    causes.labels("spec.selector.matchLabels", selector.get("matchLabels"));
    let labels = template
        .and_then(|t| t.pointer("/metadata/labels"))
        .and_then(Value::as_object);
    let matches = match_labels
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
    if !matches {
        causes.invalid(
            format!("{tpl_field}.metadata.labels"),
            &Value::Object(labels.cloned().unwrap_or_default()),
            "`selector` does not match template `labels`",
        );
    }
}

fn validate_schedule(schedule: Option<&Value>, causes: &mut Causes) {
    let Some(s) = schedule.and_then(Value::as_str).filter(|s| !s.is_empty()) else {
        causes.required("spec.schedule");
        return;
    };
    // The CronJob controller's own parser decides: 5 fields, the @ descriptors, `@every`,
    // and wasmkube's optional leading seconds field.
    if let Err(e) = s.parse::<crate::controllers::cronjob::schedule::Schedule>() {
        causes.invalid("spec.schedule", &json!(s), &e.to_string());
    }
}

/// A StatefulSet's pod spec as its pods get it: one more volume per `volumeClaimTemplate`
/// (mounting the ordinal's claim), so mounts may name the templates.
fn with_claim_volumes(pod_spec: &Value, set_spec: &Value) -> Value {
    let mut pod_spec = pod_spec.clone();
    let claims: Vec<String> = set_spec
        .get("volumeClaimTemplates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.pointer("/metadata/name").and_then(Value::as_str))
        .map(str::to_string)
        .collect();
    if let Some(o) = pod_spec.as_object_mut() {
        let volumes = o.entry("volumes").or_insert_with(|| json!([]));
        if let Some(list) = volumes.as_array_mut() {
            for name in claims {
                if !list.iter().any(|v| v.get("name") == Some(&json!(name))) {
                    list.push(json!({"name": name,
                        "persistentVolumeClaim": {"claimName": name}}));
                }
            }
        }
    }
    pod_spec
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment() -> Value {
        json!({"metadata": {"name": "web"}, "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}})
    }

    #[test]
    fn deployment_defaults_rolling_update() {
        let mut d = deployment();
        WorkloadStrategy(Workload::Deployment).default(&mut d);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        assert_eq!(d["spec"]["template"]["spec"]["restartPolicy"], "Always");
    }

    #[test]
    fn rejects_negative_replicas() {
        let mut d = deployment();
        d["spec"]["replicas"] = json!(-1);
        let mut causes = Causes::default();
        WorkloadStrategy(Workload::Deployment).validate(&d, None, &mut causes);
        assert_eq!(causes.0.len(), 1);
        assert_eq!(causes.0[0].field, "spec.replicas");
    }

    #[test]
    fn selector_must_match_template() {
        let mut d = deployment();
        d["spec"]["selector"]["matchLabels"]["app"] = json!("other");
        let mut causes = Causes::default();
        WorkloadStrategy(Workload::Deployment).validate(&d, None, &mut causes);
        assert!(
            causes.0[0]
                .message
                .contains("`selector` does not match template `labels`")
        );
    }

    #[test]
    fn selector_is_immutable() {
        let old = deployment();
        let mut d = deployment();
        d["spec"]["selector"]["matchLabels"]["tier"] = json!("x");
        d["spec"]["template"]["metadata"]["labels"]["tier"] = json!("x");
        let mut causes = Causes::default();
        WorkloadStrategy(Workload::Deployment).validate(&d, Some(&old), &mut causes);
        assert!(causes.0[0].message.ends_with("field is immutable"));
    }

    #[test]
    fn job_template_must_not_restart_always() {
        let job = json!({"spec": {"template": {"spec": {"restartPolicy": "Always",
            "containers": [{"name": "a", "image": "busybox"}]}}}});
        let mut causes = Causes::default();
        WorkloadStrategy(Workload::Job).validate(&job, None, &mut causes);
        assert_eq!(causes.0[0].field, "spec.template.spec.restartPolicy");
    }

    #[test]
    fn statefulset_mounts_may_name_claim_templates() {
        let mut set = deployment();
        set["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] =
            json!([{"name": "data", "mountPath": "/data"}]);
        let mut causes = Causes::default();
        WorkloadStrategy(Workload::StatefulSet).validate(&set, None, &mut causes);
        assert_eq!(
            causes.0[0].field,
            "spec.template.spec.containers[0].volumeMounts[0].name"
        );
        set["spec"]["volumeClaimTemplates"] = json!([{"metadata": {"name": "data"}}]);
        let mut causes = Causes::default();
        WorkloadStrategy(Workload::StatefulSet).validate(&set, None, &mut causes);
        assert!(causes.is_empty(), "{causes:?}");
    }
}
