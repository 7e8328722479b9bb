//! Pulling a container's image, the kubelet's way: `imagePullPolicy`, `imagePullSecrets`, and
//! the lookup order of ARCHITECTURE D12.
//!
//! A name without a registry host (`my-app:v1`, `nginx`) is looked up in the cluster's image
//! store first (the API server's `/v2/`, where `wasmkube image import` puts images), then
//! among the built-in images and stand-ins. A name with a host (`localhost:5000/app:v1`) is
//! pulled from that registry. Pulled images are kept on the node ([`LocalImages`]), so
//! `IfNotPresent` and `Never` find them and an unchanged image is not downloaded again.

use std::time::{Duration, Instant};

use oci_client::secrets::RegistryAuth;

use super::local::LocalImages;
use super::registry::{Registries, RegistryError};
use super::{Image, ImageSource, Images, Reference, oci};

/// A container's `imagePullPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Ask the registry every time (the default for `:latest` or no tag).
    Always,
    /// Pull only when the node does not have the image (the default otherwise).
    IfNotPresent,
    /// Never pull: the image must be on the node already.
    Never,
}

impl PullPolicy {
    /// The policy as written, or Kubernetes' default for the reference when it is absent.
    pub fn of(written: Option<&str>, reference: &Reference) -> PullPolicy {
        match written {
            Some("Always") => PullPolicy::Always,
            Some("IfNotPresent") => PullPolicy::IfNotPresent,
            Some("Never") => PullPolicy::Never,
            _ => match reference {
                Reference::Name(n) if n.digest.is_none() && n.tag_or_latest() == "latest" => {
                    PullPolicy::Always
                }
                _ => PullPolicy::IfNotPresent,
            },
        }
    }
}

/// Credentials for one registry, from an `imagePullSecrets` Secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The registry host (`localhost:5000`), as the secret's `auths` key names it.
    pub registry: String,
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("registry", &self.registry)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The registry host an `auths` key names: `https://host/v1/` and `host` both mean `host`.
fn auth_host(key: &str) -> &str {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    key.split('/').next().unwrap_or(key)
}

/// The credentials in a `kubernetes.io/dockerconfigjson` (`.dockerconfigjson`) or
/// `kubernetes.io/dockercfg` (`.dockercfg`) Secret's data.
pub fn credentials(data: &std::collections::BTreeMap<String, Vec<u8>>) -> Vec<Credential> {
    use base64::Engine as _;
    let auths = if let Some(json) = data.get(".dockerconfigjson") {
        serde_json::from_slice::<serde_json::Value>(json)
            .ok()
            .and_then(|v| v.get("auths").cloned())
    } else {
        data.get(".dockercfg")
            .and_then(|json| serde_json::from_slice::<serde_json::Value>(json).ok())
    };
    let Some(serde_json::Value::Object(auths)) = auths else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (key, entry) in auths {
        let field = |name: &str| entry.get(name).and_then(|v| v.as_str()).unwrap_or("");
        let (mut username, mut password) =
            (field("username").to_string(), field("password").to_string());
        if username.is_empty()
            && let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(field("auth"))
            && let Ok(text) = String::from_utf8(decoded)
            && let Some((u, p)) = text.split_once(':')
        {
            (username, password) = (u.to_string(), p.to_string());
        }
        if !username.is_empty() {
            out.push(Credential {
                registry: auth_host(&key).to_string(),
                username,
                password,
            });
        }
    }
    out
}

/// Where a container's image came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Built into the node (a built-in guest, a stand-in, a `file://` path): nothing pulled.
    BuiltIn,
    /// Already on the node, and the policy did not ask the registry.
    Present,
    /// Resolved in a registry now.
    Pulled {
        /// The registry host (the cluster's store for names without one).
        registry: String,
        /// The image's size.
        bytes: u64,
        /// Whether the bytes were downloaded (false: the node had that digest).
        downloaded: bool,
        /// How long resolving and downloading took.
        took: Duration,
    },
}

/// A container's image, and where it came from.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The image.
    pub image: Image,
    /// Where it came from.
    pub origin: Origin,
}

/// Why a container's image could not be had; the reason the container waits with.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// `imagePullPolicy: Never` and the node does not have it (`ErrImageNeverPull`).
    #[error("Container image {0:?} is not present with pull policy of Never")]
    NeverPull(String),
    /// The pull failed (`ErrImagePull`, then `ImagePullBackOff`).
    #[error("{0}")]
    Failed(String),
}

/// The node's image puller.
pub struct Puller {
    local: LocalImages,
    builtin: Images,
    registries: Registries,
    /// The largest image a node downloads.
    max_bytes: u64,
}

impl std::fmt::Debug for Puller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Puller")
            .field("local", &self.local)
            .field("registries", &self.registries)
            .finish_non_exhaustive()
    }
}

impl Puller {
    /// A puller keeping pulled images in `local`, with the node's built-in images and the
    /// registries it may reach.
    pub fn new(local: LocalImages, builtin: Images, registries: Registries) -> Puller {
        Puller {
            local,
            builtin,
            registries,
            max_bytes: 512 << 20,
        }
    }

    /// The built-in images (the catalog, stand-ins, `file://` when allowed).
    pub fn builtin(&self) -> &Images {
        &self.builtin
    }

    /// Resolves a container's image under `policy`. `pulling` is called once, just before
    /// the node asks a registry for it (the kubelet's `Pulling` event).
    pub async fn pull(
        &self,
        reference: &Reference,
        policy: PullPolicy,
        credentials: &[Credential],
        pulling: &(dyn Fn() + Send + Sync),
    ) -> Result<Pulled, PullError> {
        let Reference::Name(name) = reference else {
            let image = self
                .builtin
                .resolve(reference)
                .await
                .map_err(|e| PullError::Failed(e.to_string()))?;
            return Ok(Pulled {
                image,
                origin: Origin::BuiltIn,
            });
        };
        let written = reference.to_string();
        // Built-in images have no registry host; stand-ins may (`registry.k8s.io/hpa-example`),
        // and win over their registry, which a wasm node could not run anyway.
        let stand_in = super::stand_in(reference).is_some();
        let built_in = || async {
            if name.registry.is_some() && !stand_in {
                return None;
            }
            self.builtin.resolve(reference).await.ok()
        };
        if name.registry.is_some()
            && stand_in
            && let Some(image) = built_in().await
        {
            return Ok(Pulled {
                image,
                origin: Origin::BuiltIn,
            });
        }
        if policy != PullPolicy::Always
            && let Some(image) = self.local.by_reference(&written).await
        {
            return Ok(Pulled {
                image,
                origin: Origin::Present,
            });
        }
        if policy == PullPolicy::Never {
            return match built_in().await {
                Some(image) => Ok(Pulled {
                    image,
                    origin: Origin::BuiltIn,
                }),
                None => Err(PullError::NeverPull(written)),
            };
        }

        let host = match &name.registry {
            Some(host) => Some(host.clone()),
            None => self.registries.cluster().map(str::to_string),
        };
        let remote = match host {
            Some(host) => {
                let target = match &name.digest {
                    Some(digest) => oci_client::Reference::with_digest(
                        host.clone(),
                        name.repository.clone(),
                        digest.clone(),
                    ),
                    None => oci_client::Reference::with_tag(
                        host.clone(),
                        name.repository.clone(),
                        name.tag_or_latest().to_string(),
                    ),
                };
                let auth = auth_for(credentials, &host);
                // Names without a host are tried in the cluster's store quietly: most are
                // stand-ins, and "Pulling" would be noise for them.
                let announce = name.registry.is_some();
                if announce {
                    pulling();
                }
                Some(
                    self.fetch(&written, &target, &auth, (!announce).then_some(pulling))
                        .await,
                )
            }
            None => None,
        };
        match remote {
            Some(Ok(pulled)) => Ok(pulled),
            Some(Err(e)) if name.registry.is_some() => Err(PullError::Failed(e.to_string())),
            other => {
                if let Some(image) = built_in().await {
                    return Ok(Pulled {
                        image,
                        origin: Origin::BuiltIn,
                    });
                }
                match other {
                    Some(Err(e @ (RegistryError::Failed(_) | RegistryError::Unauthorized(_)))) => {
                        Err(PullError::Failed(format!("the cluster's image store: {e}")))
                    }
                    _ => Err(PullError::Failed(not_found_advice(reference))),
                }
            }
        }
    }

    /// Resolves `target` in its registry and downloads its wasm layer unless the node has it.
    async fn fetch(
        &self,
        written: &str,
        target: &oci_client::Reference,
        auth: &RegistryAuth,
        pulling: Option<&(dyn Fn() + Send + Sync)>,
    ) -> Result<Pulled, RegistryError> {
        let started = Instant::now();
        let resolved = self.registries.resolve(target, auth).await?;
        let layer = oci::wasm_layer(&resolved.manifest)
            .map_err(|e| RegistryError::Failed(format!("{}: {e}", target.whole())))?;
        let bytes = u64::try_from(layer.size).unwrap_or(0);
        if bytes > self.max_bytes {
            return Err(RegistryError::Failed(format!(
                "{}: the image is {bytes} bytes, more than this node takes ({} bytes)",
                target.whole(),
                self.max_bytes
            )));
        }
        let (image, downloaded) = match self.local.by_digest(written, &layer.digest).await {
            Some(image) => (image, false),
            None => {
                if let Some(pulling) = pulling {
                    pulling();
                }
                let data = self.registries.fetch(target, layer, auth).await?;
                (Image::from_bytes(written, data), true)
            }
        };
        if image.digest != layer.digest {
            return Err(RegistryError::Failed(format!(
                "{}: layer digest {} does not match its content ({})",
                target.whole(),
                layer.digest,
                image.digest
            )));
        }
        if let Err(e) = self.local.put(written, &image).await {
            tracing::warn!(image = written, error = %e, "could not keep the pulled image on the node");
        }
        Ok(Pulled {
            origin: Origin::Pulled {
                registry: target.registry().to_string(),
                bytes: image.bytes.len() as u64,
                downloaded,
                took: started.elapsed(),
            },
            image,
        })
    }
}

fn auth_for(credentials: &[Credential], host: &str) -> RegistryAuth {
    credentials
        .iter()
        .find(|c| c.registry == host)
        .map_or(RegistryAuth::Anonymous, |c| {
            RegistryAuth::Basic(c.username.clone(), c.password.clone())
        })
}

/// What to do about an image no source has.
fn not_found_advice(reference: &Reference) -> String {
    let Reference::Name(name) = reference else {
        return format!("image {reference} not found");
    };
    let tagged = format!("{}:{}", name.repository, name.tag_or_latest());
    let file = name.repository.rsplit('/').next().unwrap_or("app");
    format!(
        "image {reference:?} is neither in the cluster's image store nor a wasmkube stand-in: \
         import a WebAssembly build of it with `wasmkube image import {tagged} {file}.wasm`, or \
         push it to a registry and name the registry in the image (localhost:5000/{tagged})"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Reference {
        Reference::parse(s).unwrap()
    }

    #[test]
    fn default_policy_is_always_for_latest_else_if_not_present() {
        assert_eq!(PullPolicy::of(None, &parse("app")), PullPolicy::Always);
        assert_eq!(
            PullPolicy::of(None, &parse("app:latest")),
            PullPolicy::Always
        );
        assert_eq!(
            PullPolicy::of(None, &parse("app:v1")),
            PullPolicy::IfNotPresent
        );
        let pinned = format!("app@sha256:{}", "a".repeat(64));
        assert_eq!(
            PullPolicy::of(None, &parse(&pinned)),
            PullPolicy::IfNotPresent
        );
        assert_eq!(
            PullPolicy::of(Some("Never"), &parse("app")),
            PullPolicy::Never
        );
    }

    #[test]
    fn pull_secrets_of_both_formats() {
        let json = br#"{"auths":{"https://localhost:5000/v1/":{"username":"u","password":"p"},
            "reg.lan":{"auth":"YWxpY2U6czNjcmV0"}}}"#;
        let data =
            std::collections::BTreeMap::from([(".dockerconfigjson".to_string(), json.to_vec())]);
        let mut found = credentials(&data);
        found.sort_by(|a, b| a.registry.cmp(&b.registry));
        assert_eq!(
            found,
            vec![
                Credential {
                    registry: "localhost:5000".into(),
                    username: "u".into(),
                    password: "p".into()
                },
                Credential {
                    registry: "reg.lan".into(),
                    username: "alice".into(),
                    password: "s3cret".into()
                },
            ]
        );
        let old = std::collections::BTreeMap::from([(
            ".dockercfg".to_string(),
            br#"{"reg.lan:5000":{"username":"x","password":"y"}}"#.to_vec(),
        )]);
        assert_eq!(credentials(&old)[0].registry, "reg.lan:5000");
        assert!(credentials(&Default::default()).is_empty());
    }

    #[tokio::test]
    async fn never_finds_built_ins_and_refuses_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let puller = Puller::new(
            LocalImages::new(dir.path()),
            Images::builtin(false),
            Registries::new(None, Vec::new()),
        );
        let quiet: &(dyn Fn() + Send + Sync) = &|| {};
        let web = puller
            .pull(&parse("nginx"), PullPolicy::Never, &[], quiet)
            .await
            .unwrap();
        assert_eq!(web.origin, Origin::BuiltIn);
        // A stand-in whose name has a registry host never asks that registry.
        let hpa = puller
            .pull(
                &parse("registry.k8s.io/hpa-example"),
                PullPolicy::Always,
                &[],
                quiet,
            )
            .await
            .unwrap();
        assert_eq!(
            (hpa.origin, hpa.image.name.as_str()),
            (Origin::BuiltIn, "wasmkube/web:latest")
        );
        let err = puller
            .pull(&parse("my-app:v1"), PullPolicy::Never, &[], quiet)
            .await
            .unwrap_err();
        assert!(matches!(err, PullError::NeverPull(_)), "{err}");
        let err = puller
            .pull(&parse("my-app:v1"), PullPolicy::IfNotPresent, &[], quiet)
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("wasmkube image import my-app:v1 my-app.wasm"),
            "{err}"
        );
    }
}
