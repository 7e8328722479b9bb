//! `completionMode: Indexed`: each pod carries its completion index (annotation, label,
//! `JOB_COMPLETION_INDEX` and a `JOB-i` hostname), each index must succeed once, and
//! `status.completedIndexes` lists the done ones as ranges (`"0-2,4"`).

use std::collections::{BTreeSet, HashSet};

use k8s_openapi::api::core::v1::{EnvVar, Pod};

use crate::controllers::pods;

/// The annotation (and label) holding a pod's completion index.
pub const ANNOTATION: &str = "batch.kubernetes.io/job-completion-index";
/// The environment variable every container of an indexed pod gets.
const ENV: &str = "JOB_COMPLETION_INDEX";

/// A pod's completion index, from its annotation (as kube reads it).
pub fn of(pod: &Pod) -> Option<i32> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(ANNOTATION)?
        .parse()
        .ok()
        .filter(|i| *i >= 0)
}

/// Sorted indexes as kube writes them: runs of consecutive numbers as `a-b`, comma-separated.
pub fn compress(indexes: &BTreeSet<i32>) -> String {
    let mut runs: Vec<(i32, i32)> = Vec::new();
    for &i in indexes {
        match runs.last_mut() {
            Some((_, end)) if *end + 1 == i => *end = i,
            _ => runs.push((i, i)),
        }
    }
    runs.iter()
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Active pods an Indexed Job does not need: no valid index, an index that already
/// succeeded, or a second pod for the same index (the newer one goes).
pub fn surplus(active: &[&Pod], completed: &BTreeSet<i32>, completions: i32) -> Vec<String> {
    let mut sorted: Vec<&Pod> = active.to_vec();
    // Oldest first, so the duplicate that goes is the newer one.
    sorted.sort_by(|a, b| pods::deletion_order(b, a));
    let mut seen = HashSet::new();
    sorted
        .into_iter()
        .filter(|p| match of(p) {
            Some(i) if i < completions && !completed.contains(&i) => !seen.insert(i),
            _ => true,
        })
        .map(|p| p.metadata.name.clone().unwrap_or_default())
        .collect()
}

/// Makes a pod from the Job's template into the pod for index `index`.
pub fn decorate(pod: &mut Pod, job: &str, index: i32) {
    let value = index.to_string();
    pod.metadata.generate_name = Some(format!("{job}-{index}-"));
    pod.metadata
        .annotations
        .get_or_insert_default()
        .insert(ANNOTATION.into(), value.clone());
    pod.metadata
        .labels
        .get_or_insert_default()
        .insert(ANNOTATION.into(), value.clone());
    let Some(spec) = pod.spec.as_mut() else {
        return;
    };
    spec.hostname = Some(format!("{job}-{index}"));
    for container in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        let env = container.env.get_or_insert_default();
        env.retain(|e| e.name != ENV);
        env.push(EnvVar {
            name: ENV.into(),
            value: Some(value.clone()),
            value_from: None,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn compresses_runs_into_ranges() {
        let set = |v: &[i32]| v.iter().copied().collect::<BTreeSet<_>>();
        assert_eq!(compress(&set(&[])), "");
        assert_eq!(compress(&set(&[3])), "3");
        assert_eq!(compress(&set(&[0, 1, 2, 4])), "0-2,4");
        assert_eq!(compress(&set(&[1, 3, 4, 5, 7, 8])), "1,3-5,7-8");
    }

    #[test]
    fn indexed_pod_gets_annotation_label_env_and_hostname() {
        let mut pod: Pod = serde_json::from_value(json!({"metadata": {},
            "spec": {"containers": [{"name": "a"}, {"name": "b",
                "env": [{"name": "JOB_COMPLETION_INDEX", "value": "stale"}]}]}}))
        .unwrap();
        decorate(&mut pod, "pi", 3);
        assert_eq!(of(&pod), Some(3));
        assert_eq!(pod.metadata.labels.unwrap()[ANNOTATION], "3");
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("pi-3-"));
        let spec = pod.spec.unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("pi-3"));
        for c in &spec.containers {
            let env = c.env.as_ref().unwrap();
            assert_eq!(env.len(), 1);
            assert_eq!(env[0].value.as_deref(), Some("3"));
        }
    }

    #[test]
    fn surplus_drops_duplicates_and_done_indexes() {
        let pod = |name: &str, i: &str, created: &str| -> Pod {
            serde_json::from_value(
                json!({"metadata": {"name": name, "creationTimestamp": created,
                "annotations": {ANNOTATION: i}}, "status": {"phase": "Running"}}),
            )
            .unwrap()
        };
        let old = pod("old", "1", "2026-01-01T00:00:00Z");
        let new = pod("new", "1", "2026-01-01T00:01:00Z");
        let done = pod("done", "0", "2026-01-01T00:00:00Z");
        let out = pod("out", "9", "2026-01-01T00:00:00Z");
        let completed: BTreeSet<i32> = [0].into();
        let mut s = surplus(&[&old, &new, &done, &out], &completed, 3);
        s.sort();
        assert_eq!(s, ["done", "new", "out"]);
    }
}
