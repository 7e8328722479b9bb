//! [`ImageStore`]: the cluster's images on disk, in the layout Docker's registry uses, with no
//! database:
//!
//! ```text
//! blobs/sha256/<hex>                               content-addressed (manifests too)
//! uploads/<uuid>, uploads/<uuid>.repo              in-progress uploads and their repository
//! repositories/<name>/_manifests/tags/<tag>        the digest the tag points at
//! repositories/<name>/_manifests/revisions/<hex>   marker: the repository has this manifest
//! repositories/<name>/_layers/<hex>                marker: the repository may serve this blob
//! ```
//!
//! A blob is shared by every repository, but served under a repository only if it was uploaded
//! or mounted there (`_layers`) or is one of its manifests (`revisions`). Every file that names
//! something is written atomically, so a crash never leaves a half blob under a digest or a tag
//! pointing at nothing. Uploads are in `uploads.rs`. Unreferenced blobs are never collected.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bytes::Bytes;

use super::error::Error;
use super::files;
use super::manifest::{self, MAX_MANIFEST};
use super::names::{Digest, Reference, RepoName, Tag};

/// The default [`ImageStore::max_blob`]: 512 MiB.
pub const DEFAULT_MAX_BLOB: u64 = 512 * 1024 * 1024;

/// The cluster's image store. Cheap to share behind the API state's `Arc`.
pub struct ImageStore {
    root: PathBuf,
    max_blob: u64,
    /// Uploads a request is writing right now: a second writer gets [`Error::UploadBusy`].
    pub(super) busy: Mutex<HashSet<String>>,
    _temporary: Option<TemporaryRoot>,
}

/// Removes a temporary store's directory when the store goes.
struct TemporaryRoot(PathBuf);

impl Drop for TemporaryRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A manifest as stored: its exact bytes and what to serve them as.
#[derive(Clone, Debug)]
pub struct Manifest {
    /// The sha256 of `bytes`.
    pub digest: Digest,
    /// The manifest's `mediaType` (or the OCI default).
    pub media_type: String,
    /// The bytes the client pushed.
    pub bytes: Bytes,
}

/// A blob opened for reading.
#[derive(Debug)]
pub struct Blob {
    /// The content.
    pub file: tokio::fs::File,
    /// Its length.
    pub size: u64,
}

impl ImageStore {
    /// A store rooted at `root`; directories are created as they are first written. Blobs over
    /// `max_blob` bytes are refused.
    pub fn at(root: PathBuf, max_blob: u64) -> Self {
        Self {
            root,
            max_blob,
            busy: Mutex::new(HashSet::new()),
            _temporary: None,
        }
    }

    /// Opens (creating) the store at `root` and removes temp files a crash left behind.
    pub async fn open(root: PathBuf, max_blob: u64) -> Result<Self, Error> {
        let store = Self::at(root, max_blob);
        for dir in [store.blobs_dir(), store.uploads_dir(), store.repos_dir()] {
            tokio::fs::create_dir_all(&dir)
                .await
                .map_err(|e| Error::io("create directory", &dir, e))?;
        }
        for name in files::list(&store.uploads_dir()).await? {
            if name.starts_with(TMP_PREFIX) {
                files::remove(&store.uploads_dir().join(name)).await?;
            }
        }
        Ok(store)
    }

    /// A store in a fresh directory under the system temp dir, removed when the store is
    /// dropped: for API servers without a data directory (tests).
    pub fn temporary(max_blob: u64) -> Self {
        let dir = std::env::temp_dir().join(format!("wasmkube-images-{}", uuid::Uuid::new_v4()));
        Self {
            _temporary: Some(TemporaryRoot(dir.clone())),
            ..Self::at(dir, max_blob)
        }
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The largest blob accepted.
    pub fn max_blob(&self) -> u64 {
        self.max_blob
    }

    /// The repositories with at least one tag or manifest, sorted.
    pub async fn catalog(&self) -> Result<Vec<RepoName>, Error> {
        let root = self.repos_dir();
        files::blocking(move || {
            let mut found = Vec::new();
            walk(&root, "", &mut found)?;
            found.sort();
            Ok(found)
        })
        .await
    }

    /// The repository's tags, sorted; [`Error::NameUnknown`] if it has no manifests.
    pub async fn tags(&self, name: &RepoName) -> Result<Vec<Tag>, Error> {
        let tags = files::list(&self.tags_dir(name)).await?;
        if tags.is_empty() && files::list(&self.revisions_dir(name)).await?.is_empty() {
            return Err(Error::NameUnknown(name.clone()));
        }
        Ok(tags.iter().filter_map(|t| Tag::parse(t).ok()).collect())
    }

    /// The digest a tag or digest names in the repository.
    pub async fn resolve(&self, name: &RepoName, reference: &Reference) -> Result<Digest, Error> {
        let unknown = || Error::ManifestUnknown {
            name: name.clone(),
            reference: reference.to_string(),
        };
        match reference {
            Reference::Tag(tag) => {
                let path = self.tag_path(name, tag);
                let text = files::read_text(&path).await?.ok_or_else(unknown)?;
                Digest::parse(text.trim()).map_err(|_| {
                    let bad = std::io::Error::new(std::io::ErrorKind::InvalidData, "not a digest");
                    Error::io("read the tag", path, bad)
                })
            }
            Reference::Digest(d) if files::exists(&self.revision_path(name, d)).await? => {
                Ok(d.clone())
            }
            Reference::Digest(_) => Err(unknown()),
        }
    }

    /// The manifest a tag or digest names.
    pub async fn manifest(
        &self,
        name: &RepoName,
        reference: &Reference,
    ) -> Result<Manifest, Error> {
        let digest = self.resolve(name, reference).await?;
        let path = self.blob_path(&digest);
        let bytes = match tokio::fs::read(&path).await {
            Ok(b) => Bytes::from(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::ManifestUnknown {
                    name: name.clone(),
                    reference: reference.to_string(),
                });
            }
            Err(e) => return Err(Error::io("read", path, e)),
        };
        Ok(Manifest {
            media_type: manifest::media_type(&bytes),
            digest,
            bytes,
        })
    }

    /// Stores a manifest after checking it and the blobs it needs; a tag reference then points
    /// at it, a digest reference must be its digest. Returns the digest.
    pub async fn put_manifest(
        &self,
        name: &RepoName,
        reference: &Reference,
        bytes: Bytes,
    ) -> Result<Digest, Error> {
        if bytes.len() as u64 > MAX_MANIFEST {
            return Err(Error::TooLarge {
                what: "manifest",
                limit: MAX_MANIFEST,
            });
        }
        let parsed = manifest::parse(&bytes)?;
        let digest = Digest::of(&bytes);
        if let Reference::Digest(expected) = reference
            && *expected != digest
        {
            return Err(Error::DigestMismatch {
                expected: expected.clone(),
                actual: digest,
            });
        }
        for blob in &parsed.blobs {
            if !self.linked(name, blob).await? {
                return Err(Error::ManifestBlobUnknown(blob.clone()));
            }
        }
        // Blob, then revision, then tag: each step only ever points at what already exists.
        let blob = self.blob_path(&digest);
        if !files::exists(&blob).await? {
            files::write_atomic(self.temp_path(), blob, bytes.to_vec()).await?;
        }
        self.mark(self.revision_path(name, &digest)).await?;
        if let Reference::Tag(tag) = reference {
            let text = digest.as_str().as_bytes().to_vec();
            files::write_atomic(self.temp_path(), self.tag_path(name, tag), text).await?;
        }
        Ok(digest)
    }

    /// Removes a tag, or a manifest and every tag that points at it.
    pub async fn delete_manifest(
        &self,
        name: &RepoName,
        reference: &Reference,
    ) -> Result<(), Error> {
        let unknown = || Error::ManifestUnknown {
            name: name.clone(),
            reference: reference.to_string(),
        };
        match reference {
            Reference::Tag(tag) => {
                if !files::remove(&self.tag_path(name, tag)).await? {
                    return Err(unknown());
                }
            }
            Reference::Digest(digest) => {
                if !files::remove(&self.revision_path(name, digest)).await? {
                    return Err(unknown());
                }
                for tag in files::list(&self.tags_dir(name)).await? {
                    let path = self.tags_dir(name).join(&tag);
                    if files::read_text(&path).await?.as_deref().map(str::trim)
                        == Some(digest.as_str())
                    {
                        files::remove(&path).await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Opens a blob the repository may serve.
    pub async fn blob(&self, name: &RepoName, digest: &Digest) -> Result<Blob, Error> {
        let unknown = || Error::BlobUnknown {
            name: name.clone(),
            digest: digest.clone(),
        };
        if !self.linked(name, digest).await? {
            return Err(unknown());
        }
        let path = self.blob_path(digest);
        let file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(unknown()),
            Err(e) => return Err(Error::io("open", path, e)),
        };
        let size = file
            .metadata()
            .await
            .map_err(|e| Error::io("stat", &path, e))?
            .len();
        Ok(Blob { file, size })
    }

    /// Stops serving a blob under the repository (the blob itself stays).
    pub async fn unlink_blob(&self, name: &RepoName, digest: &Digest) -> Result<(), Error> {
        if files::remove(&self.layer_path(name, digest)).await? {
            Ok(())
        } else {
            Err(Error::BlobUnknown {
                name: name.clone(),
                digest: digest.clone(),
            })
        }
    }

    /// Serves a blob of repository `from` under `name` too; `false` if `from` does not have it.
    pub async fn mount(
        &self,
        name: &RepoName,
        digest: &Digest,
        from: &RepoName,
    ) -> Result<bool, Error> {
        if !self.linked(from, digest).await? || !files::exists(&self.blob_path(digest)).await? {
            return Ok(false);
        }
        self.mark(self.layer_path(name, digest)).await?;
        Ok(true)
    }

    /// Whether the repository may serve the blob: uploaded or mounted there, or its manifest.
    pub async fn linked(&self, name: &RepoName, digest: &Digest) -> Result<bool, Error> {
        Ok(files::exists(&self.layer_path(name, digest)).await?
            || files::exists(&self.revision_path(name, digest)).await?)
    }

    /// Writes an empty marker file durably.
    pub(super) async fn mark(&self, path: PathBuf) -> Result<(), Error> {
        files::write_atomic(self.temp_path(), path, Vec::new()).await
    }

    pub(super) fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs/sha256")
    }
    pub(super) fn blob_path(&self, d: &Digest) -> PathBuf {
        self.blobs_dir().join(d.hex())
    }
    pub(super) fn uploads_dir(&self) -> PathBuf {
        self.root.join("uploads")
    }
    /// A fresh temp file name next to the uploads, on the store's file system.
    pub(super) fn temp_path(&self) -> PathBuf {
        self.uploads_dir()
            .join(format!("{TMP_PREFIX}{}", uuid::Uuid::new_v4()))
    }
    fn repos_dir(&self) -> PathBuf {
        self.root.join("repositories")
    }
    fn repo_dir(&self, name: &RepoName) -> PathBuf {
        self.repos_dir().join(name.as_str())
    }
    fn tags_dir(&self, name: &RepoName) -> PathBuf {
        self.repo_dir(name).join("_manifests/tags")
    }
    fn tag_path(&self, name: &RepoName, tag: &Tag) -> PathBuf {
        self.tags_dir(name).join(tag.as_str())
    }
    fn revisions_dir(&self, name: &RepoName) -> PathBuf {
        self.repo_dir(name).join("_manifests/revisions")
    }
    fn revision_path(&self, name: &RepoName, d: &Digest) -> PathBuf {
        self.revisions_dir(name).join(d.hex())
    }
    pub(super) fn layer_path(&self, name: &RepoName, d: &Digest) -> PathBuf {
        self.repo_dir(name).join("_layers").join(d.hex())
    }
}

/// Temp files (atomic writes in progress) start with this; uploads are bare UUIDs.
const TMP_PREFIX: &str = "tmp-";

/// Collects the repositories under `dir` (named `prefix`): a directory is one when it has a
/// tag or a revision. `_manifests` and `_layers` can never be name components (those start
/// with a letter or digit), so everything else is a nested repository.
fn walk(dir: &Path, prefix: &str, found: &mut Vec<RepoName>) -> Result<(), Error> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("list", dir, e)),
    };
    if !prefix.is_empty()
        && (files::has_entries(&dir.join("_manifests/tags"))?
            || files::has_entries(&dir.join("_manifests/revisions"))?)
        && let Ok(name) = RepoName::parse(prefix)
    {
        found.push(name);
    }
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list", dir, e))?;
        let Ok(child) = entry.file_name().into_string() else {
            continue;
        };
        if child.starts_with('_') || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let name = if prefix.is_empty() {
            child.clone()
        } else {
            format!("{prefix}/{child}")
        };
        walk(&dir.join(&child), &name, found)?;
    }
    Ok(())
}
