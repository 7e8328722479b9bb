//! The field tables: which protobuf message fields become which JSON fields, for every kind
//! the decoder serves (see the module docs for `=> "jsonName"`, `@keep` and `@flatten`).

use super::*;

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
