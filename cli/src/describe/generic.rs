//! kubectl's generic describer, for kinds without a describer of their own: name, namespace,
//! labels and annotations, then every other field of the object with kubectl's "smart" labels.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Writer, annotations, labels};
use crate::print::cell_text;

/// kubectl's generic describer: name, namespace, labels, annotations, then every other field.
pub(super) fn describe(out: &mut Writer, obj: &Value) {
    let meta = &obj["metadata"];
    w!(out, 0, "Name:\t{}", meta["name"].as_str().unwrap_or(""));
    w!(
        out,
        0,
        "Namespace:\t{}",
        meta["namespace"].as_str().unwrap_or("")
    );
    let as_map = |v: &Value| -> Option<BTreeMap<String, String>> {
        v.as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), cell_text(v))).collect())
    };
    labels(out, "Labels", as_map(&meta["labels"]).as_ref());
    annotations(out, "Annotations", as_map(&meta["annotations"]).as_ref());
    if let Some(map) = obj.as_object() {
        let skip = [
            ".metadata.managedFields",
            ".metadata.name",
            ".metadata.namespace",
            ".metadata.labels",
            ".metadata.annotations",
        ];
        unstructured(out, 0, map, "", &skip);
    }
}

fn unstructured(
    out: &mut Writer,
    level: usize,
    content: &serde_json::Map<String, Value>,
    prefix: &str,
    skip: &[&str],
) {
    let mut fields: Vec<&String> = content.keys().collect();
    fields.sort();
    for field in fields {
        let path = format!("{prefix}.{field}");
        if skip.contains(&path.as_str()) {
            continue;
        }
        match &content[field.as_str()] {
            Value::Object(map) => {
                w!(out, level, "{}:", smart_label(field));
                unstructured(out, level + 1, map, &path, skip);
            }
            Value::Array(items) => {
                w!(out, level, "{}:", smart_label(field));
                for item in items {
                    match item {
                        Value::Object(map) => unstructured(out, level + 1, map, &path, skip),
                        other => w!(out, level + 1, "{}", cell_text(other)),
                    }
                }
            }
            other => w!(out, level, "{}:\t{}", smart_label(field), cell_text(other)),
        }
    }
}

/// kubectl's `smartLabelFor`: `apiVersion` -> `API Version`, `podIP` -> `Pod IP`; names with
/// characters other than letters and `-` are kept as they are.
fn smart_label(field: &str) -> String {
    if field.is_empty() || field.chars().any(|c| !c.is_alphabetic() && c != '-') {
        return field.to_string();
    }
    const ACRONYMS: [&str; 5] = ["API", "URL", "UID", "OSB", "GUID"];
    camel_split(field)
        .into_iter()
        .map(|part| {
            let upper = part.to_uppercase();
            if ACRONYMS.contains(&upper.as_str()) {
                upper
            } else {
                let mut chars = part.chars();
                chars
                    .next()
                    .map_or_else(String::new, |c| c.to_uppercase().chain(chars).collect())
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Splits camelCase like Go's `camelcase.Split`: `podIP` -> `pod IP`, `HTTPServer` -> `HTTP Server`.
fn camel_split(s: &str) -> Vec<String> {
    #[derive(PartialEq, Clone, Copy)]
    enum Class {
        Lower,
        Upper,
        Other,
    }
    let class = |c: char| {
        if c.is_lowercase() {
            Class::Lower
        } else if c.is_uppercase() {
            Class::Upper
        } else {
            Class::Other
        }
    };
    let mut runs: Vec<Vec<char>> = Vec::new();
    let mut last: Option<Class> = None;
    for c in s.chars() {
        let cl = class(c);
        match runs.last_mut() {
            Some(run) if last == Some(cl) => run.push(c),
            _ => runs.push(vec![c]),
        }
        last = Some(cl);
    }
    // an upper-case run followed by a lower-case run gives its last letter to that run
    for i in 0..runs.len().saturating_sub(1) {
        let (upper_run, lower_next) = (
            class(runs[i][0]) == Class::Upper,
            class(runs[i + 1][0]) == Class::Lower,
        );
        if upper_run
            && lower_next
            && let Some(moved) = runs[i].pop()
        {
            runs[i + 1].insert(0, moved);
        }
    }
    runs.into_iter()
        .filter(|r| !r.is_empty())
        .map(|r| r.into_iter().collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn smart_labels_match_kubectl() {
        assert_eq!(smart_label("apiVersion"), "API Version");
        assert_eq!(smart_label("podIP"), "Pod IP");
        assert_eq!(smart_label("creationTimestamp"), "Creation Timestamp");
        assert_eq!(smart_label("HTTPServer"), "HTTP Server");
        assert_eq!(smart_label("uid"), "UID");
        assert_eq!(smart_label("key1"), "key1");
        assert_eq!(
            smart_label("app.kubernetes.io/name"),
            "app.kubernetes.io/name"
        );
    }

    #[test]
    fn generic_describe_dumps_fields() {
        let obj = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "default", "uid": "u", "labels": {"a": "b"},
                          "annotations": {crate::apply::LAST_APPLIED: "{}"}},
            "data": {"key": "value"}
        });
        let mut out = Writer::default();
        describe(&mut out, &obj);
        super::super::write_events(&mut out, &[], jiff::Timestamp::now());
        assert_eq!(
            out.finish(),
            "Name:         c\nNamespace:    default\nLabels:       a=b\nAnnotations:  <none>\nAPI Version:  v1\nData:\n  Key:  value\nKind:   ConfigMap\nMetadata:\n  UID:   u\nEvents:  <none>\n"
        );
    }
}
