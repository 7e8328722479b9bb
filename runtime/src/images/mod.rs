//! Images: what a container's `image:` field names, and where its WebAssembly comes from.
//!
//! A [`Reference`] parses the way Docker parses image names (ARCHITECTURE D12): the first `/`
//! component is a registry host only if it contains `.` or `:` or is `localhost`, the tag
//! defaults to `latest`, and `@sha256:...` pins a digest. `file:///abs/path.wasm` names a host
//! file instead.
//!
//! An [`ImageSource`] turns a reference into an [`Image`] (bytes plus their sha256 digest). The
//! built-in [`Catalog`] serves the guests compiled from `wasm-examples/` by `build.rs`
//! (`wasmkube/web`, `wasmkube/toolbox`, `wasmkube/crash`, `wasmkube/stress`,
//! `wasmkube/kv`, `wasmkube/api`, `wasmkube/http-hello`); [`FileSource`]
//! reads `file://` paths and is off unless the node operator enables it, since a pod author
//! must not read arbitrary host files. [`Images`] chains sources in lookup order.
//!
//! Manifests from tutorials say `nginx` and `busybox`: the catalog serves those Docker Hub
//! names (any tag, also as `docker.io/library/...`) with the built-in guest that does their
//! job, a *stand-in* ([`stand_in`]); the node agent announces it with an Event on the pod.
//!
//! Everything else comes from an OCI registry ([`registry`], the wasm layout in [`oci`]):
//! the cluster's own image store for names without a registry host, else the registry the
//! name gives. [`pull::Puller`] is the kubelet's side of it (`imagePullPolicy`,
//! `imagePullSecrets`, the node's copies in [`local`]).

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;

pub mod commands;
pub mod local;
pub mod oci;
pub mod pull;
mod reference;
pub mod registry;
#[cfg(test)]
use reference::valid_path_component;
pub use reference::{ImageName, Reference};
use sha2::{Digest as _, Sha256};

/// Everything that can go wrong while resolving an image.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The reference is not a valid image name.
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference {
        /// The reference as written.
        reference: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No source knows the image.
    #[error("image {reference} not found")]
    NotFound {
        /// The reference as written.
        reference: String,
    },
    /// The image exists but not with the digest the reference pins.
    #[error("image {reference} has digest {actual}, not the pinned one")]
    DigestMismatch {
        /// The reference as written.
        reference: String,
        /// The digest of the bytes found.
        actual: String,
    },
    /// A `file://` image was asked for but the node does not allow them.
    #[error("file:// images are disabled on this node (image {reference})")]
    FileImagesDisabled {
        /// The reference as written.
        reference: String,
    },
    /// Reading a `file://` image failed.
    #[error("reading image file {path}")]
    ReadFile {
        /// The host path.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
}

/// A resolved image: the bytes of a wasm component or core module, and their identity.
#[derive(Clone)]
pub struct Image {
    /// The canonical name, e.g. `wasmkube/web:latest` or `file:///srv/app.wasm`.
    pub name: String,
    /// `sha256:<hex>` of [`Image::bytes`]; the compile cache is keyed by it.
    pub digest: String,
    /// The WebAssembly binary.
    pub bytes: Arc<[u8]>,
}

impl Image {
    /// Wraps bytes under a name, computing their digest.
    pub fn from_bytes(name: impl Into<String>, bytes: impl Into<Arc<[u8]>>) -> Image {
        let bytes = bytes.into();
        Image {
            name: name.into(),
            digest: digest_of(&bytes),
            bytes,
        }
    }

    /// The last path component of the name without tag or digest (`web` for
    /// `wasmkube/web:latest`): a sensible `argv[0]` when a pod gives no command.
    pub fn short_name(&self) -> &str {
        let name = self.name.rsplit('/').next().unwrap_or(&self.name);
        let name = name.split('@').next().unwrap_or(name);
        let name = name.split(':').next().unwrap_or(name);
        name.strip_suffix(".wasm").unwrap_or(name)
    }
}

impl fmt::Debug for Image {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Image")
            .field("name", &self.name)
            .field("digest", &self.digest)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// `sha256:<lowercase hex>` of some bytes, the digest format of OCI.
pub fn digest_of(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in hash {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Somewhere images come from: the built-in catalog, host files, later an OCI registry.
#[async_trait]
pub trait ImageSource: Send + Sync {
    /// Finds the image a reference names. [`Error::NotFound`] means "not mine": [`Images`]
    /// then asks the next source; any other error stops the lookup.
    async fn resolve(&self, reference: &Reference) -> Result<Image, Error>;
}

/// The guests built into this binary, each `(repository, bytes)`.
const BUILT_IN: [(&str, &[u8]); 7] = [
    ("wasmkube/web", include_bytes!(env!("WASMKUBE_GUEST_WEB"))),
    (
        "wasmkube/toolbox",
        include_bytes!(env!("WASMKUBE_GUEST_TOOLBOX")),
    ),
    (
        "wasmkube/crash",
        include_bytes!(env!("WASMKUBE_GUEST_CRASH")),
    ),
    (
        "wasmkube/stress",
        include_bytes!(env!("WASMKUBE_GUEST_STRESS")),
    ),
    ("wasmkube/kv", include_bytes!(env!("WASMKUBE_GUEST_KV"))),
    ("wasmkube/api", include_bytes!(env!("WASMKUBE_GUEST_API"))),
    (
        "wasmkube/http-hello",
        include_bytes!(env!("WASMKUBE_GUEST_HTTP_HELLO")),
    ),
];

/// A built-in guest standing in for an image tutorials use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StandIn {
    /// The image it stands in for, without tag: a Docker Hub library name (`nginx`) or a
    /// full one (`registry.k8s.io/hpa-example`).
    pub image: &'static str,
    /// The built-in image that runs instead.
    pub builtin: &'static str,
    /// The port the original listens on, given as `PORT` unless the container declares one
    /// (its first `containerPort` then wins) or sets `PORT` itself.
    pub port: Option<u16>,
    /// Env the stand-in gets unless the container sets it (where the original keeps data).
    pub env: &'static [(&'static str, &'static str)],
}

const fn stand_in_for(image: &'static str, builtin: &'static str) -> StandIn {
    StandIn {
        image,
        builtin,
        port: None,
        env: &[],
    }
}

/// The stand-ins, by the image they stand in for.
pub const STAND_INS: &[StandIn] = &[
    stand_in_for("nginx", "wasmkube/web"),
    stand_in_for("httpd", "wasmkube/web"),
    stand_in_for("busybox", "wasmkube/toolbox"),
    stand_in_for("alpine", "wasmkube/toolbox"),
    stand_in_for("ubuntu", "wasmkube/toolbox"),
    // Databases: kv keeps its log where the original keeps its data, on its port.
    StandIn {
        image: "postgres",
        builtin: "wasmkube/kv",
        port: Some(5432),
        env: &[("DATA_DIR", "/var/lib/postgresql/data")],
    },
    StandIn {
        image: "redis",
        builtin: "wasmkube/kv",
        port: Some(6379),
        env: &[("DATA_DIR", "/data")],
    },
    StandIn {
        image: "mysql",
        builtin: "wasmkube/kv",
        port: Some(3306),
        env: &[("DATA_DIR", "/var/lib/mysql")],
    },
    // The HPA walkthrough's php-apache: every request costs CPU.
    StandIn {
        image: "registry.k8s.io/hpa-example",
        builtin: "wasmkube/web",
        port: Some(80),
        env: &[("BURN_PER_REQUEST", "1000000")],
    },
];

/// The stand-in for `reference` (`nginx:1.27` -> `wasmkube/web`): any tag, never a
/// reference pinned to a digest (the stand-in's bytes are not the original's).
pub fn stand_in(reference: &Reference) -> Option<&'static StandIn> {
    let Reference::Name(name) = reference else {
        return None;
    };
    if name.digest.is_some() {
        return None;
    }
    let full = match &name.registry {
        Some(registry) => format!("{registry}/{}", name.repository),
        None => name.repository.clone(),
    };
    STAND_INS.iter().find(|s| s.image == full)
}

/// The built-in catalog: `wasmkube/web`, `wasmkube/toolbox`, `wasmkube/crash`,
/// `wasmkube/stress`, `wasmkube/kv` (a durable key-value server), `wasmkube/api` (a JSON API
/// counting visits in kv) and `wasmkube/http-hello` (a `wasi:http` handler), tag `latest`
/// (implied), compiled from `wasm-examples/` by `build.rs`.
#[derive(Default)]
pub struct Catalog {
    /// Images built on first use: hashing ~1 MB of wasm is not free, and most processes
    /// never ask for all of them.
    images: [OnceLock<Image>; BUILT_IN.len()],
}

impl Catalog {
    /// A catalog of the built-in guests.
    pub fn new() -> Catalog {
        Catalog::default()
    }

    /// The repository names the catalog serves.
    pub fn names() -> impl Iterator<Item = &'static str> {
        BUILT_IN.iter().map(|(name, _)| *name)
    }

    /// The image of a built-in repository (`wasmkube/web`), if there is one.
    pub fn get(&self, repository: &str) -> Option<Image> {
        let i = BUILT_IN.iter().position(|(name, _)| *name == repository)?;
        let (name, bytes) = BUILT_IN[i];
        Some(
            self.images[i]
                .get_or_init(|| Image::from_bytes(format!("{name}:latest"), bytes))
                .clone(),
        )
    }

    fn lookup(&self, reference: &Reference) -> Result<Image, Error> {
        let not_found = || Error::NotFound {
            reference: reference.to_string(),
        };
        if let Some(stand_in) = stand_in(reference) {
            return self.get(stand_in.builtin).ok_or_else(not_found);
        }
        let Reference::Name(name) = reference else {
            return Err(not_found());
        };
        if name.registry.is_some() || name.tag_or_latest() != "latest" {
            return Err(not_found());
        }
        let image = self.get(&name.repository).ok_or_else(not_found)?;
        match &name.digest {
            Some(digest) if *digest != image.digest => Err(Error::DigestMismatch {
                reference: reference.to_string(),
                actual: image.digest,
            }),
            _ => Ok(image),
        }
    }
}

#[async_trait]
impl ImageSource for Catalog {
    async fn resolve(&self, reference: &Reference) -> Result<Image, Error> {
        self.lookup(reference)
    }
}

/// `file:///path.wasm` images, read from the host. Off by default: only a node flag should
/// turn it on, since it lets a pod author read any file the agent can.
#[derive(Debug, Clone, Copy, Default)]
pub struct FileSource {
    enabled: bool,
}

impl FileSource {
    /// A source that serves `file://` references only when `enabled`; otherwise it answers
    /// them with [`Error::FileImagesDisabled`] so the pod says why.
    pub fn new(enabled: bool) -> FileSource {
        FileSource { enabled }
    }
}

#[async_trait]
impl ImageSource for FileSource {
    async fn resolve(&self, reference: &Reference) -> Result<Image, Error> {
        let Reference::File(path) = reference else {
            return Err(Error::NotFound {
                reference: reference.to_string(),
            });
        };
        if !self.enabled {
            return Err(Error::FileImagesDisabled {
                reference: reference.to_string(),
            });
        }
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::NotFound => Error::NotFound {
                    reference: reference.to_string(),
                },
                _ => Error::ReadFile {
                    path: path.clone(),
                    source,
                },
            })?;
        Ok(Image::from_bytes(reference.to_string(), bytes))
    }
}

/// Image sources asked in order; the first that knows the reference answers.
#[derive(Clone, Default)]
pub struct Images {
    sources: Vec<Arc<dyn ImageSource>>,
}

impl Images {
    /// No sources at all: every lookup is [`Error::NotFound`].
    pub fn empty() -> Images {
        Images::default()
    }

    /// The node default: the built-in catalog, then `file://` paths if `allow_files`.
    pub fn builtin(allow_files: bool) -> Images {
        Images::empty()
            .with(Catalog::new())
            .with(FileSource::new(allow_files))
    }

    /// Appends a source, asked after the ones already there.
    pub fn with(mut self, source: impl ImageSource + 'static) -> Images {
        self.sources.push(Arc::new(source));
        self
    }

    /// Parses and resolves a reference as written in a pod spec.
    pub async fn resolve_str(&self, reference: &str) -> Result<Image, Error> {
        self.resolve(&Reference::parse(reference)?).await
    }
}

#[async_trait]
impl ImageSource for Images {
    async fn resolve(&self, reference: &Reference) -> Result<Image, Error> {
        for source in &self.sources {
            match source.resolve(reference).await {
                Err(Error::NotFound { .. }) => continue,
                other => return other,
            }
        }
        Err(Error::NotFound {
            reference: reference.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> ImageName {
        match Reference::parse(s).unwrap() {
            Reference::Name(n) => n,
            Reference::File(p) => panic!("{s} parsed as file {p:?}"),
        }
    }

    #[test]
    fn default_registry_and_implied_latest() {
        let n = name("wasmkube/web");
        assert_eq!(
            (n.registry, n.repository.as_str(), n.tag, n.digest),
            (None, "wasmkube/web", None, None)
        );
        assert_eq!(name("wasmkube/web").tag_or_latest(), "latest");
    }

    #[test]
    fn first_component_is_a_host_only_with_dot_colon_or_localhost() {
        assert_eq!(name("localhost/app").registry.as_deref(), Some("localhost"));
        assert_eq!(
            name("localhost:5000/app:v1").registry.as_deref(),
            Some("localhost:5000")
        );
        assert_eq!(name("ghcr.io/org/app").registry.as_deref(), Some("ghcr.io"));
        let n = name("wasmkube/web:v2");
        assert_eq!((n.registry, n.tag.as_deref()), (None, Some("v2")));
    }

    #[test]
    fn port_colon_is_not_a_tag() {
        let n = name("registry:5000/app");
        assert_eq!(
            (n.registry.as_deref(), n.repository.as_str(), n.tag),
            (Some("registry:5000"), "app", None)
        );
    }

    #[test]
    fn docker_io_and_library_are_the_default() {
        assert_eq!(name("docker.io/library/nginx:1.27"), name("nginx:1.27"));
        assert_eq!(name("index.docker.io/wasmkube/web"), name("wasmkube/web"));
    }

    #[test]
    fn digest_references() {
        let d = format!("sha256:{}", "ab".repeat(32));
        let n = name(&format!("wasmkube/web@{d}"));
        assert_eq!((n.tag, n.digest.as_deref()), (None, Some(d.as_str())));
        let n = name(&format!("wasmkube/web:latest@{d}"));
        assert_eq!(n.tag.as_deref(), Some("latest"));
        assert_eq!(n.to_string(), format!("wasmkube/web:latest@{d}"));
    }

    #[test]
    fn rejects_bad_references() {
        for bad in [
            "",
            "Web",
            "web:",
            "web@sha256:12",
            "web@md5:00",
            "a//b",
            "-web",
            "web:.x",
            "file://relative",
        ] {
            assert!(
                matches!(Reference::parse(bad), Err(Error::InvalidReference { .. })),
                "{bad:?} parsed"
            );
        }
    }

    #[test]
    fn file_references() {
        assert_eq!(
            Reference::parse("file:///srv/app.wasm").unwrap(),
            Reference::File("/srv/app.wasm".into())
        );
    }

    #[test]
    fn separators_in_path_components() {
        for ok in ["a.b", "a_b", "a__b", "a---b", "a1"] {
            assert!(valid_path_component(ok), "{ok}");
        }
        for bad in ["a..b", "a___b", "a_-b", "_a", "a-"] {
            assert!(!valid_path_component(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn catalog_serves_builtins_by_name_and_digest() {
        let images = Images::builtin(false);
        let web = images.resolve_str("wasmkube/web").await.unwrap();
        assert_eq!(web.name, "wasmkube/web:latest");
        assert_eq!(web.short_name(), "web");
        assert_eq!(web.digest, digest_of(&web.bytes));
        let pinned = images
            .resolve_str(&format!("wasmkube/web@{}", web.digest))
            .await
            .unwrap();
        assert_eq!(pinned.digest, web.digest);
        let wrong = format!("wasmkube/web@sha256:{}", "0".repeat(64));
        assert!(matches!(
            images.resolve_str(&wrong).await,
            Err(Error::DigestMismatch { .. })
        ));
        assert!(matches!(
            images.resolve_str("wasmkube/web:v9").await,
            Err(Error::NotFound { .. })
        ));
        assert!(matches!(
            images.resolve_str("nginx-unknown").await,
            Err(Error::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn tutorial_images_resolve_to_their_stand_ins() {
        let images = Images::builtin(false);
        for (written, builtin) in [
            ("nginx", "wasmkube/web:latest"),
            ("nginx:1.27", "wasmkube/web:latest"),
            ("docker.io/library/httpd:2.4", "wasmkube/web:latest"),
            ("busybox", "wasmkube/toolbox:latest"),
            ("library/alpine:3.20", "wasmkube/toolbox:latest"),
            ("ubuntu:24.04", "wasmkube/toolbox:latest"),
            ("registry.k8s.io/hpa-example", "wasmkube/web:latest"),
            ("postgres:16", "wasmkube/kv:latest"),
            ("redis", "wasmkube/kv:latest"),
        ] {
            assert_eq!(
                images.resolve_str(written).await.unwrap().name,
                builtin,
                "{written}"
            );
        }
        // Another registry's nginx, or a pinned one, is not a stand-in.
        for other in ["registry.example.com/nginx", "localhost:5000/busybox"] {
            assert!(
                stand_in(&Reference::parse(other).unwrap()).is_none(),
                "{other}"
            );
        }
        let pinned = format!("nginx@sha256:{}", "a".repeat(64));
        assert!(stand_in(&Reference::parse(&pinned).unwrap()).is_none());
    }

    #[tokio::test]
    async fn file_images_are_off_by_default() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.wasm");
        std::fs::write(&path, b"\0asm\x01\0\0\0").unwrap();
        let reference = format!("file://{}", path.display());
        let off = Images::builtin(false).resolve_str(&reference).await;
        assert!(
            matches!(off, Err(Error::FileImagesDisabled { .. })),
            "{off:?}"
        );
        let on = Images::builtin(true).resolve_str(&reference).await.unwrap();
        assert_eq!((on.short_name(), on.bytes.len()), ("x", 8));
    }
}
