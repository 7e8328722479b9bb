//! A pod's directories on the node and how a container sees them (ARCHITECTURE D8).
//!
//! ```text
//! <data_dir>/pods/<uid>/
//!   volumes/<volume>/          emptyDir, configMap, secret, downwardAPI, projected contents
//!   volumes/..serviceaccount/  the service-account files (`namespace`)
//!   containers/<name>/root/    the container's ephemeral root, preopened at `/`,
//!                              wiped whenever the container (re)starts
//!   logs/<container>/<n>.log   see logs.rs
//! ```
//!
//! Everything survives an agent restart except the ephemeral roots (a restarted agent
//! restarts its containers). Files of configMap-like volumes are written atomically one by
//! one (temporary file + rename) and only when their content or mode changed.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::Container;

use std::time::Instant;

use super::events::EventType;
use super::volumes;
use super::worker::{Stage, Worker};
use crate::wasm::Mount;

/// Where the service-account files appear in a container.
pub const SERVICE_ACCOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The list of files a materialised volume holds, kept inside it to remove stale ones.
const MANIFEST: &str = "..wasmkube-files";

/// What can go wrong preparing a pod's directories.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory operation failed.
    #[error("{path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A path from the pod spec (item path, subPath) would leave its volume.
    #[error("invalid path {0:?}: must be relative and may not contain '..'")]
    InvalidPath(String),
    /// A volumeMount names no volume of the pod.
    #[error("volume {0:?} is mounted but not defined in the pod")]
    UnknownVolume(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The directories of one pod.
#[derive(Debug, Clone)]
pub struct PodDirs {
    root: PathBuf,
}

impl PodDirs {
    /// The directories of pod `uid` under the node's data dir.
    pub fn new(data_dir: &Path, uid: &str) -> PodDirs {
        PodDirs {
            root: pods_dir(data_dir).join(uid),
        }
    }

    /// The pod's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A volume's directory.
    pub fn volume(&self, name: &str) -> PathBuf {
        self.root.join("volumes").join(name)
    }

    /// The directory holding the container logs.
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// Empties (or creates) a container's ephemeral root and returns it.
    pub fn fresh_root(&self, container: &str) -> Result<PathBuf, Error> {
        let root = self.root.join("containers").join(container).join("root");
        match std::fs::remove_dir_all(&root) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&root)(e)),
            _ => {}
        }
        std::fs::create_dir_all(&root).map_err(io(&root))?;
        Ok(root)
    }

    /// Creates the pod's directory and its log directory.
    pub fn create(&self) -> Result<(), Error> {
        for dir in [self.root.join("volumes"), self.logs()] {
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        }
        Ok(())
    }

    /// Removes everything of the pod.
    pub fn remove(&self) -> Result<(), Error> {
        match std::fs::remove_dir_all(&self.root) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&self.root)(e)),
            _ => Ok(()),
        }
    }
}

/// `<data_dir>/pods`: one directory per pod UID.
pub fn pods_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("pods")
}

/// A file of a configMap-like volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Relative path inside the volume.
    pub path: String,
    /// The content.
    pub data: Vec<u8>,
    /// Permission bits (`defaultMode`/`mode`, 0644 by default).
    pub mode: u32,
}

/// Checks that a path from the spec stays inside its directory.
pub fn relative(path: &str) -> Result<PathBuf, Error> {
    let p = Path::new(path);
    let ok = !path.is_empty()
        && p.components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if ok {
        Ok(p.to_path_buf())
    } else {
        Err(Error::InvalidPath(path.to_string()))
    }
}

/// Makes `dir` hold exactly `files` (plus the manifest). Returns whether anything changed.
pub fn write_files(dir: &Path, files: &[File]) -> Result<bool, Error> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let manifest = dir.join(MANIFEST);
    let old = std::fs::read_to_string(&manifest).unwrap_or_default();
    let mut changed = false;
    for file in files {
        let path = dir.join(relative(&file.path)?);
        let same = std::fs::read(&path).is_ok_and(|d| d == file.data)
            && std::fs::metadata(&path).is_ok_and(|m| m.permissions().mode() & 0o7777 == file.mode);
        if same {
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = path.with_file_name(format!("..{name}.tmp"));
        std::fs::write(&tmp, &file.data).map_err(io(&tmp))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(file.mode))
            .map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        changed = true;
    }
    for stale in old.lines().filter(|l| !files.iter().any(|f| f.path == *l)) {
        if let Ok(rel) = relative(stale) {
            changed |= std::fs::remove_file(dir.join(rel)).is_ok();
        }
    }
    let list: String = files.iter().map(|f| format!("{}\n", f.path)).collect();
    if list != old {
        std::fs::write(&manifest, list).map_err(io(&manifest))?;
    }
    Ok(changed)
}

/// A volume ready to mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeDir {
    /// The host directory.
    pub host: PathBuf,
    /// Whether every mount of it is read-only (configMap, secret, downwardAPI, projected).
    pub read_only: bool,
}

/// The mounts of a container: its `volumeMounts` (with `subPath`, created if missing), and
/// the service-account directory unless the container mounts something there itself.
pub fn mounts(
    container: &Container,
    volumes: &HashMap<String, VolumeDir>,
    service_account: Option<&Path>,
) -> Result<Vec<Mount>, Error> {
    let mut out = Vec::new();
    for vm in container.volume_mounts.iter().flatten() {
        let volume = volumes
            .get(&vm.name)
            .ok_or_else(|| Error::UnknownVolume(vm.name.clone()))?;
        let host = match vm.sub_path.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) => {
                let host = volume.host.join(relative(sub)?);
                if !host.exists() {
                    std::fs::create_dir_all(&host).map_err(io(&host))?;
                }
                host
            }
            None => volume.host.clone(),
        };
        out.push(Mount {
            host,
            guest: vm.mount_path.clone(),
            read_only: volume.read_only || vm.read_only == Some(true),
        });
    }
    if let Some(dir) = service_account
        && !out
            .iter()
            .any(|m| Path::new(&m.guest) == Path::new(SERVICE_ACCOUNT_PATH))
    {
        out.push(Mount {
            host: dir.to_path_buf(),
            guest: SERVICE_ACCOUNT_PATH.into(),
            read_only: true,
        });
    }
    Ok(out)
}

/// Preparing the sandbox of a pod (its IP, directories and volumes) and refreshing its
/// configMap/secret volumes.
impl Worker {
    /// Allocates the IP, creates the directories and volumes. Returns whether it is ready.
    pub(super) async fn prepare_sandbox(&mut self) -> bool {
        let allocated = self
            .ctx
            .ipam
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .allocate(&self.uid);
        let result = match allocated {
            Ok(ip) => {
                self.pod_ip = Some(ip);
                match self.dirs.create() {
                    Ok(()) => match self.refresh_volumes_inner().await {
                        // A claim the binder or provisioner has not finished: look again soon,
                        // quietly (the pod shows ContainerCreating meanwhile).
                        Err(volumes::Error::Claim(e)) if e.is_waiting() => {
                            tracing::debug!(error = %e, "waiting for a claim");
                            self.stage = Stage::Sandbox {
                                retry_at: Some(Instant::now() + self.ctx.config.volume_retry),
                            };
                            return false;
                        }
                        other => other.map_err(|e| ("FailedMount", e.to_string())),
                    },
                    Err(e) => Err(("FailedCreatePodSandBox", e.to_string())),
                }
            }
            Err(e) => Err(("FailedCreatePodSandBox", e.to_string())),
        };
        match result {
            Ok(()) => true,
            Err((reason, message)) => {
                tracing::warn!(reason, %message, "pod sandbox not ready");
                self.event(None, EventType::Warning, reason, message);
                self.stage = Stage::Sandbox {
                    retry_at: Some(Instant::now() + self.ctx.config.backoff_base),
                };
                false
            }
        }
    }

    async fn refresh_volumes_inner(&mut self) -> Result<(), volumes::Error> {
        let facts = self.facts();
        let (volumes, service_account) = volumes::materialise(
            &self.objects,
            &self.pod,
            &facts,
            &self.dirs,
            &self.ctx.config.volumes(),
        )
        .await?;
        self.volumes = volumes;
        self.service_account = service_account;
        Ok(())
    }

    /// The periodic refresh of configMap/secret volumes; failures keep the old files.
    pub(super) async fn refresh_volumes(&mut self) {
        if let Err(e) = self.refresh_volumes_inner().await {
            self.event(None, EventType::Warning, "FailedMount", e.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::VolumeMount;

    fn file(path: &str, data: &str, mode: u32) -> File {
        File {
            path: path.into(),
            data: data.into(),
            mode,
        }
    }

    #[test]
    fn writes_files_with_modes_and_removes_stale_ones() {
        let dir = tempfile::tempdir().unwrap();
        let v = dir.path().join("v");
        assert!(write_files(&v, &[file("a", "1", 0o644), file("sub/b", "2", 0o400)]).unwrap());
        assert_eq!(std::fs::read_to_string(v.join("sub/b")).unwrap(), "2");
        assert_eq!(
            std::fs::metadata(v.join("sub/b"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o400
        );
        assert!(
            !write_files(&v, &[file("a", "1", 0o644), file("sub/b", "2", 0o400)]).unwrap(),
            "unchanged"
        );
        assert!(write_files(&v, &[file("a", "changed", 0o644)]).unwrap());
        assert_eq!(std::fs::read_to_string(v.join("a")).unwrap(), "changed");
        assert!(!v.join("sub/b").exists());
        assert!(matches!(
            write_files(&v, &[file("../x", "", 0o644)]),
            Err(Error::InvalidPath(_))
        ));
    }

    #[test]
    fn fresh_root_is_wiped_but_volumes_stay() {
        let dir = tempfile::tempdir().unwrap();
        let pod = PodDirs::new(dir.path(), "u1");
        pod.create().unwrap();
        let root = pod.fresh_root("c").unwrap();
        std::fs::write(root.join("scratch"), "x").unwrap();
        std::fs::create_dir_all(pod.volume("data")).unwrap();
        std::fs::write(pod.volume("data").join("kept"), "y").unwrap();
        let root = pod.fresh_root("c").unwrap();
        assert!(!root.join("scratch").exists());
        assert!(pod.volume("data").join("kept").exists());
        pod.remove().unwrap();
        assert!(!pod.root().exists());
    }

    #[test]
    fn mounts_honour_read_only_sub_path_and_service_account() {
        let dir = tempfile::tempdir().unwrap();
        let volumes = HashMap::from([
            (
                "data".to_string(),
                VolumeDir {
                    host: dir.path().join("data"),
                    read_only: false,
                },
            ),
            (
                "cfg".to_string(),
                VolumeDir {
                    host: dir.path().join("cfg"),
                    read_only: true,
                },
            ),
        ]);
        let vm = |name: &str, path: &str, sub: Option<&str>, ro: Option<bool>| VolumeMount {
            name: name.into(),
            mount_path: path.into(),
            sub_path: sub.map(String::from),
            read_only: ro,
            ..VolumeMount::default()
        };
        let c = Container {
            volume_mounts: Some(vec![
                vm("data", "/data", Some("x/y"), None),
                vm("cfg", "/etc/cfg", None, Some(false)),
            ]),
            ..Container::default()
        };
        let m = mounts(&c, &volumes, Some(&dir.path().join("sa"))).unwrap();
        assert_eq!(
            (m[0].host.clone(), m[0].read_only),
            (dir.path().join("data/x/y"), false)
        );
        assert!(m[0].host.is_dir(), "subPath is created");
        assert!(m[1].read_only, "configMap volumes are always read-only");
        assert_eq!(m[2].guest, SERVICE_ACCOUNT_PATH);
        let bad = Container {
            volume_mounts: Some(vec![vm("nope", "/x", None, None)]),
            ..Container::default()
        };
        assert!(matches!(
            mounts(&bad, &volumes, None),
            Err(Error::UnknownVolume(_))
        ));
    }
}
