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

/// Implements `JsonObject` and `ToJson` for messages, from a list of their fields; see the
/// module docs for `=> "jsonName"`, `@keep` and `@flatten`.
macro_rules! fields {
    ($($ty:ty { $($field:ident $(=> $json:literal)? $(@$mode:ident)?),* $(,)? })*) => {$(
        impl JsonObject for $ty {
            fn object(&self) -> Map<String, Value> {
                let mut out = Map::new();
                $(field!(out, self.$field, json_name!($field $(=> $json)?) $(, $mode)?);)*
                out
            }
        }
        impl ToJson for $ty {
            fn value(&self) -> Value {
                Value::Object(self.object())
            }
        }
    )*};
}

/// The JSON name of a field in `fields!`.
macro_rules! json_name {
    ($field:ident) => {
        camel(stringify!($field))
    };
    ($field:ident => $json:literal) => {
        $json.to_owned()
    };
}

/// Copies one field into the object being built by `fields!`.
macro_rules! field {
    ($out:ident, $value:expr, $name:expr) => {
        if !ToJson::is_empty(&$value) {
            $out.insert($name, ToJson::value(&$value));
        }
    };
    ($out:ident, $value:expr, $name:expr, keep) => {
        if let Some(value) = &$value {
            $out.insert($name, ToJson::value(value));
        }
    };
    ($out:ident, $value:expr, $name:expr, flatten) => {
        if let Some(value) = &$value {
            $out.extend(JsonObject::object(value));
        }
    };
}

// apimachinery: metadata and the small shared types.
fields! {
    meta::ObjectMeta {
        name, generate_name, namespace, uid, resource_version, labels, annotations,
        owner_references, finalizers,
    }
    meta::OwnerReference {
        api_version, kind, name, uid, controller @keep, block_owner_deletion @keep,
    }
    meta::LabelSelector { match_labels, match_expressions }
    meta::LabelSelectorRequirement { key, operator, values }
    meta::FieldSelectorRequirement { key, operator, values }
    meta::DeleteOptions {
        grace_period_seconds @keep, preconditions, orphan_dependents @keep, propagation_policy,
        dry_run, ignore_store_read_error_with_cluster_breaking_potential @keep,
    }
    meta::Preconditions { uid, resource_version }
}

// core/v1 kinds other than Pod.
fields! {
    core::Namespace { metadata, spec }
    core::NamespaceSpec { finalizers }
    core::ConfigMap { metadata, immutable @keep, data, binary_data }
    core::Secret { metadata, immutable @keep, data, string_data, r#type }
    core::ServiceAccount {
        metadata, secrets, image_pull_secrets, automount_service_account_token @keep,
    }
    core::ObjectReference {
        kind, namespace, name, uid, api_version, resource_version, field_path,
    }
    core::LocalObjectReference { name }
    core::Service { metadata, spec }
    core::ServiceSpec {
        ports, selector, cluster_ip => "clusterIP", cluster_ips => "clusterIPs", r#type,
        external_ips => "externalIPs", session_affinity, load_balancer_ip => "loadBalancerIP",
        load_balancer_source_ranges, external_name, external_traffic_policy,
        health_check_node_port, publish_not_ready_addresses, session_affinity_config,
        ip_families, ip_family_policy, allocate_load_balancer_node_ports @keep,
        load_balancer_class, internal_traffic_policy, traffic_distribution,
    }
    core::ServicePort { name, protocol, app_protocol, port @keep, target_port, node_port }
    core::SessionAffinityConfig { client_ip => "clientIP" }
    core::ClientIpConfig { timeout_seconds @keep }
    core::ResourceQuota { metadata, spec }
    core::ResourceQuotaSpec { hard, scopes, scope_selector }
    core::ScopeSelector { match_expressions }
    core::ScopedResourceSelectorRequirement { scope_name, operator, values }
}

// core/v1 Pod and everything a pod template reaches (a Job made by `create job --from` copies
// the CronJob's whole template, so this goes well beyond what the generators set).
fields! {
    core::Pod { metadata, spec }
    core::PodTemplateSpec { metadata, spec }
    core::PodSpec {
        volumes, init_containers, containers, restart_policy,
        termination_grace_period_seconds @keep, active_deadline_seconds @keep, dns_policy,
        node_selector, service_account_name, service_account,
        automount_service_account_token @keep, node_name, host_network,
        host_pid => "hostPID", host_ipc => "hostIPC", share_process_namespace @keep,
        security_context, image_pull_secrets, hostname, subdomain, affinity, scheduler_name,
        tolerations, host_aliases, priority_class_name, priority @keep, dns_config,
        readiness_gates, runtime_class_name, enable_service_links @keep, preemption_policy,
        overhead, topology_spread_constraints,
        set_hostname_as_fqdn => "setHostnameAsFQDN" @keep, os, host_users @keep,
        scheduling_gates, resource_claims, resources, hostname_override,
    }
    core::Container {
        name, image, command, args, working_dir, ports, env_from, env, resources, resize_policy,
        restart_policy, restart_policy_rules, volume_mounts, volume_devices, liveness_probe,
        readiness_probe, startup_probe, lifecycle, termination_message_path,
        termination_message_policy, image_pull_policy, security_context, stdin, stdin_once, tty,
    }
    core::ContainerPort { name, host_port, container_port @keep, protocol, host_ip => "hostIP" }
    core::EnvVar { name, value, value_from }
    core::EnvVarSource {
        field_ref, resource_field_ref, config_map_key_ref, secret_key_ref, file_key_ref,
    }
    core::ObjectFieldSelector { api_version, field_path }
    core::ResourceFieldSelector { container_name, resource, divisor }
    core::ConfigMapKeySelector { local_object_reference @flatten, key, optional @keep }
    core::SecretKeySelector { local_object_reference @flatten, key, optional @keep }
    core::FileKeySelector { volume_name, path, key, optional @keep }
    core::EnvFromSource { prefix, config_map_ref, secret_ref }
    core::ConfigMapEnvSource { local_object_reference @flatten, optional @keep }
    core::SecretEnvSource { local_object_reference @flatten, optional @keep }
    core::ResourceRequirements { limits, requests, claims }
    core::ResourceClaim { name, request }
    core::ContainerResizePolicy { resource_name, restart_policy }
    core::ContainerRestartRule { action, exit_codes }
    core::ContainerRestartRuleOnExitCodes { operator, values }
    core::VolumeMount {
        name, read_only, recursive_read_only, mount_path, sub_path, mount_propagation,
        sub_path_expr,
    }
    core::VolumeDevice { name, device_path }
    core::Probe {
        handler @flatten, initial_delay_seconds, timeout_seconds, period_seconds,
        success_threshold, failure_threshold, termination_grace_period_seconds @keep,
    }
    core::ProbeHandler { exec, http_get, tcp_socket, grpc }
    core::Lifecycle { post_start, pre_stop, stop_signal }
    core::LifecycleHandler { exec, http_get, tcp_socket, sleep }
    core::ExecAction { command }
    core::HttpGetAction { path, port @keep, host, scheme, http_headers }
    core::HttpHeader { name, value @keep }
    core::TcpSocketAction { port @keep, host }
    core::GrpcAction { port @keep, service }
    core::SleepAction { seconds @keep }
    core::SecurityContext {
        capabilities, privileged @keep, se_linux_options, windows_options, run_as_user @keep,
        run_as_group @keep, run_as_non_root @keep, read_only_root_filesystem @keep,
        allow_privilege_escalation @keep, proc_mount, seccomp_profile, app_armor_profile,
    }
    core::Capabilities { add, drop }
    core::SeLinuxOptions { user, role, r#type, level }
    core::WindowsSecurityContextOptions {
        gmsa_credential_spec_name, gmsa_credential_spec, run_as_user_name, host_process @keep,
    }
    core::SeccompProfile { r#type, localhost_profile }
    core::AppArmorProfile { r#type, localhost_profile }
    core::PodSecurityContext {
        se_linux_options, windows_options, run_as_user @keep, run_as_group @keep,
        run_as_non_root @keep, supplemental_groups, supplemental_groups_policy, fs_group @keep,
        sysctls, fs_group_change_policy, seccomp_profile, app_armor_profile,
        se_linux_change_policy,
    }
    core::Sysctl { name, value @keep }
    core::Toleration { key, operator, value, effect, toleration_seconds @keep }
    core::Affinity { node_affinity, pod_affinity, pod_anti_affinity }
    core::NodeAffinity {
        required_during_scheduling_ignored_during_execution,
        preferred_during_scheduling_ignored_during_execution,
    }
    core::NodeSelector { node_selector_terms }
    core::NodeSelectorTerm { match_expressions, match_fields }
    core::NodeSelectorRequirement { key, operator, values }
    core::PreferredSchedulingTerm { weight @keep, preference }
    core::PodAffinity {
        required_during_scheduling_ignored_during_execution,
        preferred_during_scheduling_ignored_during_execution,
    }
    core::PodAntiAffinity {
        required_during_scheduling_ignored_during_execution,
        preferred_during_scheduling_ignored_during_execution,
    }
    core::PodAffinityTerm {
        label_selector, namespaces, topology_key, namespace_selector, match_label_keys,
        mismatch_label_keys,
    }
    core::WeightedPodAffinityTerm { weight @keep, pod_affinity_term }
    core::TopologySpreadConstraint {
        max_skew @keep, topology_key, when_unsatisfiable, label_selector, min_domains @keep,
        node_affinity_policy, node_taints_policy, match_label_keys,
    }
    core::PodDnsConfig { nameservers, searches, options }
    core::PodDnsConfigOption { name, value @keep }
    core::HostAlias { ip, hostnames }
    core::PodReadinessGate { condition_type }
    core::PodOs { name }
    core::PodSchedulingGate { name }
    core::PodResourceClaim { name, resource_claim_name, resource_claim_template_name }
}

// core/v1 volumes. The long-deprecated in-tree cloud and cluster-filesystem sources are left out:
// a volume that uses one arrives without a source and fails validation, which names it.
fields! {
    core::Volume { name, volume_source @flatten }
    core::VolumeSource {
        host_path, empty_dir, git_repo, secret, nfs, persistent_volume_claim,
        downward_api => "downwardAPI", config_map, projected, csi, ephemeral, image,
    }
    core::HostPathVolumeSource { path, r#type }
    core::EmptyDirVolumeSource { medium, size_limit }
    core::GitRepoVolumeSource { repository, revision, directory }
    core::SecretVolumeSource { secret_name, items, default_mode @keep, optional @keep }
    core::NfsVolumeSource { server, path, read_only }
    core::PersistentVolumeClaimVolumeSource { claim_name, read_only }
    core::DownwardAPIVolumeSource { items, default_mode @keep }
    core::DownwardAPIVolumeFile { path, field_ref, resource_field_ref, mode @keep }
    core::ConfigMapVolumeSource {
        local_object_reference @flatten, items, default_mode @keep, optional @keep,
    }
    core::KeyToPath { key, path, mode @keep }
    core::ProjectedVolumeSource { sources, default_mode @keep }
    core::VolumeProjection {
        secret, downward_api => "downwardAPI", config_map, service_account_token,
        cluster_trust_bundle, pod_certificate,
    }
    core::SecretProjection { local_object_reference @flatten, items, optional @keep }
    core::ConfigMapProjection { local_object_reference @flatten, items, optional @keep }
    core::DownwardAPIProjection { items }
    core::ServiceAccountTokenProjection { audience, expiration_seconds @keep, path }
    core::ClusterTrustBundleProjection { name, signer_name, label_selector, optional @keep, path }
    core::PodCertificateProjection {
        signer_name, key_type, max_expiration_seconds @keep, credential_bundle_path, key_path,
        certificate_chain_path, user_annotations,
    }
    core::CSIVolumeSource {
        driver, read_only @keep, fs_type, volume_attributes, node_publish_secret_ref,
    }
    core::EphemeralVolumeSource { volume_claim_template }
    core::PersistentVolumeClaimTemplate { metadata, spec }
    core::PersistentVolumeClaimSpec {
        access_modes, selector, resources, volume_name, storage_class_name @keep, volume_mode,
        data_source, data_source_ref, volume_attributes_class_name,
    }
    core::VolumeResourceRequirements { limits, requests }
    core::TypedLocalObjectReference { api_group, kind, name }
    core::TypedObjectReference { api_group, kind, name, namespace }
    core::ImageVolumeSource { reference, pull_policy }
}

// apps/v1 and batch/v1.
fields! {
    apps::Deployment { metadata, spec }
    apps::DeploymentSpec {
        replicas @keep, selector, template, strategy, min_ready_seconds,
        revision_history_limit @keep, paused, progress_deadline_seconds @keep,
    }
    apps::DeploymentStrategy { r#type, rolling_update }
    apps::RollingUpdateDeployment { max_unavailable @keep, max_surge @keep }
    batch::Job { metadata, spec }
    batch::JobSpec {
        parallelism @keep, completions @keep, active_deadline_seconds @keep, pod_failure_policy,
        success_policy, backoff_limit @keep, backoff_limit_per_index @keep,
        max_failed_indexes @keep, selector, manual_selector @keep, template,
        ttl_seconds_after_finished @keep, completion_mode, suspend @keep, pod_replacement_policy,
        managed_by,
    }
    batch::PodFailurePolicy { rules }
    batch::PodFailurePolicyRule { action, on_exit_codes, on_pod_conditions }
    batch::PodFailurePolicyOnExitCodesRequirement { container_name, operator, values }
    batch::PodFailurePolicyOnPodConditionsPattern { r#type, status }
    batch::SuccessPolicy { rules }
    batch::SuccessPolicyRule { succeeded_indexes, succeeded_count @keep }
    batch::CronJob { metadata, spec }
    batch::CronJobSpec {
        schedule, time_zone, starting_deadline_seconds @keep, concurrency_policy, suspend @keep,
        job_template, successful_jobs_history_limit @keep, failed_jobs_history_limit @keep,
    }
    batch::JobTemplateSpec { metadata, spec }
}

// autoscaling/v1 and v2.
fields! {
    autoscaling_v1::HorizontalPodAutoscaler { metadata, spec }
    autoscaling_v1::HorizontalPodAutoscalerSpec {
        scale_target_ref, min_replicas @keep, max_replicas @keep,
        target_cpu_utilization_percentage => "targetCPUUtilizationPercentage" @keep,
    }
    autoscaling_v1::CrossVersionObjectReference { kind, name, api_version }
    autoscaling_v2::HorizontalPodAutoscaler { metadata, spec }
    autoscaling_v2::HorizontalPodAutoscalerSpec {
        scale_target_ref, min_replicas @keep, max_replicas @keep, metrics, behavior,
    }
    autoscaling_v2::CrossVersionObjectReference { kind, name, api_version }
    autoscaling_v2::MetricSpec { r#type, object, pods, resource, container_resource, external }
    autoscaling_v2::ObjectMetricSource { described_object, target, metric }
    autoscaling_v2::PodsMetricSource { metric, target }
    autoscaling_v2::ResourceMetricSource { name, target }
    autoscaling_v2::ContainerResourceMetricSource { name, target, container }
    autoscaling_v2::ExternalMetricSource { metric, target }
    autoscaling_v2::MetricIdentifier { name, selector }
    autoscaling_v2::MetricTarget { r#type, value, average_value, average_utilization @keep }
    autoscaling_v2::HorizontalPodAutoscalerBehavior { scale_up, scale_down }
    autoscaling_v2::HpaScalingRules {
        stabilization_window_seconds @keep, select_policy, policies, tolerance,
    }
    autoscaling_v2::HpaScalingPolicy { r#type, value @keep, period_seconds @keep }
}

// policy, rbac, networking, scheduling.
fields! {
    policy::PodDisruptionBudget { metadata, spec }
    policy::PodDisruptionBudgetSpec {
        min_available @keep, selector, max_unavailable @keep, unhealthy_pod_eviction_policy,
    }
    policy::Eviction { metadata, delete_options }
    rbac::Role { metadata, rules }
    rbac::ClusterRole { metadata, rules, aggregation_rule }
    rbac::PolicyRule {
        verbs, api_groups, resources, resource_names, non_resource_ur_ls => "nonResourceURLs",
    }
    rbac::AggregationRule { cluster_role_selectors }
    rbac::RoleBinding { metadata, subjects, role_ref }
    rbac::ClusterRoleBinding { metadata, subjects, role_ref }
    rbac::Subject { kind, api_group, name, namespace }
    rbac::RoleRef { api_group, kind, name }
    networking::Ingress { metadata, spec }
    networking::IngressSpec { ingress_class_name, default_backend, tls, rules }
    networking::IngressBackend { service, resource }
    networking::IngressServiceBackend { name, port }
    networking::ServiceBackendPort { name, number }
    networking::IngressTls { hosts, secret_name }
    networking::IngressRule { host, ingress_rule_value @flatten }
    networking::IngressRuleValue { http }
    networking::HttpIngressRuleValue { paths }
    networking::HttpIngressPath { path, path_type, backend }
    scheduling::PriorityClass {
        metadata, value @keep, global_default, description, preemption_policy,
    }
}

// authentication and authorization requests (`create token`, `auth whoami`, `auth can-i`).
fields! {
    authn::TokenRequest { metadata, spec }
    authn::TokenRequestSpec { audiences, expiration_seconds @keep, bound_object_ref }
    authn::BoundObjectReference { kind, api_version, name, u_id => "uid" }
    authn::SelfSubjectReview { metadata }
    authz::SelfSubjectAccessReview { metadata, spec }
    authz::SelfSubjectAccessReviewSpec { resource_attributes, non_resource_attributes }
    authz::ResourceAttributes {
        namespace, verb, group, version, resource, subresource, name, field_selector,
        label_selector,
    }
    authz::FieldSelectorAttributes { raw_selector, requirements }
    authz::LabelSelectorAttributes { raw_selector, requirements }
    authz::NonResourceAttributes { path, verb }
    authz::SelfSubjectRulesReview { metadata, spec }
    authz::SelfSubjectRulesReviewSpec { namespace }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_pb::apimachinery::pkg::runtime::TypeMeta;
    use serde_json::json;

    /// Wraps `message` the way client-go does: magic, then an Unknown with empty encoding fields.
    fn envelope(api_version: &str, kind: &str, message: &impl Message) -> Vec<u8> {
        let unknown = Unknown {
            type_meta: Some(TypeMeta {
                api_version: Some(api_version.to_owned()),
                kind: Some(kind.to_owned()),
            }),
            raw: Some(message.encode_to_vec()),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        [MAGIC, &unknown.encode_to_vec()].concat()
    }

    fn meta(name: &str) -> Option<meta::ObjectMeta> {
        Some(meta::ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        })
    }

    fn s(value: &str) -> Option<String> {
        Some(value.to_owned())
    }

    fn int(value: i32) -> Option<IntOrString> {
        Some(IntOrString {
            r#type: Some(0),
            int_val: Some(value),
            str_val: Some(String::new()),
        })
    }

    fn string(value: &str) -> Option<IntOrString> {
        Some(IntOrString {
            r#type: Some(1),
            int_val: Some(0),
            str_val: s(value),
        })
    }

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("fixture is hex"))
            .collect()
    }

    #[test]
    fn decodes_namespace() {
        let ns = core::Namespace {
            metadata: meta("demo"),
            ..Default::default()
        };
        let json = decode(&envelope("v1", "Namespace", &ns)).expect("decodes");
        assert_eq!(
            json,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}})
        );
    }

    #[test]
    fn drops_go_zero_values_of_non_pointer_fields() {
        // Go marshals every non-pointer field; these are what an empty ObjectMeta looks like.
        let metadata = meta::ObjectMeta {
            name: s("demo"),
            generate_name: s(""),
            uid: s(""),
            generation: Some(0),
            creation_timestamp: Some(Default::default()),
            ..Default::default()
        };
        let ns = core::Namespace {
            metadata: Some(metadata),
            spec: Some(Default::default()),
            status: Some(Default::default()),
        };
        let json = decode(&envelope("v1", "Namespace", &ns)).expect("decodes");
        assert_eq!(json["metadata"], json!({"name": "demo"}));
        assert_eq!(json["spec"], json!({}));
        assert!(json.get("status").is_none());
    }

    #[test]
    fn decodes_deployment_with_container_ports() {
        let labels = BTreeMap::from([("app".to_owned(), "web".to_owned())]);
        let container = core::Container {
            name: s("web"),
            image: s("nginx:1.27"),
            ports: vec![core::ContainerPort {
                container_port: Some(80),
                host_port: Some(0),
                protocol: s("TCP"),
                ..Default::default()
            }],
            resources: Some(Default::default()),
            stdin: Some(false),
            ..Default::default()
        };
        let deployment = apps::Deployment {
            metadata: Some(meta::ObjectMeta {
                name: s("web"),
                labels: labels.clone(),
                ..Default::default()
            }),
            spec: Some(apps::DeploymentSpec {
                replicas: Some(3),
                selector: Some(meta::LabelSelector {
                    match_labels: labels.clone(),
                    ..Default::default()
                }),
                template: Some(core::PodTemplateSpec {
                    metadata: Some(meta::ObjectMeta {
                        labels,
                        ..Default::default()
                    }),
                    spec: Some(core::PodSpec {
                        containers: vec![container],
                        ..Default::default()
                    }),
                }),
                strategy: Some(Default::default()),
                min_ready_seconds: Some(0),
                ..Default::default()
            }),
            status: Some(Default::default()),
        };
        let json = decode(&envelope("apps/v1", "Deployment", &deployment)).expect("decodes");
        assert_eq!(
            json,
            json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "web", "labels": {"app": "web"}},
                "spec": {
                    "replicas": 3,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{
                            "name": "web",
                            "image": "nginx:1.27",
                            "ports": [{"containerPort": 80, "protocol": "TCP"}],
                            "resources": {},
                        }]},
                    },
                    "strategy": {},
                },
            })
        );
    }

    #[test]
    fn keeps_zero_in_pointer_fields() {
        let deployment = apps::Deployment {
            spec: Some(apps::DeploymentSpec {
                replicas: Some(0),
                ..Default::default()
            }),
            ..Default::default()
        };
        let json = decode(&envelope("apps/v1", "Deployment", &deployment)).expect("decodes");
        assert_eq!(json["spec"], json!({"replicas": 0}));

        let pdb = policy::PodDisruptionBudget {
            spec: Some(policy::PodDisruptionBudgetSpec {
                min_available: int(0),
                max_unavailable: None,
                ..Default::default()
            }),
            ..Default::default()
        };
        let json = decode(&envelope("policy/v1", "PodDisruptionBudget", &pdb)).expect("decodes");
        assert_eq!(json["spec"], json!({"minAvailable": 0}));
    }

    #[test]
    fn decodes_service_target_port_as_int_or_string() {
        let service = core::Service {
            metadata: meta("web"),
            spec: Some(core::ServiceSpec {
                ports: vec![
                    core::ServicePort {
                        name: s("80-8080"),
                        protocol: s("TCP"),
                        port: Some(80),
                        target_port: int(8080),
                        node_port: Some(0),
                        ..Default::default()
                    },
                    core::ServicePort {
                        port: Some(443),
                        target_port: string("https"),
                        node_port: Some(30443),
                        ..Default::default()
                    },
                ],
                selector: BTreeMap::from([("app".to_owned(), "web".to_owned())]),
                cluster_ip: s(""),
                r#type: s("NodePort"),
                external_ips: vec!["10.0.0.9".to_owned()],
                ..Default::default()
            }),
            status: None,
        };
        let json = decode(&envelope("v1", "Service", &service)).expect("decodes");
        assert_eq!(
            json["spec"],
            json!({
                "ports": [
                    {"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080},
                    {"port": 443, "targetPort": "https", "nodePort": 30443},
                ],
                "selector": {"app": "web"},
                "type": "NodePort",
                "externalIPs": ["10.0.0.9"],
            })
        );
    }

    #[test]
    fn decodes_secret_data_as_base64() {
        let secret = core::Secret {
            metadata: meta("creds"),
            data: BTreeMap::from([
                ("pass".to_owned(), b"s3cr3t".to_vec()),
                ("empty".to_owned(), Vec::new()),
            ]),
            string_data: BTreeMap::from([("user".to_owned(), "admin".to_owned())]),
            r#type: s("Opaque"),
            immutable: None,
        };
        let json = decode(&envelope("v1", "Secret", &secret)).expect("decodes");
        assert_eq!(
            json,
            json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "creds"},
                "data": {"pass": "czNjcjN0", "empty": ""},
                "stringData": {"user": "admin"},
                "type": "Opaque",
            })
        );
    }

    #[test]
    fn decodes_hpa_v2_cpu_utilization() {
        let hpa = autoscaling_v2::HorizontalPodAutoscaler {
            metadata: meta("web"),
            spec: Some(autoscaling_v2::HorizontalPodAutoscalerSpec {
                scale_target_ref: Some(autoscaling_v2::CrossVersionObjectReference {
                    kind: s("Deployment"),
                    name: s("web"),
                    api_version: s("apps/v1"),
                }),
                min_replicas: Some(2),
                max_replicas: Some(5),
                metrics: vec![autoscaling_v2::MetricSpec {
                    r#type: s("Resource"),
                    resource: Some(autoscaling_v2::ResourceMetricSource {
                        name: s("cpu"),
                        target: Some(autoscaling_v2::MetricTarget {
                            r#type: s("Utilization"),
                            average_utilization: Some(50),
                            ..Default::default()
                        }),
                    }),
                    ..Default::default()
                }],
                behavior: None,
            }),
            status: None,
        };
        let body = envelope("autoscaling/v2", "HorizontalPodAutoscaler", &hpa);
        let json = decode(&body).expect("decodes");
        assert_eq!(
            json["spec"],
            json!({
                "scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
                "minReplicas": 2,
                "maxReplicas": 5,
                "metrics": [{
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}},
                }],
            })
        );
    }

    #[test]
    fn decodes_job_with_owner_reference() {
        let job = batch::Job {
            metadata: Some(meta::ObjectMeta {
                name: s("manual"),
                annotations: BTreeMap::from([(
                    "cronjob.kubernetes.io/instantiate".to_owned(),
                    "manual".to_owned(),
                )]),
                owner_references: vec![meta::OwnerReference {
                    api_version: s("batch/v1"),
                    kind: s("CronJob"),
                    name: s("nightly"),
                    uid: s("cj-uid-1"),
                    controller: Some(true),
                    block_owner_deletion: None,
                }],
                ..Default::default()
            }),
            spec: Some(batch::JobSpec {
                backoff_limit: Some(0),
                template: Some(core::PodTemplateSpec {
                    metadata: Some(Default::default()),
                    spec: Some(core::PodSpec {
                        restart_policy: s("Never"),
                        containers: vec![core::Container {
                            name: s("task"),
                            image: s("busybox"),
                            command: vec!["echo".to_owned(), String::new()],
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                }),
                ..Default::default()
            }),
            status: None,
        };
        let json = decode(&envelope("batch/v1", "Job", &job)).expect("decodes");
        assert_eq!(
            json["metadata"],
            json!({
                "name": "manual",
                "annotations": {"cronjob.kubernetes.io/instantiate": "manual"},
                "ownerReferences": [{
                    "apiVersion": "batch/v1",
                    "kind": "CronJob",
                    "name": "nightly",
                    "uid": "cj-uid-1",
                    "controller": true,
                }],
            })
        );
        assert_eq!(
            json["spec"],
            json!({
                "backoffLimit": 0,
                "template": {
                    "metadata": {},
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "task", "image": "busybox", "command": ["echo", ""]}],
                    },
                },
            })
        );
    }

    #[test]
    fn inlines_embedded_structs() {
        let pod = core::Pod {
            spec: Some(core::PodSpec {
                volumes: vec![
                    core::Volume {
                        name: s("scratch"),
                        volume_source: Some(core::VolumeSource {
                            empty_dir: Some(Default::default()),
                            ..Default::default()
                        }),
                    },
                    core::Volume {
                        name: s("cfg"),
                        volume_source: Some(core::VolumeSource {
                            config_map: Some(core::ConfigMapVolumeSource {
                                local_object_reference: Some(core::LocalObjectReference {
                                    name: s("settings"),
                                }),
                                default_mode: Some(420),
                                optional: Some(false),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }),
                    },
                ],
                containers: vec![core::Container {
                    liveness_probe: Some(core::Probe {
                        handler: Some(core::ProbeHandler {
                            http_get: Some(core::HttpGetAction {
                                path: s("/healthz"),
                                port: string("http"),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }),
                        period_seconds: Some(5),
                        initial_delay_seconds: Some(0),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                host_pid: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        };
        let json = decode(&envelope("v1", "Pod", &pod)).expect("decodes");
        assert_eq!(
            json["spec"],
            json!({
                "volumes": [
                    {"name": "scratch", "emptyDir": {}},
                    {"name": "cfg", "configMap": {"name": "settings", "defaultMode": 420, "optional": false}},
                ],
                "containers": [{
                    "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5},
                }],
                "hostPID": true,
            })
        );
    }

    #[test]
    fn decodes_configmap_binary_data() {
        let cm = core::ConfigMap {
            metadata: meta("bin"),
            binary_data: BTreeMap::from([("blob".to_owned(), vec![0, 1, 0xff])]),
            data: BTreeMap::from([("empty".to_owned(), String::new())]),
            immutable: None,
        };
        let json = decode(&envelope("v1", "ConfigMap", &cm)).expect("decodes");
        assert_eq!(json["binaryData"], json!({"blob": "AAH/"}));
        assert_eq!(json["data"], json!({"empty": ""}));
    }

    #[test]
    fn rejects_body_without_magic() {
        let ns = core::Namespace {
            metadata: meta("demo"),
            ..Default::default()
        };
        let body = envelope("v1", "Namespace", &ns);
        let err = decode(&body[4..]).expect_err("no magic");
        assert!(err.contains("magic"), "{err}");
        assert!(decode(b"").is_err());
        assert!(decode(b"{\"kind\":\"Namespace\"}").is_err());
    }

    #[test]
    fn rejects_truncated_body_without_panicking() {
        let job = batch::Job {
            metadata: meta("manual"),
            spec: Some(batch::JobSpec {
                backoff_limit: Some(3),
                ..Default::default()
            }),
            status: None,
        };
        let body = envelope("batch/v1", "Job", &job);
        let err = decode(&body[..body.len() / 2]).expect_err("truncated");
        assert!(err.contains("malformed"), "{err}");
        // Every prefix either decodes or errors; none panics.
        for end in 0..body.len() {
            let _ = decode(&body[..end]);
        }
        assert!(decode(b"k8s\0\x0a\xff\xff\xff\xff\x0f").is_err());
    }

    #[test]
    fn rejects_unsupported_kind_and_missing_type() {
        let err = decode(&envelope(
            "apps/v1",
            "StatefulSet",
            &apps::StatefulSet::default(),
        ))
        .expect_err("unsupported");
        assert!(
            err.contains("apps/v1 StatefulSet are not supported"),
            "{err}"
        );

        let untyped = Unknown {
            raw: Some(Vec::new()),
            ..Default::default()
        };
        let err = decode(&[MAGIC, &untyped.encode_to_vec()].concat()).expect_err("untyped");
        assert!(err.contains("no apiVersion"), "{err}");
    }

    #[test]
    fn rejects_compressed_payload() {
        let unknown = Unknown {
            type_meta: Some(TypeMeta {
                api_version: s("v1"),
                kind: s("Namespace"),
            }),
            raw: Some(vec![1, 2, 3]),
            content_encoding: s("gzip"),
            content_type: None,
        };
        let err = decode(&[MAGIC, &unknown.encode_to_vec()].concat()).expect_err("gzip");
        assert!(err.contains("gzip"), "{err}");
    }

    /// Bodies kubectl v1.37.1 sent to a logging server; the expected JSON is what the same
    /// command printed with `--dry-run=client -o json`, less `creationTimestamp: null` and `status`.
    #[test]
    fn decodes_bodies_captured_from_kubectl() {
        let cases = [
            (
                // kubectl create deployment web --image=nginx:1.27 --port=80 --replicas=3
                concat!(
                    "6b3873000a150a07617070732f7631120a4465706c6f796d656e7412c4010a260a0377656212001a0764656661756c74",
                    "22002a003200380042005a0a0a036170701203776562128b010803120c0a0a0a0361707012037765621a710a1c0a0012",
                    "001a0022002a003200380042005a0a0a036170701203776562125112330a056e67696e78120a6e67696e783a312e3237",
                    "2a00320a0a001000185022002a0042006a007200800100880100900100a201001a00320042004a005200580060006800",
                    "8201008a01009a0100c2010022020a00280038001a0c0800100018002000280038001a002200",
                ),
                json!({
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
                    "spec": {
                        "replicas": 3,
                        "selector": {"matchLabels": {"app": "web"}},
                        "template": {
                            "metadata": {"labels": {"app": "web"}},
                            "spec": {"containers": [{
                                "name": "nginx",
                                "image": "nginx:1.27",
                                "ports": [{"containerPort": 80}],
                                "resources": {},
                            }]},
                        },
                        "strategy": {},
                    },
                }),
            ),
            (
                // kubectl create service clusterip web --tcp=80:8080 --tcp=443:https
                concat!(
                    "6b3873000a0d0a0276311207536572766963651294010a260a0377656212001a0764656661756c7422002a0032003800",
                    "42005a0a0a03617070120377656212660a1b0a0738302d38303830120354435018502207080010903f1a0028000a220a",
                    "093434332d6874747073120354435018bb03220b080110001a0568747470732800120a0a0361707012037765621a0022",
                    "09436c757374657249503a00420052005a00600068001a020a001a002200",
                ),
                json!({
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
                    "spec": {
                        "ports": [
                            {"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080},
                            {"name": "443-https", "protocol": "TCP", "port": 443, "targetPort": "https"},
                        ],
                        "selector": {"app": "web"},
                        "type": "ClusterIP",
                    },
                }),
            ),
            (
                // kubectl create job manual --from=cronjob/nightly
                concat!(
                    "6b3873000a0f0a0862617463682f763112034a6f6212d9030a8c010a066d616e75616c12001a0764656661756c742200",
                    "2a003200380042005a0b0a047465616d12036f7073622b0a2163726f6e6a6f622e6b756265726e657465732e696f2f69",
                    "6e7374616e746961746512066d616e75616c62090a046e6f74651201786a280a0743726f6e4a6f621a076e696768746c",
                    "792208636a2d7569642d312a0862617463682f7631300112bd0232b8020a200a0012001a0022002a003200380042005a",
                    "0e0a036a6f6212076e696768746c791293020a0f0a0773637261746368120412020a000a190a0363666712129a010f0a",
                    "0a0a0873657474696e677318a40312bf010a047461736b120762757379626f781a0273681a022d631a04646174652a00",
                    "3a060a01411201313a1c0a03504f4412001a130a110a00120d6d657461646174612e6e616d6542210a0d0a0363707512",
                    "060a043530306d0a100a066d656d6f727912060a0436344d694a150a077363726174636810001a042f746d7022003200",
                    "52280a1c121a0a082f6865616c74687a120a080110001a04687474701a002200100018002005280030006a0072007a04",
                    "20002801800100880100900100a201001a094f6e4661696c757265320042004a0052005800600068008201008a01009a",
                    "0100c2010038001a082000280030003a001a002200",
                ),
                json!({
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "metadata": {
                        "name": "manual",
                        "namespace": "default",
                        "labels": {"team": "ops"},
                        "annotations": {"cronjob.kubernetes.io/instantiate": "manual", "note": "x"},
                        "ownerReferences": [{
                            "apiVersion": "batch/v1",
                            "kind": "CronJob",
                            "name": "nightly",
                            "uid": "cj-uid-1",
                            "controller": true,
                        }],
                    },
                    "spec": {
                        "backoffLimit": 0,
                        "template": {
                            "metadata": {"labels": {"job": "nightly"}},
                            "spec": {
                                "restartPolicy": "OnFailure",
                                "volumes": [
                                    {"name": "scratch", "emptyDir": {}},
                                    {"name": "cfg", "configMap": {"name": "settings", "defaultMode": 420}},
                                ],
                                "containers": [{
                                    "name": "task",
                                    "image": "busybox",
                                    "command": ["sh", "-c", "date"],
                                    "env": [
                                        {"name": "A", "value": "1"},
                                        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                                    ],
                                    "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}},
                                    "volumeMounts": [{"name": "scratch", "mountPath": "/tmp"}],
                                    "livenessProbe": {
                                        "httpGet": {"path": "/healthz", "port": "http"},
                                        "periodSeconds": 5,
                                    },
                                    "securityContext": {"runAsUser": 0, "runAsNonRoot": true},
                                }],
                            },
                        },
                    },
                }),
            ),
            (
                // kubectl autoscale deployment web --min=2 --max=5 --cpu=50%
                concat!(
                    "6b3873000a290a0e6175746f7363616c696e672f76321217486f72697a6f6e74616c506f644175746f7363616c657212",
                    "680a1a0a0377656212001a0764656661756c7422002a0032003800420012440a1a0a0a4465706c6f796d656e74120377",
                    "65621a07617070732f76311002180522220a085265736f7572636522160a03637075120f0a0b5574696c697a6174696f",
                    "6e20321a04180020001a002200",
                ),
                json!({
                    "apiVersion": "autoscaling/v2",
                    "kind": "HorizontalPodAutoscaler",
                    "metadata": {"name": "web", "namespace": "default"},
                    "spec": {
                        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                        "minReplicas": 2,
                        "maxReplicas": 5,
                        "metrics": [{
                            "type": "Resource",
                            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}},
                        }],
                    },
                }),
            ),
            (
                // kubectl create poddisruptionbudget pdb --selector=app=web --min-available=0
                concat!(
                    "6b3873000a200a09706f6c6963792f76311213506f6444697372757074696f6e42756467657412400a1a0a0370646212",
                    "001a0764656661756c7422002a0032003800420012160a06080010001a00120c0a0a0a0361707012037765621a0a0800",
                    "18002000280030001a002200",
                ),
                json!({
                    "apiVersion": "policy/v1",
                    "kind": "PodDisruptionBudget",
                    "metadata": {"name": "pdb", "namespace": "default"},
                    "spec": {"minAvailable": 0, "selector": {"matchLabels": {"app": "web"}}},
                }),
            ),
            (
                // kubectl create role r --verb=get,list --resource=pods,deployments.apps --resource-name=x
                concat!(
                    "6b3873000a240a1c726261632e617574686f72697a6174696f6e2e6b38732e696f2f76311204526f6c6512550a180a01",
                    "7212001a0764656661756c7422002a0032003800420012160a036765740a046c69737412001a04706f64732201781221",
                    "0a036765740a046c6973741204617070731a0b6465706c6f796d656e74732201781a002200",
                ),
                json!({
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "Role",
                    "metadata": {"name": "r", "namespace": "default"},
                    "rules": [
                        {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["x"]},
                        {"verbs": ["get", "list"], "apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": ["x"]},
                    ],
                }),
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(decode(&hex(body)).expect("decodes"), expected);
        }
    }

    #[test]
    fn camel_cases_field_names() {
        assert_eq!(camel("generate_name"), "generateName");
        assert_eq!(camel("r#type"), "type");
        assert_eq!(
            camel("required_during_scheduling_ignored_during_execution"),
            "requiredDuringSchedulingIgnoredDuringExecution"
        );
    }
}
