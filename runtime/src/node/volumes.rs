//! A pod's volumes as host directories (ARCHITECTURE D8): emptyDir, configMap, secret,
//! downwardAPI, projected (configMap/secret/downwardAPI sources; tokens come with auth),
//! hostPath behind a node flag, and PersistentVolumeClaims (their volume's directory, see
//! `claims.rs`).
//!
//! [`materialise`] is called when the sandbox is prepared and again on every resync, so
//! configMap and secret volumes follow their objects (files are rewritten only when they
//! changed). The file lists themselves come from pure functions ([`key_files`],
//! [`downward_files`]) that the tests exercise directly.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{ConfigMap, DownwardAPIVolumeFile, KeyToPath, Pod, Secret};
use kube::Api;

use super::claims::{NodeVolumes, claim_dir};
use super::env::{self, PodFacts};
use super::sandbox::{self, File, PodDirs, VolumeDir};

/// The mode of volume files when the pod says nothing (0644).
const DEFAULT_MODE: i32 = 0o644;

/// Why a pod's volumes cannot be set up (a `FailedMount` event; retried).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A referenced ConfigMap or Secret does not exist.
    #[error("{kind} {name:?} not found")]
    NotFound {
        /// `configmap` or `secret`.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// An `items` entry names a key the object does not have.
    #[error("configmap or secret {name:?} has no key {key:?}")]
    MissingKey {
        /// The object.
        name: String,
        /// The key.
        key: String,
    },
    /// Reading a ConfigMap or Secret failed.
    #[error("reading {kind} {name:?}")]
    Api {
        /// `configmap` or `secret`.
        kind: &'static str,
        /// Its name.
        name: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// A downward API item refers to an unsupported field.
    #[error(transparent)]
    Field(#[from] env::Error),
    /// Writing the volume failed.
    #[error(transparent)]
    Sandbox(#[from] sandbox::Error),
    /// A claim cannot be mounted (yet).
    #[error(transparent)]
    Claim(#[from] super::claims::Error),
    /// A volume type this node cannot provide.
    #[error("volume {name:?}: {reason}")]
    Unsupported {
        /// The volume.
        name: String,
        /// Why.
        reason: String,
    },
}

/// The files of a configMap or secret volume: every key, or only `items` (each with its own
/// path and mode). A missing object or key is an error unless `optional`.
pub fn key_files(
    name: &str,
    data: Option<BTreeMap<String, Vec<u8>>>,
    items: Option<&[KeyToPath]>,
    default_mode: Option<i32>,
    optional: bool,
) -> Result<Vec<File>, Error> {
    let mode = |m: Option<i32>| (m.or(default_mode).unwrap_or(DEFAULT_MODE) & 0o7777) as u32;
    let Some(data) = data else {
        return if optional {
            Ok(Vec::new())
        } else {
            Err(Error::NotFound {
                kind: "configmap or secret",
                name: name.into(),
            })
        };
    };
    let Some(items) = items.filter(|i| !i.is_empty()) else {
        return Ok(data
            .into_iter()
            .map(|(key, data)| File {
                path: key,
                data,
                mode: mode(None),
            })
            .collect());
    };
    let mut out = Vec::new();
    for item in items {
        match data.get(&item.key) {
            Some(d) => out.push(File {
                path: item.path.clone(),
                data: d.clone(),
                mode: mode(item.mode),
            }),
            None if optional => {}
            None => {
                return Err(Error::MissingKey {
                    name: name.into(),
                    key: item.key.clone(),
                });
            }
        }
    }
    Ok(out)
}

/// The files of a downwardAPI volume (or projection).
pub fn downward_files(
    pod: &Pod,
    facts: &PodFacts,
    items: &[DownwardAPIVolumeFile],
    default_mode: Option<i32>,
) -> Result<Vec<File>, Error> {
    let mut out = Vec::new();
    for item in items {
        let value = if let Some(f) = &item.field_ref {
            env::field(pod, facts, &f.field_path)?
        } else if let Some(r) = &item.resource_field_ref {
            let containers = pod.spec.iter().flat_map(|s| s.containers.iter());
            let container = containers
                .into_iter()
                .find(|c| Some(&c.name) == r.container_name.as_ref())
                .cloned()
                .unwrap_or_default();
            env::resource_field(&container, facts, &r.resource)?
        } else {
            continue;
        };
        let mode = (item.mode.or(default_mode).unwrap_or(DEFAULT_MODE) & 0o7777) as u32;
        out.push(File {
            path: item.path.clone(),
            data: value.into_bytes(),
            mode,
        });
    }
    Ok(out)
}

fn config_map_data(cm: ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut data: BTreeMap<String, Vec<u8>> = cm
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.into_bytes()))
        .collect();
    data.extend(
        cm.binary_data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0)),
    );
    data
}

fn secret_data(secret: Secret) -> BTreeMap<String, Vec<u8>> {
    let mut data: BTreeMap<String, Vec<u8>> = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    data.extend(
        secret
            .string_data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.into_bytes())),
    );
    data
}

/// Reads ConfigMaps and Secrets of the pod's namespace.
pub struct Objects {
    client: kube::Client,
    namespace: String,
    config_maps: Api<ConfigMap>,
    secrets: Api<Secret>,
}

impl Objects {
    /// Readers for `namespace`.
    pub fn new(client: &kube::Client, namespace: &str) -> Objects {
        Objects {
            client: client.clone(),
            namespace: namespace.to_string(),
            config_maps: Api::namespaced(client.clone(), namespace),
            secrets: Api::namespaced(client.clone(), namespace),
        }
    }

    /// A ConfigMap, `None` if it does not exist.
    pub async fn config_map(&self, name: &str) -> Result<Option<ConfigMap>, Error> {
        self.config_maps
            .get_opt(name)
            .await
            .map_err(|source| Error::Api {
                kind: "configmap",
                name: name.into(),
                source,
            })
    }

    /// A Secret, `None` if it does not exist.
    pub async fn secret(&self, name: &str) -> Result<Option<Secret>, Error> {
        self.secrets
            .get_opt(name)
            .await
            .map_err(|source| Error::Api {
                kind: "secret",
                name: name.into(),
                source,
            })
    }
}

/// Creates or refreshes every volume of the pod and the service-account directory; returns
/// the volumes by name and the service-account directory (unless automounting is off).
pub async fn materialise(
    objects: &Objects,
    pod: &Pod,
    facts: &PodFacts,
    dirs: &PodDirs,
    node: &NodeVolumes,
) -> Result<(HashMap<String, VolumeDir>, Option<PathBuf>), Error> {
    let spec = pod.spec.clone().unwrap_or_default();
    let mut out = HashMap::new();
    for volume in spec.volumes.iter().flatten() {
        let dir = dirs.volume(&volume.name);
        let unsupported = |reason: &str| Error::Unsupported {
            name: volume.name.clone(),
            reason: reason.into(),
        };
        let files = if volume.empty_dir.is_some() {
            std::fs::create_dir_all(&dir).map_err(|source| sandbox::Error::Io {
                path: dir.clone(),
                source,
            })?;
            out.insert(
                volume.name.clone(),
                VolumeDir {
                    host: dir,
                    read_only: false,
                },
            );
            continue;
        } else if let Some(hp) = &volume.host_path {
            if !node.allow_host_path {
                return Err(unsupported("hostPath volumes are disabled on this node"));
            }
            let host = PathBuf::from(&hp.path);
            if matches!(hp.type_.as_deref(), Some("DirectoryOrCreate")) {
                std::fs::create_dir_all(&host).map_err(|source| sandbox::Error::Io {
                    path: host.clone(),
                    source,
                })?;
            }
            out.insert(
                volume.name.clone(),
                VolumeDir {
                    host,
                    read_only: false,
                },
            );
            continue;
        } else if let Some(cm) = &volume.config_map {
            let data = objects.config_map(&cm.name).await?.map(config_map_data);
            key_files(
                &cm.name,
                data,
                cm.items.as_deref(),
                cm.default_mode,
                cm.optional == Some(true),
            )?
        } else if let Some(s) = &volume.secret {
            let name = s.secret_name.clone().unwrap_or_default();
            let data = objects.secret(&name).await?.map(secret_data);
            key_files(
                &name,
                data,
                s.items.as_deref(),
                s.default_mode,
                s.optional == Some(true),
            )?
        } else if let Some(d) = &volume.downward_api {
            downward_files(
                pod,
                facts,
                d.items.as_deref().unwrap_or_default(),
                d.default_mode,
            )?
        } else if let Some(p) = &volume.projected {
            let mut files = Vec::new();
            for source in p.sources.iter().flatten() {
                if let Some(cm) = &source.config_map {
                    let data = objects.config_map(&cm.name).await?.map(config_map_data);
                    files.extend(key_files(
                        &cm.name,
                        data,
                        cm.items.as_deref(),
                        p.default_mode,
                        cm.optional == Some(true),
                    )?);
                } else if let Some(s) = &source.secret {
                    let data = objects.secret(&s.name).await?.map(secret_data);
                    files.extend(key_files(
                        &s.name,
                        data,
                        s.items.as_deref(),
                        p.default_mode,
                        s.optional == Some(true),
                    )?);
                } else if let Some(d) = &source.downward_api {
                    files.extend(downward_files(
                        pod,
                        facts,
                        d.items.as_deref().unwrap_or_default(),
                        p.default_mode,
                    )?);
                }
                // serviceAccountToken, clusterTrustBundle, podCertificate: with the auth issue.
            }
            files
        } else if let Some(claim) = &volume.persistent_volume_claim {
            let dir = claim_dir(&objects.client, &objects.namespace, claim, node).await?;
            out.insert(volume.name.clone(), dir);
            continue;
        } else {
            return Err(unsupported(
                "this volume type is not supported on wasmkube nodes",
            ));
        };
        sandbox::write_files(&dir, &files)?;
        out.insert(
            volume.name.clone(),
            VolumeDir {
                host: dir,
                read_only: true,
            },
        );
    }

    let service_account = if spec.automount_service_account_token == Some(false) {
        None
    } else {
        let dir = dirs.volume("..serviceaccount");
        let namespace = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        sandbox::write_files(
            &dir,
            &[File {
                path: "namespace".into(),
                data: namespace.into_bytes(),
                mode: 0o644,
            }],
        )?;
        Some(dir)
    };
    Ok((out, service_account))
}

#[cfg(test)]
#[path = "volumes_tests.rs"]
mod tests;
