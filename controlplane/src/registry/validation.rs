//! Field validation in apimachinery's words: each failure is a [`Cause`] with the field path
//! and the message kubectl prints (`spec.replicas: Invalid value: -1: must be greater than or
//! equal to 0`).

use serde_json::Value;

/// The reason of one [`Cause`], as `metav1.CauseType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// `FieldValueRequired`
    Required,
    /// `FieldValueInvalid`
    Invalid,
    /// `FieldValueNotSupported`
    NotSupported,
    /// `FieldValueDuplicate`
    Duplicate,
    /// `FieldValueForbidden`
    Forbidden,
    /// `FieldValueNotFound`
    NotFound,
    /// `FieldValueTooLong`
    TooLong,
}

impl Reason {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Required => "FieldValueRequired",
            Reason::Invalid => "FieldValueInvalid",
            Reason::NotSupported => "FieldValueNotSupported",
            Reason::Duplicate => "FieldValueDuplicate",
            Reason::Forbidden => "FieldValueForbidden",
            Reason::NotFound => "FieldValueNotFound",
            Reason::TooLong => "FieldValueTooLong",
        }
    }
}

/// One validation failure.
#[derive(Clone, Debug, PartialEq)]
pub struct Cause {
    /// Why.
    pub reason: Reason,
    /// The field path (`spec.template.spec.containers[0].image`).
    pub field: String,
    /// The message without the field (`Invalid value: -1: must be ...`).
    pub message: String,
}

/// The failures found in one object.
#[derive(Default, Debug)]
pub struct Causes(pub Vec<Cause>);

/// Renders a value as apimachinery's error messages do (strings quoted, numbers bare).
pub fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

impl Causes {
    /// Whether nothing failed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// `field: Required value`.
    pub fn required(&mut self, field: impl Into<String>) {
        self.push(Reason::Required, field, "Required value".into());
    }
    /// `field: Invalid value: V: detail`.
    pub fn invalid(&mut self, field: impl Into<String>, value: &Value, detail: &str) {
        self.push(
            Reason::Invalid,
            field,
            format!("Invalid value: {}: {detail}", show(value)),
        );
    }
    /// `field: Unsupported value: V: supported values: "a", "b"`.
    pub fn not_supported(&mut self, field: impl Into<String>, value: &Value, supported: &[&str]) {
        let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        self.push(
            Reason::NotSupported,
            field,
            format!(
                "Unsupported value: {}: supported values: {}",
                show(value),
                list.join(", ")
            ),
        );
    }
    /// `field: Duplicate value: V`.
    pub fn duplicate(&mut self, field: impl Into<String>, value: &Value) {
        self.push(
            Reason::Duplicate,
            field,
            format!("Duplicate value: {}", show(value)),
        );
    }
    /// `field: Forbidden: detail`.
    pub fn forbidden(&mut self, field: impl Into<String>, detail: &str) {
        self.push(Reason::Forbidden, field, format!("Forbidden: {detail}"));
    }
    /// `field: Not found: V`.
    pub fn not_found(&mut self, field: impl Into<String>, value: &Value) {
        self.push(
            Reason::NotFound,
            field,
            format!("Not found: {}", show(value)),
        );
    }
    /// `field: Invalid value: V: field is immutable`.
    pub fn immutable(&mut self, field: impl Into<String>, value: &Value) {
        self.invalid(field, value, "field is immutable");
    }
    fn push(&mut self, reason: Reason, field: impl Into<String>, message: String) {
        self.0.push(Cause {
            reason,
            field: field.into(),
            message,
        });
    }

    /// Checks a DNS-1123 subdomain (object names of most kinds).
    pub fn dns_subdomain(&mut self, field: &str, value: &str) {
        if let Some(detail) = dns_subdomain_error(value) {
            self.invalid(field, &Value::String(value.into()), &detail);
        }
    }
    /// Checks a DNS-1123 label (namespaces, services, container names).
    pub fn dns_label(&mut self, field: &str, value: &str) {
        if let Some(detail) = dns_label_error(value) {
            self.invalid(field, &Value::String(value.into()), &detail);
        }
    }
    /// Checks an integer is at least `min`.
    pub fn at_least(&mut self, field: &str, value: Option<&Value>, min: i64) {
        if let Some(v) = value
            && let Some(n) = v.as_i64()
            && n < min
        {
            self.invalid(field, v, &format!("must be greater than or equal to {min}"));
        }
    }
    /// Checks labels (or a selector's matchLabels) are valid keys and values.
    pub fn labels(&mut self, field: &str, labels: Option<&Value>) {
        let Some(map) = labels.and_then(Value::as_object) else {
            return;
        };
        for (k, v) in map {
            if let Some(detail) = qualified_name_error(k) {
                self.invalid(field, &Value::String(k.clone()), &detail);
            }
            let value = v.as_str().unwrap_or_default();
            if let Some(detail) = label_value_error(value) {
                self.invalid(field.to_string(), v, &detail);
            }
        }
    }
}

fn is_lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// Why `s` is not a DNS-1123 label, in apimachinery's words.
pub fn dns_label_error(s: &str) -> Option<String> {
    if s.len() > 63 {
        return Some("must be no more than 63 characters".into());
    }
    let ok = !s.is_empty()
        && s.chars().all(|c| is_lower_alnum(c) || c == '-')
        && s.starts_with(is_lower_alnum)
        && s.ends_with(is_lower_alnum);
    (!ok).then(|| {
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', \
         and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', \
         regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
            .into()
    })
}

/// Why `s` is not a DNS-1123 subdomain, in apimachinery's words.
pub fn dns_subdomain_error(s: &str) -> Option<String> {
    if s.len() > 253 {
        return Some("must be no more than 253 characters".into());
    }
    let ok = !s.is_empty()
        && s.split('.').all(|part| {
            !part.is_empty()
                && part.chars().all(|c| is_lower_alnum(c) || c == '-')
                && part.starts_with(is_lower_alnum)
                && part.ends_with(is_lower_alnum)
        });
    (!ok).then(|| {
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' \
         or '.', and must start and end with an alphanumeric character (e.g. 'example.com', \
         regex used for validation is \
         '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
            .into()
    })
}

fn name_part_ok(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| alnum(c) || c == '-' || c == '_' || c == '.')
        && s.starts_with(alnum)
        && s.ends_with(alnum)
}

/// Why `s` is not a qualified name (label and annotation keys).
pub fn qualified_name_error(s: &str) -> Option<String> {
    let (prefix, name) = match s.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    if let Some(p) = prefix
        && let Some(e) = dns_subdomain_error(p)
    {
        return Some(format!("prefix part {e}"));
    }
    (!name_part_ok(name)).then(|| {
        "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and \
         end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex \
         used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
            .into()
    })
}

/// Why `s` is not a valid label value.
pub fn label_value_error(s: &str) -> Option<String> {
    if s.is_empty() {
        return None;
    }
    (!name_part_ok(s)).then(|| {
        "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' \
         or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or \
         'my_value',  or '12345', regex used for validation is \
         '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
            .into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rejects_name_with_uppercase() {
        assert!(dns_subdomain_error("Web").is_some());
        assert!(dns_subdomain_error("web-1.example").is_none());
        assert!(dns_label_error("a.b").is_some());
    }

    #[test]
    fn replicas_message_matches_apimachinery() {
        let mut c = Causes::default();
        c.at_least("spec.replicas", Some(&json!(-1)), 0);
        assert_eq!(
            c.0[0].message,
            "Invalid value: -1: must be greater than or equal to 0"
        );
    }

    #[test]
    fn label_keys_may_have_prefix() {
        assert!(qualified_name_error("app.kubernetes.io/name").is_none());
        assert!(qualified_name_error("bad key").is_some());
        assert!(label_value_error("with space").is_some());
    }
}
