//! Parsing a request: which resource the path names ([`Target`]) and its query parameters.

use percent_encoding::percent_decode_str;

use super::error::ApiError;
use crate::registry::{Registry, ResourceType};

/// A request's query parameters, in order (some, like exec's `command`, repeat).
#[derive(Debug, Default, Clone)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Parses a raw query string (`a=b&c=d`), `+` as space.
    pub fn parse(raw: Option<&str>) -> Self {
        let decode = |s: &str| {
            percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        Self(
            raw.unwrap_or_default()
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (decode(k), decode(v)),
                    None => (decode(p), String::new()),
                })
                .collect(),
        )
    }
    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    /// Every value of `key`.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }
    /// Whether a boolean parameter is set (`true` or `1`).
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }
    /// An integer parameter; a malformed one is a 400.
    pub fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        self.get(key)
            .filter(|v| !v.is_empty())
            .map(|v| {
                v.parse()
                    .map_err(|_| ApiError::BadRequest(format!("invalid value for {key}: {v:?}")))
            })
            .transpose()
    }
}

/// What a resource path names.
pub struct Target<'r> {
    /// The kind.
    pub rt: &'r ResourceType,
    /// The namespace from the path, for namespaced kinds (`None`: all namespaces).
    pub namespace: Option<String>,
    /// The object name, for item paths.
    pub name: Option<String>,
    /// The subresource (`status`, `scale`...).
    pub subresource: Option<String>,
}

/// Resolves `/api/v1/...` or `/apis/{g}/{v}/...` segments after the group-version.
pub fn resolve<'r>(
    registry: &'r Registry,
    group: &str,
    version: &str,
    rest: &[&str],
) -> Result<Target<'r>, ApiError> {
    let lookup = |plural: &str| {
        registry
            .lookup(group, version, plural)
            .ok_or(ApiError::NoSuchResource)
    };
    let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
    match rest {
        ["namespaces", ns, plural, tail @ ..]
            if registry
                .lookup(group, version, plural)
                .is_some_and(|t| t.namespaced) =>
        {
            let rt = lookup(plural)?;
            let (name, subresource) = match tail {
                [] => (None, None),
                [name] => (Some(decode(name)), None),
                [name, sub] => (Some(decode(name)), Some(sub.to_string())),
                _ => return Err(ApiError::NoSuchResource),
            };
            Ok(Target {
                rt,
                namespace: Some(decode(ns)),
                name,
                subresource,
            })
        }
        [plural, tail @ ..] => {
            let rt = lookup(plural)?;
            let (name, subresource) = match tail {
                [] => (None, None),
                [name] if !rt.namespaced => (Some(decode(name)), None),
                [name, sub] if !rt.namespaced => (Some(decode(name)), Some(sub.to_string())),
                _ => return Err(ApiError::NoSuchResource),
            };
            Ok(Target {
                rt,
                namespace: None,
                name,
                subresource,
            })
        }
        [] => Err(ApiError::NoSuchResource),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_namespaced_item_and_subresource() {
        let r = Registry::new();
        let t = resolve(
            &r,
            "apps",
            "v1",
            &["namespaces", "default", "deployments", "web", "scale"],
        )
        .unwrap();
        assert_eq!(t.rt.kind, "Deployment");
        assert_eq!(t.namespace.as_deref(), Some("default"));
        assert_eq!(t.name.as_deref(), Some("web"));
        assert_eq!(t.subresource.as_deref(), Some("scale"));
    }

    #[test]
    fn namespaces_item_is_not_a_namespaced_collection() {
        let r = Registry::new();
        let t = resolve(&r, "", "v1", &["namespaces", "kube-system"]).unwrap();
        assert_eq!(t.rt.kind, "Namespace");
        assert_eq!(t.name.as_deref(), Some("kube-system"));
        let t = resolve(&r, "", "v1", &["namespaces", "x", "status"]).unwrap();
        assert_eq!(t.subresource.as_deref(), Some("status"));
        let t = resolve(&r, "", "v1", &["pods"]).unwrap();
        assert!(t.namespace.is_none() && t.name.is_none());
    }

    #[test]
    fn unknown_resource_is_not_found() {
        assert!(resolve(&Registry::new(), "apps", "v1", &["gadgets"]).is_err());
    }

    #[test]
    fn query_decodes_selectors() {
        let q = Query::parse(Some(
            "labelSelector=app%3Dweb&command=ls&command=-l&watch=1",
        ));
        assert_eq!(q.get("labelSelector"), Some("app=web"));
        assert_eq!(q.all("command"), vec!["ls", "-l"]);
        assert!(q.flag("watch"));
    }
}
