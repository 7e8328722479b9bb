//! Kubernetes protobuf request bodies, turned into the JSON the rest of the API server speaks.
//!
//! kubectl's typed clientset (`kubectl create namespace|deployment|secret|…`, `kubectl create job
//! --from=cronjob/…`, `kubectl autoscale`, `kubectl create token`, `kubectl auth can-i`) sends
//! `application/vnd.kubernetes.protobuf` bodies: the four bytes `k8s\0`, then a `runtime.Unknown`
//! envelope whose `raw` field holds the object's `generated.proto` message. [`decode`] unwraps the
//! envelope, decodes `raw` as the matching [`k8s_pb`] type and builds the JSON object kubectl would
//! have sent with `-o json`, so validation and defaulting cannot tell the difference.
//!
//! The conversion is a table (the `fields!` invocations below) naming, per message, the fields we
//! carry over; JSON names are the camelCase of the Rust field unless spelled out (`clusterIP`).
//! Go marshals every non-pointer field, so an unset string, number or bool arrives as `""`, `0` or
//! `false`; like Go's `omitempty` we drop those, except in fields marked `@keep`: Go pointers, where
//! the zero means something (`replicas: 0`, `minAvailable: 0`, `optional: false`), and a few
//! required fields Go always writes (`port`, `containerPort`).
//! Fields marked `@flatten` are embedded Go structs whose JSON is inlined into the parent (a
//! `Volume`'s source, a `Probe`'s handler, a key selector's `name`). A present message is always
//! emitted, even empty (`emptyDir: {}`, `strategy: {}`). Status is never converted: clients don't
//! set it on create.
//!
//! Start reading at [`decode`]. To accept another kind, add it to `kinds!` and give every message
//! it reaches a `fields!` entry (the compiler names the missing ones).

use std::collections::BTreeMap;

use base64::Engine as _;
use k8s_pb::api::autoscaling::{v1 as autoscaling_v1, v2 as autoscaling_v2};
use k8s_pb::api::{
    apps::v1 as apps, authentication::v1 as authn, authorization::v1 as authz, batch::v1 as batch,
    core::v1 as core, networking::v1 as networking, policy::v1 as policy, rbac::v1 as rbac,
    scheduling::v1 as scheduling,
};
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message;
use serde_json::{Map, Value};

/// The prefix of every Kubernetes protobuf body.
const MAGIC: &[u8] = b"k8s\0";

/// Decodes a Kubernetes protobuf body (the `k8s\0` magic then a runtime.Unknown envelope) into JSON.
///
/// The result is an object with `apiVersion` and `kind` from the envelope, `metadata`, and the
/// kind's other top-level fields (`spec`, `data`, `rules`, …). Errors are short lowercase texts
/// meant for a `Status` message: no magic, a truncated or malformed message, an envelope without
/// a type, a compressed payload, or a kind this module does not know.
pub fn decode(bytes: &[u8]) -> Result<Value, String> {
    let envelope = bytes
        .strip_prefix(MAGIC)
        .ok_or("protobuf body does not start with the k8s\\0 magic bytes")?;
    let unknown =
        Unknown::decode(envelope).map_err(|e| format!("malformed protobuf envelope: {e}"))?;
    if let Some(encoding) = unknown
        .content_encoding
        .as_deref()
        .filter(|e| !e.is_empty())
    {
        return Err(format!(
            "protobuf content encoding {encoding:?} is not supported"
        ));
    }
    let type_meta = unknown.type_meta.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    if api_version.is_empty() || kind.is_empty() {
        return Err("protobuf envelope has no apiVersion and kind".to_owned());
    }
    let mut object = convert(
        &api_version,
        &kind,
        unknown.raw.as_deref().unwrap_or_default(),
    )?;
    object.insert("apiVersion".to_owned(), Value::String(api_version));
    object.insert("kind".to_owned(), Value::String(kind));
    Ok(Value::Object(object))
}

/// Decodes `raw` as the message `T` and converts it.
fn object<T: Message + Default + JsonObject>(
    raw: &[u8],
    kind: &str,
) -> Result<Map<String, Value>, String> {
    T::decode(raw)
        .map(|message| message.object())
        .map_err(|e| format!("malformed protobuf {kind}: {e}"))
}

/// Defines `convert`, the dispatch from an envelope's apiVersion and kind to its message type.
macro_rules! kinds {
    ($($api_version:literal $kind:literal => $ty:ty,)*) => {
        /// Decodes `raw` as the message registered for `api_version` and `kind`.
        fn convert(api_version: &str, kind: &str, raw: &[u8]) -> Result<Map<String, Value>, String> {
            match (api_version, kind) {
                $(($api_version, $kind) => object::<$ty>(raw, kind),)*
                _ => Err(format!(
                    "protobuf bodies for {api_version} {kind} are not supported; send JSON instead \
                     (with kubectl: `kubectl create … --dry-run=client -o yaml | kubectl apply -f -`)"
                )),
            }
        }
    };
}

kinds! {
    "v1" "Namespace" => core::Namespace,
    "v1" "ConfigMap" => core::ConfigMap,
    "v1" "Secret" => core::Secret,
    "v1" "ServiceAccount" => core::ServiceAccount,
    "v1" "Service" => core::Service,
    "v1" "Pod" => core::Pod,
    "v1" "ResourceQuota" => core::ResourceQuota,
    "apps/v1" "Deployment" => apps::Deployment,
    "batch/v1" "Job" => batch::Job,
    "batch/v1" "CronJob" => batch::CronJob,
    "autoscaling/v1" "HorizontalPodAutoscaler" => autoscaling_v1::HorizontalPodAutoscaler,
    "autoscaling/v2" "HorizontalPodAutoscaler" => autoscaling_v2::HorizontalPodAutoscaler,
    "policy/v1" "PodDisruptionBudget" => policy::PodDisruptionBudget,
    "policy/v1" "Eviction" => policy::Eviction,
    "rbac.authorization.k8s.io/v1" "Role" => rbac::Role,
    "rbac.authorization.k8s.io/v1" "ClusterRole" => rbac::ClusterRole,
    "rbac.authorization.k8s.io/v1" "RoleBinding" => rbac::RoleBinding,
    "rbac.authorization.k8s.io/v1" "ClusterRoleBinding" => rbac::ClusterRoleBinding,
    "networking.k8s.io/v1" "Ingress" => networking::Ingress,
    "scheduling.k8s.io/v1" "PriorityClass" => scheduling::PriorityClass,
    "authentication.k8s.io/v1" "TokenRequest" => authn::TokenRequest,
    "authentication.k8s.io/v1" "SelfSubjectReview" => authn::SelfSubjectReview,
    "authorization.k8s.io/v1" "SelfSubjectAccessReview" => authz::SelfSubjectAccessReview,
    "authorization.k8s.io/v1" "SelfSubjectRulesReview" => authz::SelfSubjectRulesReview,
}

/// A protobuf value with a Kubernetes JSON form.
trait ToJson {
    /// The JSON form, zero values included.
    fn value(&self) -> Value;
    /// Whether Go's `omitempty` drops it: a zero scalar, an empty list or map, an absent value.
    /// A present message is never empty.
    fn is_empty(&self) -> bool {
        false
    }
}

/// A protobuf message whose JSON form is an object (generated by `fields!`).
trait JsonObject {
    /// The JSON object, without the fields Go would omit.
    fn object(&self) -> Map<String, Value>;
}

impl ToJson for String {
    fn value(&self) -> Value {
        Value::String(self.clone())
    }
    fn is_empty(&self) -> bool {
        self.is_empty()
    }
}

impl ToJson for bool {
    fn value(&self) -> Value {
        Value::Bool(*self)
    }
    fn is_empty(&self) -> bool {
        !*self
    }
}

impl ToJson for i32 {
    fn value(&self) -> Value {
        Value::from(*self)
    }
    fn is_empty(&self) -> bool {
        *self == 0
    }
}

impl ToJson for i64 {
    fn value(&self) -> Value {
        Value::from(*self)
    }
    fn is_empty(&self) -> bool {
        *self == 0
    }
}

/// `bytes` fields (Secret and ConfigMap binary data): base64, as Go's JSON encodes `[]byte`.
impl ToJson for Vec<u8> {
    fn value(&self) -> Value {
        Value::String(base64::engine::general_purpose::STANDARD.encode(self))
    }
    fn is_empty(&self) -> bool {
        self.is_empty()
    }
}

impl<T: ToJson> ToJson for Option<T> {
    fn value(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToJson::value)
    }
    fn is_empty(&self) -> bool {
        self.as_ref().is_none_or(ToJson::is_empty)
    }
}

impl<T: ToJson> ToJson for Vec<T> {
    fn value(&self) -> Value {
        Value::Array(self.iter().map(ToJson::value).collect())
    }
    fn is_empty(&self) -> bool {
        self.is_empty()
    }
}

impl<T: ToJson> ToJson for BTreeMap<String, T> {
    fn value(&self) -> Value {
        Value::Object(self.iter().map(|(k, v)| (k.clone(), v.value())).collect())
    }
    fn is_empty(&self) -> bool {
        self.is_empty()
    }
}

/// A quantity is its canonical string (`"500m"`, `"1Gi"`).
impl ToJson for Quantity {
    fn value(&self) -> Value {
        Value::String(self.string.clone().unwrap_or_default())
    }
    fn is_empty(&self) -> bool {
        self.string.as_deref().is_none_or(str::is_empty)
    }
}

/// An int-or-string is a JSON number or string, chosen by its `type` (0 int, 1 string).
impl ToJson for IntOrString {
    fn value(&self) -> Value {
        if is_string(self) {
            Value::String(self.str_val.clone().unwrap_or_default())
        } else {
            Value::from(self.int_val.unwrap_or_default())
        }
    }
    fn is_empty(&self) -> bool {
        if is_string(self) {
            self.str_val.as_deref().is_none_or(str::is_empty)
        } else {
            self.int_val.unwrap_or_default() == 0
        }
    }
}

/// Whether an int-or-string holds its string variant; one without a `type` but with a string
/// does too.
fn is_string(value: &IntOrString) -> bool {
    match value.r#type {
        Some(kind) => kind == 1,
        None => value.str_val.is_some(),
    }
}

/// The JSON name of a Rust field: `generate_name` → `generateName`, `r#type` → `type`.
fn camel(field: &str) -> String {
    let field = field.strip_prefix("r#").unwrap_or(field);
    let mut out = String::with_capacity(field.len());
    let mut upper = false;
    for c in field.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

mod fields;

#[cfg(test)]
mod kubectl_tests;
#[cfg(test)]
mod tests;
