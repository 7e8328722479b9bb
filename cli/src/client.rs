//! Connecting to the cluster (kubeconfig lookup) and the raw JSON requests every verb makes.
//!
//! Objects are handled as `serde_json::Value` rather than typed structs: the verbs work on any
//! kind the server serves, and what a manifest says must reach the server byte for byte.

use std::path::{Path, PathBuf};

use kube::Client;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::Value;

use crate::error::Error;
use crate::resource::ResourceType;

/// The field manager kubectl's client-side apply uses; kept so both tools share ownership.
pub const APPLY_FIELD_MANAGER: &str = "kubectl-client-side-apply";

/// The `Accept` header that asks for a server-side `meta.k8s.io/v1` Table, with plain JSON as
/// the fallback kubectl also offers.
pub const TABLE_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";

/// A connected cluster: the client and the namespace the kubeconfig context selects.
#[derive(Clone)]
pub struct Cluster {
    /// The kube-rs client.
    pub client: Client,
    /// The context's namespace, `default` when it names none.
    pub default_namespace: String,
    /// The API server's URL.
    pub url: http::Uri,
}

impl Cluster {
    /// Loads the kubeconfig (see [`kubeconfig_path`]) and builds a client for its current context.
    pub async fn connect(explicit: Option<PathBuf>) -> Result<Self, Error> {
        // kube builds rustls configs from the process-wide provider; installing ring is a no-op
        // when the binary already did it.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let kubeconfig = load_kubeconfig(explicit)?;
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(Error::KubeconfigInvalid)?;
        let default_namespace = config.default_namespace.clone();
        let url = config.cluster_url.clone();
        let client = Client::try_from(config)?;
        Ok(Self {
            client,
            default_namespace,
            url,
        })
    }

    /// The namespace a verb works in: `-n` if given, else the context's.
    pub fn namespace(&self, flag: Option<&str>) -> String {
        flag.map_or_else(|| self.default_namespace.clone(), str::to_string)
    }

    /// Raw JSON calls on one resource type in one namespace.
    pub fn api<'a>(&'a self, ty: &'a ResourceType, namespace: Option<&str>) -> ResourceApi<'a> {
        ResourceApi {
            client: &self.client,
            ty,
            request: kube::core::Request::new(ty.url_path(namespace)),
        }
    }
}

fn load_kubeconfig(explicit: Option<PathBuf>) -> Result<Kubeconfig, Error> {
    if let Some(path) = explicit {
        return Kubeconfig::read_from(&path).map_err(Error::KubeconfigInvalid);
    }
    if let Some(merged) = Kubeconfig::from_env().map_err(Error::KubeconfigInvalid)? {
        return Ok(merged);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let xdg = std::env::var_os("XDG_DATA_HOME").map(PathBuf::from);
    let candidates = kubeconfig_path(home.as_deref(), xdg.as_deref());
    match candidates.iter().find(|p| p.is_file()) {
        Some(path) => Kubeconfig::read_from(path).map_err(Error::KubeconfigInvalid),
        None => {
            let tried: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
            Err(Error::KubeconfigMissing(format!(
                "no kubeconfig found (tried $KUBECONFIG, {}); start a cluster with `wasmkube up` or pass --kubeconfig",
                tried.join(", ")
            )))
        }
    }
}

/// The kubeconfig files tried when neither `--kubeconfig` nor `$KUBECONFIG` is set, in order:
/// `~/.kube/config`, then the kubeconfig `wasmkube up` writes into its data directory
/// (`${XDG_DATA_HOME:-~/.local/share}/wasmkube/kubeconfig`).
pub fn kubeconfig_path(home: Option<&Path>, xdg_data_home: Option<&Path>) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Some(home) = home {
        paths.push(home.join(".kube").join("config"));
    }
    let data = match (xdg_data_home.filter(|p| p.is_absolute()), home) {
        (Some(xdg), _) => Some(xdg.to_path_buf()),
        (None, Some(home)) => Some(home.join(".local").join("share")),
        (None, None) => None,
    };
    if let Some(data) = data {
        paths.push(data.join("wasmkube").join("kubeconfig"));
    }
    paths
}

/// JSON requests against one resource type, scoped to a namespace when the type is namespaced.
pub struct ResourceApi<'a> {
    client: &'a Client,
    ty: &'a ResourceType,
    request: kube::core::Request,
}

impl ResourceApi<'_> {
    /// GET one object.
    pub async fn get(&self, name: &str) -> Result<Value, Error> {
        let req = self
            .request
            .get(name, &Default::default())
            .map_err(build_error)?;
        Ok(self.client.request::<Value>(req).await?)
    }

    /// GET one object as a server-side Table (or whatever the server answers instead).
    pub async fn get_table(&self, name: &str) -> Result<Value, Error> {
        let mut req = self
            .request
            .get(name, &Default::default())
            .map_err(build_error)?;
        set_accept(&mut req, TABLE_ACCEPT);
        Ok(self.client.request::<Value>(req).await?)
    }

    /// LIST every page (following `continue`) and return the pages as the server sent them.
    pub async fn list_pages(
        &self,
        lp: &ListParams,
        accept: Option<&'static str>,
    ) -> Result<Vec<Value>, Error> {
        let mut pages = Vec::new();
        let mut lp = lp.clone().limit(500);
        loop {
            let mut req = self.request.list(&lp).map_err(build_error)?;
            if let Some(accept) = accept {
                set_accept(&mut req, accept);
            }
            let page: Value = self.client.request(req).await?;
            let next = page["metadata"]["continue"]
                .as_str()
                .filter(|c| !c.is_empty())
                .map(str::to_string);
            pages.push(page);
            match next {
                Some(token) => lp = lp.continue_token(&token),
                None => return Ok(pages),
            }
        }
    }

    /// LIST all objects, with `apiVersion` and `kind` filled in on each item (lists omit them).
    pub async fn list(&self, lp: &ListParams) -> Result<Vec<Value>, Error> {
        let mut items = Vec::new();
        for page in self.list_pages(lp, None).await? {
            if let Value::Object(mut page) = page
                && let Some(Value::Array(page_items)) = page.remove("items")
            {
                items.extend(page_items.into_iter().map(|item| self.with_type_meta(item)));
            }
        }
        Ok(items)
    }

    /// Sets `apiVersion` and `kind` on an object from this type when missing.
    pub fn with_type_meta(&self, mut obj: Value) -> Value {
        if let Value::Object(map) = &mut obj {
            map.entry("apiVersion")
                .or_insert_with(|| Value::String(self.ty.api.api_version.clone()));
            map.entry("kind")
                .or_insert_with(|| Value::String(self.ty.api.kind.clone()));
        }
        obj
    }

    /// POST a new object.
    pub async fn create(&self, obj: &Value, field_manager: &str) -> Result<Value, Error> {
        let pp = PostParams {
            field_manager: Some(field_manager.to_string()),
            ..Default::default()
        };
        let body = serde_json::to_vec(obj).map_err(|e| Error::Render(e.to_string()))?;
        let req = self.request.create(&pp, body).map_err(build_error)?;
        Ok(self.client.request::<Value>(req).await?)
    }

    /// PATCH with `application/merge-patch+json`.
    pub async fn merge_patch(
        &self,
        name: &str,
        patch: &Value,
        field_manager: &str,
    ) -> Result<Value, Error> {
        let pp = PatchParams {
            field_manager: Some(field_manager.to_string()),
            ..Default::default()
        };
        let req = self
            .request
            .patch(name, &pp, &Patch::Merge(patch))
            .map_err(build_error)?;
        Ok(self.client.request::<Value>(req).await?)
    }

    /// PATCH the `scale` subresource's `spec.replicas` (merge patch, as kubectl scale does).
    pub async fn scale(&self, name: &str, replicas: u32) -> Result<Value, Error> {
        let patch = serde_json::json!({ "spec": { "replicas": replicas } });
        let req = self
            .request
            .patch_subresource(
                "scale",
                name,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .map_err(build_error)?;
        Ok(self.client.request::<Value>(req).await?)
    }

    /// GET the `scale` subresource.
    pub async fn get_scale(&self, name: &str) -> Result<Value, Error> {
        let req = self
            .request
            .get_subresource("scale", name)
            .map_err(build_error)?;
        Ok(self.client.request::<Value>(req).await?)
    }

    /// DELETE one object; the answer is the object (graceful deletion) or a `Status`.
    pub async fn delete(&self, name: &str, dp: &DeleteParams) -> Result<Value, Error> {
        let req = self.request.delete(name, dp).map_err(build_error)?;
        Ok(self.client.request::<Value>(req).await?)
    }
}

fn set_accept(req: &mut http::Request<Vec<u8>>, accept: &'static str) {
    req.headers_mut()
        .insert(http::header::ACCEPT, http::HeaderValue::from_static(accept));
}

fn build_error(err: kube::core::request::Error) -> Error {
    Error::Usage(err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfig_lookup_order() {
        let home = Path::new("/home/u");
        assert_eq!(
            kubeconfig_path(Some(home), None),
            [
                PathBuf::from("/home/u/.kube/config"),
                PathBuf::from("/home/u/.local/share/wasmkube/kubeconfig")
            ]
        );
        assert_eq!(
            kubeconfig_path(Some(home), Some(Path::new("/data"))),
            [
                PathBuf::from("/home/u/.kube/config"),
                PathBuf::from("/data/wasmkube/kubeconfig")
            ]
        );
        // a relative XDG_DATA_HOME is invalid per the spec and ignored
        assert_eq!(
            kubeconfig_path(Some(home), Some(Path::new("rel")))[1],
            home.join(".local/share/wasmkube/kubeconfig")
        );
        assert!(kubeconfig_path(None, None).is_empty());
    }
}
