//! Discovery: `/api`, `/apis`, `/api/v1`, `/apis/{group}[/{version}]`, both the legacy
//! documents and the aggregated `apidiscovery.k8s.io/v2` ones (one request instead of one per
//! group-version), and `/version`. All built from the [`Registry`].

use serde_json::{Value, json};

use crate::registry::{Registry, ResourceType};

/// The media type of aggregated discovery documents.
pub const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether the client accepts aggregated discovery.
pub fn wants_aggregated(accept: &str) -> bool {
    accept.contains("as=APIGroupDiscoveryList") && accept.contains("v=v2")
}

const VERBS_ALL: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

fn scope(rt: &ResourceType) -> &'static str {
    if rt.namespaced {
        "Namespaced"
    } else {
        "Cluster"
    }
}

/// `GET /api`.
pub fn api_versions(server_address: &str) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]})
}

fn group_entry(registry: &Registry, group: &str) -> Value {
    let versions: Vec<Value> = registry
        .group_versions()
        .into_iter()
        .filter(|(g, _)| *g == group)
        .map(|(g, v)| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
        .collect();
    json!({"name": group, "versions": versions.clone(), "preferredVersion": versions[0]})
}

fn groups(registry: &Registry) -> Vec<&'static str> {
    let mut out = Vec::new();
    for (g, _) in registry.group_versions() {
        if !g.is_empty() && !out.contains(&g) {
            out.push(g);
        }
    }
    out
}

/// `GET /apis` (legacy `APIGroupList`).
pub fn api_group_list(registry: &Registry) -> Value {
    let mut groups: Vec<Value> = groups(registry)
        .into_iter()
        .map(|g| group_entry(registry, g))
        .collect();
    // Served by the API server itself, not stored (apiserver/metrics/).
    groups.push(super::metrics::discovery_entry());
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /apis/{group}`, if the group is served.
pub fn api_group(registry: &Registry, group: &str) -> Option<Value> {
    groups(registry).contains(&group).then(|| {
        let mut g = group_entry(registry, group);
        g["kind"] = json!("APIGroup");
        g["apiVersion"] = json!("v1");
        g
    })
}

/// `GET /api/v1` or `/apis/{group}/{version}` (legacy `APIResourceList`), if served.
pub fn api_resource_list(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let types: Vec<&ResourceType> = registry
        .types()
        .iter()
        .filter(|t| t.group == group && t.version == version)
        .collect();
    if types.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for t in types {
        let mut r = json!({"name": t.plural, "singularName": t.singular_name(),
            "namespaced": t.namespaced, "kind": t.kind, "verbs": VERBS_ALL});
        if !t.short_names.is_empty() {
            r["shortNames"] = json!(t.short_names);
        }
        if !t.categories.is_empty() {
            r["categories"] = json!(t.categories);
        }
        resources.push(r);
        for s in t.subresources {
            let mut sr = json!({"name": format!("{}/{}", t.plural, s.name), "singularName": "",
                "namespaced": t.namespaced, "kind": s.kind, "verbs": s.verbs});
            if s.group != t.group || s.version != t.version {
                sr["group"] = json!(s.group);
                sr["version"] = json!(s.version);
            }
            resources.push(sr);
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

fn aggregated_version(registry: &Registry, group: &str, version: &str) -> Value {
    let resources: Vec<Value> = registry
        .types()
        .iter()
        .filter(|t| t.group == group && t.version == version)
        .map(|t| {
            let subs: Vec<Value> = t
                .subresources
                .iter()
                .map(|s| {
                    json!({"subresource": s.name,
                    "responseKind": {"group": s.group, "version": s.version, "kind": s.kind},
                    "verbs": s.verbs})
                })
                .collect();
            let mut r = json!({"resource": t.plural,
                "responseKind": {"group": t.group, "version": t.version, "kind": t.kind},
                "scope": scope(t), "singularResource": t.singular_name(), "verbs": VERBS_ALL,
                "subresources": subs});
            if !t.short_names.is_empty() {
                r["shortNames"] = json!(t.short_names);
            }
            if !t.categories.is_empty() {
                r["categories"] = json!(t.categories);
            }
            r
        })
        .collect();
    let mut v = json!({"version": version, "resources": resources, "freshness": "Current"});
    if let Some(rt) = registry
        .types()
        .iter()
        .find(|t| t.group == group && t.version == version && t.deprecation.is_some())
    {
        let _ = rt;
    }
    v["freshness"] = json!("Current");
    v
}

/// The aggregated discovery document for `/api` (core group) or `/apis` (all others).
pub fn aggregated(registry: &Registry, core: bool) -> Value {
    let names: Vec<&str> = if core { vec![""] } else { groups(registry) };
    let mut items: Vec<Value> = names
        .into_iter()
        .map(|g| {
            let versions: Vec<Value> = registry
                .group_versions()
                .into_iter()
                .filter(|(gg, _)| *gg == g)
                .map(|(_, v)| aggregated_version(registry, g, v))
                .collect();
            json!({"metadata": {"name": g, "creationTimestamp": null}, "versions": versions})
        })
        .collect();
    if !core {
        items.push(super::metrics::aggregated_entry());
    }
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {}, "items": items})
}

/// `GET /version`: we implement the Kubernetes 1.37 API.
pub fn version() -> Value {
    json!({"major": "1", "minor": "37", "emulationMajor": "1", "emulationMinor": "37",
        "minCompatibilityMajor": "1", "minCompatibilityMinor": "36",
        "gitVersion": concat!("v1.37.0-wasmkube.", env!("CARGO_PKG_VERSION")),
        "gitCommit": "", "gitTreeState": "clean", "buildDate": "",
        "goVersion": "rust", "compiler": "rustc", "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH)})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apps_v1_lists_deployments_with_scale() {
        let r = Registry::new();
        let list = api_resource_list(&r, "apps", "v1").unwrap();
        let names: Vec<&str> = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"deployments"));
        assert!(names.contains(&"deployments/scale"));
        let deploy = &list["resources"][0];
        assert_eq!(deploy["shortNames"][0], "deploy");
        assert_eq!(deploy["categories"][0], "all");
    }

    #[test]
    fn metrics_group_is_discoverable() {
        let r = Registry::new();
        let list = api_group_list(&r);
        assert!(
            list["groups"]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g["name"] == "metrics.k8s.io")
        );
        let doc = aggregated(&r, false);
        assert!(
            doc["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g["metadata"]["name"] == "metrics.k8s.io")
        );
        assert!(aggregated(&r, true)["items"].as_array().unwrap().len() == 1);
    }

    #[test]
    fn autoscaling_prefers_v2() {
        let g = api_group(&Registry::new(), "autoscaling").unwrap();
        assert_eq!(g["preferredVersion"]["version"], "v2");
        assert_eq!(g["versions"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn aggregated_core_group_has_pods() {
        let doc = aggregated(&Registry::new(), true);
        assert_eq!(doc["items"][0]["metadata"]["name"], "");
        let res = &doc["items"][0]["versions"][0]["resources"];
        assert!(
            res.as_array()
                .unwrap()
                .iter()
                .any(|r| r["resource"] == "pods")
        );
    }
}
