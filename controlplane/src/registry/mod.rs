//! The registry: every kind the API server serves, and what is particular to each.
//!
//! As in kube-apiserver's generic registry, one code path serves all kinds
//! ([`crate::apiserver`]); a [`ResourceType`] says what a kind is called and where it is
//! stored, and its [`Strategy`] says what differs: defaulting, validation, which part is status,
//! what bumps `generation`, which field selectors work. Adding a kind is one entry in
//! [`kinds::all`] and, if it needs more than [`Plain`], one strategy file.
//!
//! Wire types come from `k8s-openapi`: every incoming object is round-tripped through its typed
//! struct ([`ResourceType::normalize`]), which rejects wrong types and finds unknown fields.

pub mod autoscaler;
pub mod conversion;
pub mod kinds;
pub mod meta;
pub mod pod;
pub mod service;
pub mod simple;
pub mod storage;
pub mod validation;
pub mod workloads;

use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

pub use validation::{Cause, Causes};

/// What differs between kinds. Every method has the behaviour of a plain object as default.
pub trait Strategy: Send + Sync {
    /// Fills in defaults, as kube-apiserver's `SetDefaults_*` do (on create and on update).
    fn default(&self, _obj: &mut Value) {}
    /// Prepares a new object: e.g. resets status, allocates a ClusterIP.
    fn prepare_create(&self, _obj: &mut Value, _ctx: &CreateContext) {}
    /// Whether [`Strategy::prepare_create`] allocates from values other objects hold, so creates
    /// must see [`CreateContext::existing`] and be serialised.
    fn allocates(&self) -> bool {
        false
    }
    /// Prepares an update of an object that allocates (a Service turned NodePort gets its
    /// node ports); `ctx.existing` holds the other objects of the kind.
    fn prepare_update(&self, _obj: &mut Value, _old: &Value, _ctx: &CreateContext) {}
    /// Checks what an object holds against the others of its kind in `ctx.existing` (a
    /// ClusterIP or NodePort someone else has), on create and update.
    fn validate_allocation(&self, _obj: &Value, _ctx: &CreateContext, _causes: &mut Causes) {}
    /// Checks an object; `old` is the current object on update.
    fn validate(&self, _obj: &Value, _old: Option<&Value>, _causes: &mut Causes) {}
    /// Whether the kind has a `status` that only the status subresource may change.
    fn has_status(&self) -> bool {
        true
    }
    /// Whether spec changes bump `metadata.generation`.
    fn tracks_generation(&self) -> bool {
        true
    }
    /// Field selectors this kind supports beyond `metadata.name` and `metadata.namespace`: the
    /// label and the JSON pointer of its value.
    fn field_labels(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }
    /// `Warning:` lines for valid Kubernetes fields that wasmkube does not act on (yet).
    fn warnings(&self, _obj: &Value) -> Vec<String> {
        Vec::new()
    }
}

/// What a strategy may consult when preparing a new object.
#[derive(Default)]
pub struct CreateContext<'a> {
    /// Every existing object of the kind, in all namespaces, when [`Strategy::allocates`] says
    /// it is needed (ClusterIPs, NodePorts); empty otherwise.
    pub existing: &'a [std::sync::Arc<Value>],
    /// The cluster's pod networks, from which each node gets a /16.
    pub cluster_cidr: ClusterCidr,
    /// Where ClusterIPs come from (`--service-cluster-ip-range`).
    pub service_cidr: ServiceCidr,
}

/// The Service address range (`--service-cluster-ip-range`, default `10.96.0.0/12`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceCidr {
    /// The network address.
    pub base: std::net::Ipv4Addr,
    /// The prefix length.
    pub prefix: u8,
}

impl Default for ServiceCidr {
    fn default() -> Self {
        Self {
            base: std::net::Ipv4Addr::new(10, 96, 0, 0),
            prefix: 12,
        }
    }
}

impl ServiceCidr {
    /// How many addresses the range has.
    pub fn size(&self) -> u32 {
        1u32 << (32 - u32::from(self.prefix))
    }

    /// Whether `ip` is in the range.
    pub fn contains(&self, ip: std::net::Ipv4Addr) -> bool {
        u32::from(ip).wrapping_sub(u32::from(self.base)) < self.size()
    }

    /// The `i`th address of the range.
    pub fn nth(&self, i: u32) -> std::net::Ipv4Addr {
        std::net::Ipv4Addr::from(u32::from(self.base) + i)
    }
}

impl std::fmt::Display for ServiceCidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

impl std::str::FromStr for ServiceCidr {
    type Err = String;
    /// Parses `A.B.C.D/P` with P between 12 and 28 and no host bits set.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "invalid service CIDR {s:?}: use A.B.C.D/P with 12 <= P <= 28, e.g. 10.96.0.0/12"
            )
        };
        let (ip, prefix) = s.split_once('/').ok_or_else(bad)?;
        let base: std::net::Ipv4Addr = ip.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if !(12..=28).contains(&prefix) || u32::from(base) & ((1u32 << (32 - prefix)) - 1) != 0 {
            return Err(bad());
        }
        if base.is_loopback() {
            return Err(format!(
                "invalid service CIDR {s:?}: 127.0.0.0/8 holds the pod network"
            ));
        }
        Ok(Self { base, prefix })
    }
}

/// The cluster's pod address range: the /16s `127.{first}.0.0` up to (not including)
/// `127.{end}.0.0`, each node getting one (`--cluster-cidr`, default `127.64.0.0/10`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClusterCidr {
    /// Second octet of the first /16.
    pub first: u8,
    /// Second octet one past the last /16.
    pub end: u8,
}

impl Default for ClusterCidr {
    fn default() -> Self {
        Self {
            first: 64,
            end: 128,
        }
    }
}

impl std::str::FromStr for ClusterCidr {
    type Err = String;
    /// Parses `127.B.0.0/P` with P between 8 and 16 (a range of whole /16s inside 127/8).
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "invalid cluster CIDR {s:?}: use 127.B.0.0/P with 8 <= P <= 16, e.g. 127.64.0.0/10"
            )
        };
        let (ip, prefix) = s.split_once('/').ok_or_else(bad)?;
        let ip: std::net::Ipv4Addr = ip.parse().map_err(|_| bad())?;
        let prefix: u32 = prefix.parse().map_err(|_| bad())?;
        let [a, b, c, d] = ip.octets();
        if a != 127 || c != 0 || d != 0 || !(8..=16).contains(&prefix) {
            return Err(bad());
        }
        let size = 1u32 << (16 - prefix);
        if u32::from(b) % size != 0 {
            return Err(bad());
        }
        let end = u32::from(b) + size;
        // 127.0.0.0/16 holds 127.0.0.1 and 127.0.0.53: never a pod network.
        let first = b.max(1);
        Ok(Self {
            first,
            end: end.min(255) as u8,
        })
    }
}

/// A kind with no behaviour beyond the generic registry's.
pub struct Plain {
    /// Whether the kind has a status subresource.
    pub status: bool,
    /// Whether spec changes bump `metadata.generation`.
    pub generation: bool,
}

impl Strategy for Plain {
    fn has_status(&self) -> bool {
        self.status
    }
    fn tracks_generation(&self) -> bool {
        self.generation
    }
}

/// A subresource of a kind, as listed in discovery.
#[derive(Clone, Copy, Debug)]
pub struct Subresource {
    /// Its path segment (`status`, `scale`, `log`...).
    pub name: &'static str,
    /// The group of the kind it takes and returns (`""` for core).
    pub group: &'static str,
    /// The version of that kind.
    pub version: &'static str,
    /// That kind.
    pub kind: &'static str,
    /// The verbs it supports.
    pub verbs: &'static [&'static str],
}

/// One kind in one group-version, as served.
#[derive(Clone)]
pub struct ResourceType {
    /// API group (`""` for the core group).
    pub group: &'static str,
    /// API version.
    pub version: &'static str,
    /// Kind (`Deployment`).
    pub kind: &'static str,
    /// Plural resource name, the URL segment (`deployments`).
    pub plural: &'static str,
    /// Singular name (`deployment`).
    pub singular: &'static str,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Short names for kubectl (`deploy`).
    pub short_names: &'static [&'static str],
    /// Categories (`all`).
    pub categories: &'static [&'static str],
    /// Subresources.
    pub subresources: &'static [Subresource],
    /// The version objects are stored in, when this version is converted (`None`: as served).
    pub storage: Option<&'static conversion::Conversion>,
    /// A deprecation warning sent with every response for this version.
    pub deprecation: Option<&'static str>,
    /// The per-kind behaviour.
    pub strategy: &'static dyn Strategy,
    normalize: fn(Value) -> Result<Value, serde_json::Error>,
}

impl ResourceType {
    /// A kind described by its `k8s-openapi` type.
    pub fn of<K>(strategy: &'static dyn Strategy) -> Self
    where
        K: k8s_openapi::Resource + Serialize + DeserializeOwned,
    {
        let namespaced = std::any::type_name::<K::Scope>().ends_with("NamespaceResourceScope");
        Self {
            group: K::GROUP,
            version: K::VERSION,
            kind: K::KIND,
            plural: K::URL_PATH_SEGMENT,
            singular: "",
            namespaced,
            short_names: &[],
            categories: &[],
            subresources: &[],
            storage: None,
            deprecation: None,
            strategy,
            normalize: normalize::<K>,
        }
    }

    /// Sets the short names and categories kubectl sees in discovery.
    pub fn names(
        mut self,
        short_names: &'static [&'static str],
        categories: &'static [&'static str],
    ) -> Self {
        self.short_names = short_names;
        self.categories = categories;
        self
    }

    /// Sets the subresources.
    pub fn subresources(mut self, subresources: &'static [Subresource]) -> Self {
        self.subresources = subresources;
        self
    }

    /// Serves this version by converting to and from another stored version.
    pub fn stored_as(mut self, conversion: &'static conversion::Conversion) -> Self {
        self.storage = Some(conversion);
        self
    }

    /// Marks this version deprecated, with the warning every response carries.
    pub fn deprecated(mut self, warning: &'static str) -> Self {
        self.deprecation = Some(warning);
        self
    }

    /// Serves the kind under another version name (a version k8s-openapi has no type for).
    pub fn version(mut self, version: &'static str) -> Self {
        self.version = version;
        self
    }

    /// Replaces the typed round trip (for versions k8s-openapi has no type for).
    pub fn normalized_by(mut self, f: fn(Value) -> Result<Value, serde_json::Error>) -> Self {
        self.normalize = f;
        self
    }

    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `plural.group`, as kubectl names the resource in messages (`deployments.apps`).
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The singular name (lowercased kind when not set).
    pub fn singular_name(&self) -> String {
        if self.singular.is_empty() {
            self.kind.to_lowercase()
        } else {
            self.singular.to_string()
        }
    }

    /// Round-trips `obj` through the kind's typed struct: type errors fail, unknown fields drop.
    pub fn normalize(&self, obj: Value) -> Result<Value, serde_json::Error> {
        (self.normalize)(obj)
    }

    /// The store prefix of this kind in `namespace` (all namespaces when `None`).
    pub fn key_prefix(&self, namespace: Option<&str>) -> String {
        let (group, plural) = match self.storage {
            Some(c) => (c.storage_group, c.storage_plural),
            None => (self.group, self.plural),
        };
        let group = if group.is_empty() { "core" } else { group };
        match namespace {
            Some(ns) if self.namespaced => format!("/registry/{group}/{plural}/{ns}/"),
            _ => format!("/registry/{group}/{plural}/"),
        }
    }

    /// The store key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        format!("{}{name}", self.key_prefix(namespace))
    }

    /// Whether `sub` is one of this kind's subresources.
    pub fn subresource(&self, sub: &str) -> Option<&Subresource> {
        self.subresources.iter().find(|s| s.name == sub)
    }
}

fn normalize<K: Serialize + DeserializeOwned>(obj: Value) -> Result<Value, serde_json::Error> {
    let typed: K = serde_json::from_value(obj)?;
    serde_json::to_value(typed)
}

/// Every served kind, looked up by group, version and plural.
pub struct Registry {
    types: Vec<ResourceType>,
}

impl Registry {
    /// The registry of all kinds wasmkube serves.
    pub fn new() -> Self {
        Self {
            types: kinds::all(),
        }
    }

    /// All served kinds, in discovery order.
    pub fn types(&self) -> &[ResourceType] {
        &self.types
    }

    /// Finds a kind by group, version and plural.
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
    }

    /// Finds the served version of a kind as stored (for in-process lookups by kind).
    pub fn by_kind(&self, group: &str, kind: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.kind == kind && t.storage.is_none())
    }

    /// The group-versions served, in order, each with its preferred flag.
    pub fn group_versions(&self) -> Vec<(&'static str, &'static str)> {
        let mut out: Vec<(&str, &str)> = Vec::new();
        for t in &self.types {
            if !out.contains(&(t.group, t.version)) {
                out.push((t.group, t.version));
            }
        }
        out
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}
