//! OCI registries, through `oci-client`: the cluster's own image store (the API server's
//! `/v2/`) and any other registry an image names.
//!
//! Loopback registries (`localhost`, `127.x`, `[::1]`), the cluster's store and the hosts
//! given as insecure are spoken to over plain HTTP, as Docker treats them; all others over
//! HTTPS. One `oci_client::Client` per set of credentials: a client remembers the first
//! credentials it saw for a registry, and a pod without a pull secret must never ride on
//! another pod's.

use std::collections::HashMap;
use std::sync::Mutex;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::{OciDescriptor, OciImageManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use super::oci::Artifact;

/// Why talking to a registry failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry does not have that repository, tag or digest.
    #[error("{0}")]
    NotFound(String),
    /// The registry wants (other) credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Anything else: unreachable, a protocol error, a digest that did not verify.
    #[error("{0}")]
    Failed(String),
}

/// A manifest resolved in a registry: the digest it has there and its wasm layer.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The manifest's digest (what a tag pointed to when asked).
    pub manifest_digest: String,
    /// The manifest itself.
    pub manifest: OciImageManifest,
}

/// The registries a node (or the CLI) talks to.
pub struct Registries {
    cluster: Option<String>,
    insecure: Vec<String>,
    clients: Mutex<HashMap<(bool, String), Client>>,
}

impl std::fmt::Debug for Registries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registries")
            .field("cluster", &self.cluster)
            .field("insecure", &self.insecure)
            .finish()
    }
}

/// Whether `host` (`name[:port]`) is a loopback address, spoken to over plain HTTP.
pub fn is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Registries {
    /// Registries with the cluster's image store at `cluster` (`host:port` of the API
    /// server, if it serves one) and `insecure` hosts spoken to over plain HTTP.
    pub fn new(cluster: Option<String>, insecure: Vec<String>) -> Registries {
        Registries {
            cluster,
            insecure,
            clients: Mutex::default(),
        }
    }

    /// `host:port` of the cluster's image store.
    pub fn cluster(&self) -> Option<&str> {
        self.cluster.as_deref()
    }

    fn plain_http(&self, host: &str) -> bool {
        is_loopback(host)
            || self.cluster.as_deref() == Some(host)
            || self.insecure.iter().any(|h| h == host)
    }

    fn client(&self, host: &str, auth: &RegistryAuth) -> Client {
        let http = self.plain_http(host);
        let key = match auth {
            RegistryAuth::Anonymous => String::new(),
            RegistryAuth::Basic(user, password) => format!("basic\0{user}\0{password}"),
            RegistryAuth::Bearer(token) => format!("bearer\0{token}"),
        };
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients
            .entry((http, key))
            .or_insert_with(|| {
                Client::new(ClientConfig {
                    protocol: if http {
                        ClientProtocol::Http
                    } else {
                        ClientProtocol::Https
                    },
                    platform_resolver: Some(Box::new(wasm_platform)),
                    connect_timeout: Some(std::time::Duration::from_secs(10)),
                    read_timeout: Some(std::time::Duration::from_secs(60)),
                    ..ClientConfig::default()
                })
            })
            .clone()
    }

    /// Resolves `reference` to its manifest (following an index to its wasm entry).
    pub async fn resolve(
        &self,
        reference: &Reference,
        auth: &RegistryAuth,
    ) -> Result<Resolved, RegistryError> {
        let client = self.client(reference.registry(), auth);
        let (manifest, manifest_digest) = client
            .pull_image_manifest(reference, auth)
            .await
            .map_err(|e| classify(reference, e))?;
        Ok(Resolved {
            manifest_digest,
            manifest,
        })
    }

    /// Downloads one layer; oci-client checks its digest while it streams.
    pub async fn fetch(
        &self,
        reference: &Reference,
        layer: &OciDescriptor,
        auth: &RegistryAuth,
    ) -> Result<Vec<u8>, RegistryError> {
        let client = self.client(reference.registry(), auth);
        client
            .store_auth_if_needed(reference.registry(), auth)
            .await;
        let mut out = Vec::with_capacity(usize::try_from(layer.size).unwrap_or(0));
        client
            .pull_blob(reference, layer, &mut out)
            .await
            .map_err(|e| classify(reference, e))?;
        Ok(out)
    }

    /// Pushes an image; returns the manifest's URL.
    pub async fn push(
        &self,
        reference: &Reference,
        artifact: Artifact,
        auth: &RegistryAuth,
    ) -> Result<String, RegistryError> {
        let client = self.client(reference.registry(), auth);
        let response = client
            .push(
                reference,
                std::slice::from_ref(&artifact.layer),
                artifact.config,
                auth,
                Some(artifact.manifest),
            )
            .await
            .map_err(|e| classify(reference, e))?;
        Ok(response.manifest_url)
    }
}

/// Picks the wasm entry of an image index (`architecture: wasm` or an `os` of `wasi*`),
/// else the first entry.
fn wasm_platform(entries: &[oci_client::manifest::ImageIndexEntry]) -> Option<String> {
    entries
        .iter()
        .find(|e| {
            e.platform.as_ref().is_some_and(|p| {
                p.architecture.to_string() == "wasm" || p.os.to_string().starts_with("wasi")
            })
        })
        .or_else(|| entries.first())
        .map(|e| e.digest.clone())
}

/// Sorts an oci-client error into what the kubelet tells apart: not found, not allowed,
/// anything else; with a message that names the registry.
fn classify(reference: &Reference, error: OciDistributionError) -> RegistryError {
    let registry = reference.registry();
    let what = reference.whole();
    match error {
        OciDistributionError::ImageManifestNotFoundError(_) => {
            RegistryError::NotFound(format!("{what}: not found in {registry}"))
        }
        OciDistributionError::RegistryError { envelope, .. } => {
            let not_found = envelope.errors.iter().any(|e| {
                matches!(
                    e.code,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::NotFound
                        | OciErrorCode::BlobUnknown
                )
            });
            let denied = envelope
                .errors
                .iter()
                .any(|e| matches!(e.code, OciErrorCode::Unauthorized | OciErrorCode::Denied));
            let messages: Vec<String> = envelope
                .errors
                .iter()
                .map(|e| {
                    let code = serde_json::to_value(&e.code)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default();
                    format!("{code}: {}", e.message)
                })
                .collect();
            let message = format!("{what}: {registry} answered {}", messages.join("; "));
            if not_found {
                RegistryError::NotFound(message)
            } else if denied {
                RegistryError::Unauthorized(format!("{message}{}", credentials_hint(registry)))
            } else {
                RegistryError::Failed(message)
            }
        }
        OciDistributionError::ServerError { code: 404, .. } => {
            RegistryError::NotFound(format!("{what}: not found in {registry}"))
        }
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::ServerError {
            code: 401 | 403, ..
        }
        | OciDistributionError::AuthenticationFailure(_) => RegistryError::Unauthorized(format!(
            "{what}: {registry} refused the request{}",
            credentials_hint(registry)
        )),
        OciDistributionError::RequestError(e) => RegistryError::Failed(format!(
            "{what}: cannot reach {registry}: {}",
            error_chain(&e)
        )),
        other => RegistryError::Failed(format!("{what}: {other}")),
    }
}

fn credentials_hint(registry: &str) -> String {
    format!(
        " (credentials missing or wrong: a pod gives them as an imagePullSecret of type \
         kubernetes.io/dockerconfigjson for {registry})"
    )
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_plain_http() {
        for host in [
            "localhost:5000",
            "127.0.0.1:5000",
            "127.3.2.1",
            "[::1]:5000",
            "localhost",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "registry.example.com",
            "10.0.0.1:5000",
            "ghcr.io",
            "localhostx:1",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
        let r = Registries::new(Some("10.1.1.1:6443".into()), vec!["reg.lan:5000".into()]);
        assert!(r.plain_http("10.1.1.1:6443") && r.plain_http("reg.lan:5000"));
        assert!(!r.plain_http("ghcr.io"));
    }
}
