//! Turning what the user typed (`po`, `deploy`, `deployments.apps`, `Service`, `pod/web`) into
//! resource types the server serves, using its discovery documents.
//!
//! kube's [`kube::Discovery`] keeps plural, kind and scope but drops `shortNames`,
//! `singularName` and `categories`, which is exactly what TYPE resolution needs; so this module
//! reads the legacy `APIResourceList`s through kube's low-level discovery calls
//! (`list_core_api_versions`, `list_api_groups`, `list_*_api_resources`) and keeps them whole.

use futures::future::try_join_all;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList;
use kube::Client;
use kube::discovery::ApiResource;

use crate::error::Error;

/// One resource type the server serves at one group-version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceType {
    /// Group, version, kind and plural, as kube's dynamic API wants them.
    pub api: ApiResource,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Lower-case singular name (`deployment`); falls back to the lower-cased kind.
    pub singular: String,
    /// Short names from discovery (`deploy`).
    pub short_names: Vec<String>,
    /// Verbs the server supports on it.
    pub verbs: Vec<String>,
    /// Categories such as `all`.
    pub categories: Vec<String>,
}

impl ResourceType {
    /// kubectl's object prefix `kind.group` (`deployment.apps`, `pod`), used by `-o name`,
    /// `apply` and `scale` output.
    pub fn kind_group(&self) -> String {
        with_group(&self.api.kind.to_lowercase(), &self.api.group)
    }

    /// kubectl's `resource.group` (`deployments.apps`, `pods`), used in messages.
    pub fn plural_group(&self) -> String {
        with_group(&self.api.plural, &self.api.group)
    }

    /// The collection path, e.g. `/apis/apps/v1/namespaces/default/deployments`;
    /// `namespace` is ignored for cluster-scoped types.
    pub fn url_path(&self, namespace: Option<&str>) -> String {
        let prefix = if self.api.group.is_empty() {
            format!("/api/{}", self.api.version)
        } else {
            format!("/apis/{}/{}", self.api.group, self.api.version)
        };
        match namespace.filter(|_| self.namespaced) {
            Some(ns) => format!("{prefix}/namespaces/{ns}/{}", self.api.plural),
            None => format!("{prefix}/{}", self.api.plural),
        }
    }
}

fn with_group(name: &str, group: &str) -> String {
    if group.is_empty() {
        name.to_string()
    } else {
        format!("{name}.{group}")
    }
}

/// Every resource type the server advertises: the core group first, then the other groups in
/// the server's order, each group's preferred version first (so bare names resolve as kubectl
/// resolves them: `events` is core `v1`, not `events.k8s.io`).
#[derive(Clone, Debug, Default)]
pub struct ResourceIndex {
    types: Vec<ResourceType>,
}

impl ResourceIndex {
    /// Reads discovery from the server: `/api`, `/apis` and every group-version, concurrently.
    pub async fn discover(client: &Client) -> Result<Self, Error> {
        let (core, groups) =
            futures::try_join!(client.list_core_api_versions(), client.list_api_groups())?;
        let mut group_versions: Vec<String> = core.versions.clone();
        for group in &groups.groups {
            let preferred = group
                .preferred_version
                .as_ref()
                .map(|p| p.group_version.clone());
            if let Some(p) = &preferred {
                group_versions.push(p.clone());
            }
            for v in &group.versions {
                if Some(&v.group_version) != preferred.as_ref() {
                    group_versions.push(v.group_version.clone());
                }
            }
        }
        let lists = try_join_all(group_versions.iter().map(|gv| async move {
            if gv.contains('/') {
                client.list_api_group_resources(gv).await
            } else {
                client.list_core_api_resources(gv).await
            }
        }))
        .await?;
        Ok(Self::from_lists(&lists))
    }

    /// Builds the index from `APIResourceList`s in priority order; subresources are skipped.
    pub fn from_lists(lists: &[APIResourceList]) -> Self {
        let mut types = Vec::new();
        for list in lists {
            let (group, version) = match list.group_version.split_once('/') {
                Some((g, v)) => (g.to_string(), v.to_string()),
                None => (String::new(), list.group_version.clone()),
            };
            for r in list.resources.iter().filter(|r| !r.name.contains('/')) {
                let singular = if r.singular_name.is_empty() {
                    r.kind.to_lowercase()
                } else {
                    r.singular_name.to_lowercase()
                };
                types.push(ResourceType {
                    api: ApiResource {
                        group: group.clone(),
                        version: version.clone(),
                        api_version: list.group_version.clone(),
                        kind: r.kind.clone(),
                        plural: r.name.clone(),
                    },
                    namespaced: r.namespaced,
                    singular,
                    short_names: r.short_names.clone().unwrap_or_default(),
                    verbs: r.verbs.clone(),
                    categories: r.categories.clone().unwrap_or_default(),
                });
            }
        }
        Self { types }
    }

    /// Resolves TYPE as kubectl does: `resource[.version][.group]` where resource is a plural,
    /// singular, short name or kind (any case).
    pub fn resolve(&self, ty: &str) -> Result<&ResourceType, Error> {
        let lower = ty.to_lowercase();
        let mut candidates = vec![(lower.as_str(), None, None)];
        if let Some((res, rest)) = lower.split_once('.') {
            candidates.push((res, Some(rest), None));
            if let Some((version, group)) = rest.split_once('.') {
                candidates.push((res, Some(group), Some(version)));
            }
        }
        for (name, group, version) in candidates {
            let in_scope = |t: &&ResourceType| {
                group.is_none_or(|g| t.api.group == g) && version.is_none_or(|v| t.api.version == v)
            };
            let by_priority: [&dyn Fn(&ResourceType) -> bool; 4] = [
                &|t| t.api.plural == name,
                &|t| t.singular == name,
                &|t| t.short_names.iter().any(|s| s.eq_ignore_ascii_case(name)),
                &|t| t.api.kind.eq_ignore_ascii_case(name),
            ];
            for matches in by_priority {
                if let Some(t) = self.types.iter().filter(in_scope).find(|t| matches(t)) {
                    return Ok(t);
                }
            }
        }
        Err(Error::UnknownResourceType(ty.to_string()))
    }

    /// Resolves TYPE, or a category such as `all` into the types that carry it.
    pub fn resolve_or_category(&self, ty: &str) -> Result<Vec<&ResourceType>, Error> {
        match self.resolve(ty) {
            Ok(t) => Ok(vec![t]),
            Err(err) => {
                let lower = ty.to_lowercase();
                let mut found: Vec<&ResourceType> = Vec::new();
                for t in self.types.iter().filter(|t| t.categories.contains(&lower)) {
                    // a category names each resource once, at its preferred version
                    if !found
                        .iter()
                        .any(|f| f.api.group == t.api.group && f.api.plural == t.api.plural)
                    {
                        found.push(t);
                    }
                }
                if found.is_empty() {
                    Err(err)
                } else {
                    Ok(found)
                }
            }
        }
    }

    /// The exact type for a manifest's `apiVersion` and `kind`.
    pub fn resolve_kind(&self, api_version: &str, kind: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.api.api_version == api_version && t.api.kind == kind)
    }
}

/// One TYPE from the command line with the names given for it (empty: all of them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeArg {
    /// What the user typed for the type.
    pub ty: String,
    /// Object names; empty means "every object of this type".
    pub names: Vec<String>,
}

/// Splits kubectl's `TYPE[,TYPE...] [NAME...]` and `TYPE/NAME [TYPE/NAME...]` argument forms.
pub fn parse_type_args(args: &[String]) -> Result<Vec<TypeArg>, Error> {
    let Some(first) = args.first() else {
        return Err(Error::Usage(
            "you must specify the type of resource: pod, deployment, service, node, ... (or TYPE/NAME)".into(),
        ));
    };
    if first.contains('/') {
        let mut out: Vec<TypeArg> = Vec::new();
        for arg in args {
            let Some((ty, name)) = arg
                .split_once('/')
                .filter(|(t, n)| !t.is_empty() && !n.is_empty())
            else {
                return Err(Error::Usage(format!(
                    "arguments in resource/name form must have a single resource and name, got \"{arg}\""
                )));
            };
            match out.last_mut() {
                Some(last) if last.ty == ty => last.names.push(name.to_string()),
                _ => out.push(TypeArg {
                    ty: ty.to_string(),
                    names: vec![name.to_string()],
                }),
            }
        }
        return Ok(out);
    }
    let names = &args[1..];
    if names.iter().any(|n| n.contains('/')) {
        return Err(Error::Usage(
            "there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (e.g. 'wasmkube get resource/<resource_name>' instead of 'wasmkube get resource resource/<resource_name>'".into(),
        ));
    }
    Ok(first
        .split(',')
        .filter(|t| !t.is_empty())
        .map(|ty| TypeArg {
            ty: ty.to_string(),
            names: names.to_vec(),
        })
        .collect())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A discovery index like the API server's: core v1, apps v1, events.k8s.io v1.
    pub(crate) fn sample_index() -> ResourceIndex {
        let core: APIResourceList = serde_json::from_value(serde_json::json!({
            "groupVersion": "v1",
            "resources": [
                {"name": "pods", "singularName": "pod", "namespaced": true, "kind": "Pod",
                 "verbs": ["get", "list"], "shortNames": ["po"], "categories": ["all"]},
                {"name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"]},
                {"name": "services", "singularName": "service", "namespaced": true, "kind": "Service",
                 "verbs": ["get", "list"], "shortNames": ["svc"], "categories": ["all"]},
                {"name": "events", "singularName": "event", "namespaced": true, "kind": "Event",
                 "verbs": ["get", "list"], "shortNames": ["ev"]},
                {"name": "nodes", "singularName": "", "namespaced": false, "kind": "Node",
                 "verbs": ["get", "list"], "shortNames": ["no"]},
            ]
        }))
        .expect("core list");
        let apps: APIResourceList = serde_json::from_value(serde_json::json!({
            "groupVersion": "apps/v1",
            "resources": [
                {"name": "deployments", "singularName": "deployment", "namespaced": true, "kind": "Deployment",
                 "verbs": ["get", "list"], "shortNames": ["deploy"], "categories": ["all"]},
                {"name": "deployments/scale", "singularName": "", "namespaced": true, "kind": "Scale",
                 "group": "autoscaling", "version": "v1", "verbs": ["get", "patch"]},
            ]
        }))
        .expect("apps list");
        let events: APIResourceList = serde_json::from_value(serde_json::json!({
            "groupVersion": "events.k8s.io/v1",
            "resources": [
                {"name": "events", "singularName": "event", "namespaced": true, "kind": "Event",
                 "verbs": ["get", "list"], "shortNames": ["ev"]},
            ]
        }))
        .expect("events list");
        ResourceIndex::from_lists(&[core, apps, events])
    }

    fn resolved(ty: &str) -> (String, String) {
        let index = sample_index();
        let t = index.resolve(ty).expect("resolves");
        (t.api.group.clone(), t.api.plural.clone())
    }

    #[test]
    fn resolves_plural_singular_short_name_and_kind() {
        for ty in [
            "deployments",
            "deployment",
            "deploy",
            "Deployment",
            "DEPLOY",
            "deployments.apps",
            "deploy.v1.apps",
        ] {
            assert_eq!(resolved(ty), ("apps".into(), "deployments".into()), "{ty}");
        }
        assert_eq!(resolved("po"), (String::new(), "pods".into()));
        assert_eq!(resolved("svc"), (String::new(), "services".into()));
        // empty singularName falls back to the kind
        assert_eq!(resolved("node"), (String::new(), "nodes".into()));
        assert_eq!(resolved("no"), (String::new(), "nodes".into()));
    }

    #[test]
    fn core_group_wins_unless_a_group_is_named() {
        assert_eq!(resolved("events"), (String::new(), "events".into()));
        assert_eq!(resolved("ev"), (String::new(), "events".into()));
        assert_eq!(
            resolved("events.events.k8s.io"),
            ("events.k8s.io".into(), "events".into())
        );
    }

    #[test]
    fn unknown_types_and_subresources_are_rejected() {
        let index = sample_index();
        assert!(matches!(
            index.resolve("pods/log"),
            Err(Error::UnknownResourceType(_))
        ));
        assert!(matches!(
            index.resolve("foo"),
            Err(Error::UnknownResourceType(_))
        ));
        assert!(matches!(
            index.resolve("deployments.core"),
            Err(Error::UnknownResourceType(_))
        ));
    }

    #[test]
    fn category_all_expands() {
        let index = sample_index();
        let all: Vec<String> = index
            .resolve_or_category("all")
            .expect("category")
            .iter()
            .map(|t| t.kind_group())
            .collect();
        assert_eq!(all, ["pod", "service", "deployment.apps"]);
    }

    #[test]
    fn names_and_paths_follow_kubectl() {
        let index = sample_index();
        let d = index.resolve("deploy").expect("deploy");
        assert_eq!(d.kind_group(), "deployment.apps");
        assert_eq!(d.plural_group(), "deployments.apps");
        assert_eq!(
            d.url_path(Some("default")),
            "/apis/apps/v1/namespaces/default/deployments"
        );
        let n = index.resolve("nodes").expect("nodes");
        assert_eq!(n.url_path(Some("default")), "/api/v1/nodes");
        assert_eq!(
            index
                .resolve_kind("apps/v1", "Deployment")
                .map(|t| t.singular.as_str()),
            Some("deployment")
        );
        assert!(index.resolve_kind("apps/v1beta1", "Deployment").is_none());
    }

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_type_then_names() {
        assert_eq!(
            parse_type_args(&args(&["deploy", "web", "db"])).expect("ok"),
            [TypeArg {
                ty: "deploy".into(),
                names: args(&["web", "db"])
            }]
        );
        assert_eq!(
            parse_type_args(&args(&["pods,svc"])).expect("ok"),
            [
                TypeArg {
                    ty: "pods".into(),
                    names: vec![]
                },
                TypeArg {
                    ty: "svc".into(),
                    names: vec![]
                }
            ]
        );
    }

    #[test]
    fn parses_type_slash_name() {
        assert_eq!(
            parse_type_args(&args(&["pod/a", "pod/b", "svc/c"])).expect("ok"),
            [
                TypeArg {
                    ty: "pod".into(),
                    names: args(&["a", "b"])
                },
                TypeArg {
                    ty: "svc".into(),
                    names: args(&["c"])
                }
            ]
        );
    }

    #[test]
    fn rejects_mixed_and_empty_forms() {
        assert!(parse_type_args(&[]).is_err());
        assert!(parse_type_args(&args(&["pod", "pod/a"])).is_err());
        assert!(parse_type_args(&args(&["pod/a", "b"])).is_err());
        assert!(parse_type_args(&args(&["pod/"])).is_err());
    }
}
