//! `apply -f`: kubectl's client-side apply.
//!
//! For each object: resolve its kind through discovery, then create it with the
//! `kubectl.kubernetes.io/last-applied-configuration` annotation if absent, or PATCH the
//! three-way merge patch (see [`merge_patch`]) between the last applied configuration, the new
//! manifest and the live object if present. Output is kubectl's
//! `deployment.apps/web created|configured|unchanged`.

mod merge_patch;

use serde_json::{Map, Value};

use crate::client::{APPLY_FIELD_MANAGER, Cluster};
use crate::error::{Error, report};
use crate::manifest::{self, Manifest};
use crate::resource::ResourceIndex;

/// The annotation holding the configuration of the previous `apply`.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Arguments of `apply`.
#[derive(clap::Args, Debug)]
pub struct ApplyArgs {
    /// Files or directories holding the objects to apply; `-` reads stdin.
    #[arg(
        short = 'f',
        long = "filename",
        required = true,
        value_name = "FILE|DIR|-"
    )]
    pub filenames: Vec<String>,
    /// Read directories recursively.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Namespace for objects that do not name one (default: the kubeconfig context's).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
}

/// What `apply` did to one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The object did not exist and was created.
    Created,
    /// The object existed and was patched.
    Configured,
    /// The object already matched the manifest.
    Unchanged,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Configured => "configured",
            Outcome::Unchanged => "unchanged",
        }
    }
}

/// Runs `apply`; per-object failures are printed and the rest still applied.
pub async fn run(args: ApplyArgs, cluster: &Cluster) -> Result<(), Error> {
    let manifests = manifest::load(&args.filenames, args.recursive)?;
    if manifests.is_empty() {
        return Err(Error::Usage("no objects passed to apply".into()));
    }
    let index = ResourceIndex::discover(&cluster.client).await?;
    let mut failed = false;
    for m in &manifests {
        match apply_one(m, &index, cluster, args.namespace.as_deref()).await {
            Ok((prefix, name, outcome)) => println!("{prefix}/{name} {}", outcome.as_str()),
            Err(err) => {
                eprintln!("{}", report(&err));
                failed = true;
            }
        }
    }
    if failed {
        Err(Error::AlreadyReported)
    } else {
        Ok(())
    }
}

async fn apply_one(
    m: &Manifest,
    index: &ResourceIndex,
    cluster: &Cluster,
    namespace_flag: Option<&str>,
) -> Result<(String, String, Outcome), Error> {
    let obj = &m.object;
    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
    let kind = obj["kind"].as_str().unwrap_or_default();
    let mut missing = Vec::new();
    if api_version.is_empty() {
        missing.push("apiVersion not set");
    }
    if kind.is_empty() {
        missing.push("kind not set");
    }
    if !missing.is_empty() {
        return Err(Error::InvalidManifest {
            source_name: m.source.clone(),
            message: format!("[{}]", missing.join(", ")),
        });
    }
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let manifest_ns = obj["metadata"]["namespace"]
        .as_str()
        .filter(|ns| !ns.is_empty());
    let ty = index
        .resolve_kind(api_version, kind)
        .ok_or_else(|| Error::NoKindMatch {
            name: name.clone(),
            namespace: manifest_ns.unwrap_or_default().to_string(),
            source_name: m.source.clone(),
            kind: kind.to_string(),
            api_version: api_version.to_string(),
        })?;
    if name.is_empty() {
        return Err(Error::Usage(format!(
            "error when retrieving current configuration of {} from server for: \"{}\": resource name may not be empty",
            ty.kind_group(),
            m.source
        )));
    }
    let namespace = if ty.namespaced {
        Some(object_namespace(
            manifest_ns,
            namespace_flag,
            &cluster.default_namespace,
        )?)
    } else {
        None
    };
    let modified = modified_configuration(obj, namespace.as_deref())?;
    let api = cluster.api(ty, namespace.as_deref());
    let outcome = match api.get(&name).await {
        Err(err) if err.is_not_found() => {
            api.create(&modified, APPLY_FIELD_MANAGER)
                .await
                .map_err(|e| e.with_source("creating", &m.source))?;
            Outcome::Created
        }
        Err(err) => return Err(err.with_source("retrieving current configuration of", &m.source)),
        Ok(current) => {
            let original = last_applied(&current);
            if original.is_none() {
                eprintln!(
                    "Warning: resource {}/{name} is missing the {LAST_APPLIED} annotation which is required by apply. \
                     apply should only be used on resources created declaratively by either create --save-config or apply. \
                     The missing annotation will be patched automatically.",
                    ty.api.plural
                );
            }
            let patch = merge_patch::three_way(original.as_ref(), &modified, &current);
            if patch.as_object().is_some_and(Map::is_empty) {
                Outcome::Unchanged
            } else {
                api.merge_patch(&name, &patch, APPLY_FIELD_MANAGER)
                    .await
                    .map_err(|e| e.with_source("patching", &m.source))?;
                Outcome::Configured
            }
        }
    };
    Ok((ty.kind_group(), name, outcome))
}

/// The namespace an object goes to; like kubectl, a manifest's own namespace must agree with
/// an explicit `-n`.
fn object_namespace(
    manifest: Option<&str>,
    flag: Option<&str>,
    default: &str,
) -> Result<String, Error> {
    match (manifest, flag) {
        (Some(m), Some(f)) if m != f => Err(Error::Usage(format!(
            "the namespace from the provided object \"{m}\" does not match the namespace \"{f}\". You must pass '--namespace={m}' to perform this operation."
        ))),
        (Some(m), _) => Ok(m.to_string()),
        (None, Some(f)) => Ok(f.to_string()),
        (None, None) => Ok(default.to_string()),
    }
}

/// The object as it will be sent: namespace filled in, and the last-applied annotation set to
/// the object's own JSON (without that annotation, with a trailing newline, keys sorted), as
/// kubectl's `GetModifiedConfiguration` does.
pub fn modified_configuration(obj: &Value, namespace: Option<&str>) -> Result<Value, Error> {
    let mut obj = obj.clone();
    let Some(root) = obj.as_object_mut() else {
        return Err(Error::Usage("a manifest document must be an object".into()));
    };
    let metadata = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(metadata) = metadata.as_object_mut() else {
        return Err(Error::Usage("metadata must be an object".into()));
    };
    if let Some(ns) = namespace {
        metadata.insert("namespace".into(), Value::String(ns.to_string()));
    }
    let annotations = metadata
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if annotations.is_null() {
        *annotations = Value::Object(Map::new());
    }
    let Some(annotations) = annotations.as_object_mut() else {
        return Err(Error::Usage("metadata.annotations must be a map".into()));
    };
    annotations.remove(LAST_APPLIED);
    let mut applied = serde_json::to_string(&obj).map_err(|e| Error::Render(e.to_string()))?;
    applied.push('\n');
    if let Some(a) = obj["metadata"]["annotations"].as_object_mut() {
        a.insert(LAST_APPLIED.into(), Value::String(applied));
    }
    Ok(obj)
}

/// The previous apply's configuration, if the live object carries a parseable one.
fn last_applied(current: &Value) -> Option<Value> {
    let text = current["metadata"]["annotations"][LAST_APPLIED].as_str()?;
    serde_json::from_str(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn annotation_holds_the_manifest_with_namespace_and_empty_annotations() {
        let manifest = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}});
        let modified = modified_configuration(&manifest, Some("default")).expect("modified");
        assert_eq!(
            modified["metadata"]["annotations"][LAST_APPLIED],
            "{\"apiVersion\":\"v1\",\"data\":{\"k\":\"v\"},\"kind\":\"ConfigMap\",\"metadata\":{\"annotations\":{},\"name\":\"c\",\"namespace\":\"default\"}}\n"
        );
        assert_eq!(modified["metadata"]["namespace"], "default");
    }

    #[test]
    fn reapplying_a_modified_object_keeps_the_annotation_stable() {
        let manifest = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "annotations": {"a": "b"}}});
        let once = modified_configuration(&manifest, None).expect("once");
        let twice = modified_configuration(&once, None).expect("twice");
        assert_eq!(once, twice);
        assert_eq!(last_applied(&once), Some(manifest));
    }

    #[test]
    fn manifest_namespace_must_match_flag() {
        assert_eq!(
            object_namespace(Some("a"), None, "default").expect("ok"),
            "a"
        );
        assert_eq!(
            object_namespace(None, Some("b"), "default").expect("ok"),
            "b"
        );
        assert_eq!(
            object_namespace(None, None, "default").expect("ok"),
            "default"
        );
        assert!(object_namespace(Some("a"), Some("b"), "default").is_err());
    }
}
