//! Field access for the table rows: every getter yields a neutral value for a missing field,
//! and the formatters kubectl uses (labels, selectors, durations of conditions).

use super::*;

pub(super) fn at<'a>(v: &'a Value, pointer: &str) -> &'a Value {
    v.pointer(pointer).unwrap_or(&Value::Null)
}

pub(super) fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    at(v, pointer).as_str().unwrap_or("")
}

pub(super) fn int_at(v: &Value, pointer: &str) -> i64 {
    at(v, pointer).as_i64().unwrap_or(0)
}

pub(super) fn bool_at(v: &Value, pointer: &str) -> bool {
    at(v, pointer).as_bool().unwrap_or(false)
}

pub(super) fn list<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    at(v, pointer).as_array().map_or(&[], Vec::as_slice)
}

/// Number of entries of a map or list field.
pub(super) fn len_at(v: &Value, pointer: &str) -> i64 {
    let n = match at(v, pointer) {
        Value::Object(m) => m.len(),
        Value::Array(a) => a.len(),
        _ => 0,
    };
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(super) fn time_at(v: &Value, pointer: &str) -> Option<Timestamp> {
    str_at(v, pointer).parse().ok()
}

pub(super) fn or<'a>(s: &'a str, default: &'a str) -> &'a str {
    if s.is_empty() { default } else { s }
}

pub(super) fn name(obj: &Value) -> &str {
    str_at(obj, "/metadata/name")
}

/// printers.go's `translateTimestampSince`.
pub(super) fn since(t: Option<Timestamp>, now: Timestamp) -> String {
    t.map_or_else(
        || "<unknown>".into(),
        |t| human_duration(now.duration_since(t)),
    )
}

pub(super) fn age(obj: &Value, now: Timestamp) -> Value {
    since(time_at(obj, "/metadata/creationTimestamp"), now).into()
}

pub(super) fn deleting(obj: &Value) -> bool {
    !at(obj, "/metadata/deletionTimestamp").is_null()
}

/// A `resource.Quantity` as its canonical string (the form the served JSON already holds), or
/// `missing`: Go prints a nil pointer as `<nil>` and a zero value as `0`.
pub(super) fn quantity(v: &Value, missing: &str) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => missing.into(),
    }
}

/// An `IntOrString` as printed, `N/A` when unset.
pub(super) fn int_or_string(v: &Value) -> String {
    match v {
        Value::Null => "N/A".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub(super) fn condition_true(obj: &Value, pointer: &str, type_: &str) -> bool {
    list(obj, pointer)
        .iter()
        .find(|c| str_at(c, "/type") == type_)
        .is_some_and(|c| str_at(c, "/status") == "True")
}

/// `labels.FormatLabels`: sorted `k=v` pairs, `<none>` when empty.
pub(super) fn format_labels(map: &Value) -> String {
    let mut pairs: Vec<String> = map
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    pairs.sort();
    if pairs.is_empty() {
        "<none>".into()
    } else {
        pairs.join(",")
    }
}

/// `metav1.LabelSelectorAsSelector(sel).String()`, or `None` when the selector is invalid.
pub(super) fn selector_string(sel: &Value) -> Option<String> {
    let mut reqs: Vec<(&str, String)> = Vec::new();
    for (k, v) in sel
        .get("matchLabels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        reqs.push((k, format!("{k}={}", v.as_str().unwrap_or(""))));
    }
    for e in list(sel, "/matchExpressions") {
        let key = str_at(e, "/key");
        let mut values: Vec<&str> = list(e, "/values")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        values.sort_unstable();
        let req = match str_at(e, "/operator") {
            "In" if !values.is_empty() => format!("{key} in ({})", values.join(",")),
            "NotIn" if !values.is_empty() => format!("{key} notin ({})", values.join(",")),
            "Exists" if values.is_empty() => key.to_string(),
            "DoesNotExist" if values.is_empty() => format!("!{key}"),
            _ => return None,
        };
        reqs.push((key, req));
    }
    reqs.sort_by(|a, b| a.0.cmp(b.0));
    Some(
        reqs.into_iter()
            .map(|(_, r)| r)
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// `metav1.FormatLabelSelector`: `<none>` when empty, `<error>` when invalid.
pub(super) fn format_selector(sel: &Value) -> String {
    match selector_string(sel) {
        None => "<error>".into(),
        Some(s) if s.is_empty() => "<none>".into(),
        Some(s) => s,
    }
}

/// printers.go's `layoutContainerCells`: container names and images, comma-separated.
pub(super) fn containers(pod_spec: &Value) -> [Value; 2] {
    let cs = list(pod_spec, "/containers");
    let names: Vec<&str> = cs.iter().map(|c| str_at(c, "/name")).collect();
    let images: Vec<&str> = cs.iter().map(|c| str_at(c, "/image")).collect();
    [names.join(",").into(), images.join(",").into()]
}

/// `a + N more...` after `max` entries, as the endpoint columns print lists.
pub(super) fn list_with_more(items: &[String], count: usize, max: usize, empty: &str) -> String {
    let ret = items.join(",");
    if count > max {
        format!("{ret} + {} more...", count - max)
    } else if ret.is_empty() {
        empty.into()
    } else {
        ret
    }
}
