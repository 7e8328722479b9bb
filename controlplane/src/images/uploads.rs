//! Blob upload sessions on the [`ImageStore`]: start, append chunks, finish (verify the digest,
//! move into place), cancel, and the one-request monolithic upload.
//!
//! An upload is the file `uploads/<uuid>`, so its size is its length and a session survives an
//! API server restart; `uploads/<uuid>.repo` names the repository it belongs to. Bodies are
//! streamed to the file chunk by chunk and counted, never buffered whole. The digest is computed
//! from the file when the upload finishes, so chunks may come from any number of requests.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::Mutex;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;

use super::error::Error;
use super::files;
use super::names::{Digest, RepoName, UploadId};
use super::store::ImageStore;

impl ImageStore {
    /// Opens an empty upload session for the repository.
    pub async fn start_upload(&self, name: &RepoName) -> Result<UploadId, Error> {
        let id = UploadId::new();
        let dir = self.uploads_dir();
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| Error::io("create directory", &dir, e))?;
        let data = self.upload_path(&id);
        tokio::fs::write(&data, b"")
            .await
            .map_err(|e| Error::io("create", &data, e))?;
        let owner = self.owner_path(&id);
        tokio::fs::write(&owner, name.as_str())
            .await
            .map_err(|e| Error::io("write", &owner, e))?;
        Ok(id)
    }

    /// How many bytes the upload has.
    pub async fn upload_size(&self, name: &RepoName, id: &UploadId) -> Result<u64, Error> {
        self.check_owner(name, id).await?;
        self.size_of(id).await
    }

    /// Appends `body` to the upload; `start`, when the client sent a `Content-Range`, must be
    /// the upload's current size. Returns the new size. A body that takes the upload past
    /// [`ImageStore::max_blob`] ends the upload.
    pub async fn append<S, E>(
        &self,
        name: &RepoName,
        id: &UploadId,
        start: Option<u64>,
        body: S,
    ) -> Result<u64, Error>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        let _writing = Writing::begin(&self.busy, id)?;
        self.check_owner(name, id).await?;
        let size = self.size_of(id).await?;
        if let Some(start) = start
            && start != size
        {
            return Err(Error::RangeInvalid { size, start });
        }
        self.write_body(id, size, body).await
    }

    /// Appends `body`, checks that the upload hashes to `digest` and makes it the blob, served
    /// under the repository. On a mismatch the upload is dropped.
    pub async fn finish<S, E>(
        &self,
        name: &RepoName,
        id: &UploadId,
        digest: &Digest,
        body: S,
    ) -> Result<(), Error>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        let _writing = Writing::begin(&self.busy, id)?;
        self.check_owner(name, id).await?;
        let size = self.size_of(id).await?;
        self.write_body(id, size, body).await?;
        let path = self.upload_path(id);
        let actual = files::blocking({
            let path = path.clone();
            move || hash_and_sync(&path)
        })
        .await?;
        if actual != *digest {
            self.discard(id).await?;
            return Err(Error::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        let blob = self.blob_path(digest);
        files::blocking(move || files::rename_durably(&path, &blob)).await?;
        files::remove(&self.owner_path(id)).await?;
        self.mark(self.layer_path(name, digest)).await
    }

    /// Uploads a whole blob in one request (`POST ...?digest=`).
    pub async fn put_blob<S, E>(
        &self,
        name: &RepoName,
        digest: &Digest,
        body: S,
    ) -> Result<(), Error>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        let id = self.start_upload(name).await?;
        let result = self.finish(name, &id, digest, body).await;
        if result.is_err() {
            let _ = self.discard(&id).await;
        }
        result
    }

    /// Abandons an upload.
    pub async fn cancel(&self, name: &RepoName, id: &UploadId) -> Result<(), Error> {
        let _writing = Writing::begin(&self.busy, id)?;
        self.check_owner(name, id).await?;
        self.discard(id).await
    }

    /// Streams `body` onto the end of the upload (which has `size` bytes), counting against the
    /// blob limit; past it the upload is removed.
    async fn write_body<S, E>(&self, id: &UploadId, mut size: u64, body: S) -> Result<u64, Error>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        let path = self.upload_path(id);
        let mut file = tokio::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .await
            .map_err(|e| Error::io("open", &path, e))?;
        let mut body = pin!(body);
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| Error::BodyRead(e.to_string()))?;
            size += chunk.len() as u64;
            if size > self.max_blob() {
                drop(file);
                self.discard(id).await?;
                return Err(Error::TooLarge {
                    what: "blob",
                    limit: self.max_blob(),
                });
            }
            file.write_all(&chunk)
                .await
                .map_err(|e| Error::io("write", &path, e))?;
        }
        // tokio's File finishes writes in the background; flush waits for the last one.
        file.flush()
            .await
            .map_err(|e| Error::io("write", &path, e))?;
        Ok(size)
    }

    /// [`Error::UploadUnknown`] unless the upload exists and belongs to `name`.
    async fn check_owner(&self, name: &RepoName, id: &UploadId) -> Result<(), Error> {
        match files::read_text(&self.owner_path(id)).await? {
            Some(owner) if owner == name.as_str() => Ok(()),
            _ => Err(Error::UploadUnknown(id.to_string())),
        }
    }

    async fn size_of(&self, id: &UploadId) -> Result<u64, Error> {
        let path = self.upload_path(id);
        match tokio::fs::metadata(&path).await {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(Error::UploadUnknown(id.to_string()))
            }
            Err(e) => Err(Error::io("stat", path, e)),
        }
    }

    async fn discard(&self, id: &UploadId) -> Result<(), Error> {
        files::remove(&self.upload_path(id)).await?;
        files::remove(&self.owner_path(id)).await?;
        Ok(())
    }

    fn upload_path(&self, id: &UploadId) -> PathBuf {
        self.uploads_dir().join(id.as_str())
    }

    fn owner_path(&self, id: &UploadId) -> PathBuf {
        self.uploads_dir().join(format!("{id}.repo"))
    }
}

/// Reads the file through sha256 and syncs it, so the rename that follows publishes durable
/// content.
fn hash_and_sync(path: &Path) -> Result<Digest, Error> {
    use sha2::Digest as _;
    use std::io::Read as _;
    let mut file = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| Error::io("read", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    file.sync_all().map_err(|e| Error::io("sync", path, e))?;
    Ok(Digest::from_hasher(hasher))
}

/// Marks an upload as being written by one request, until dropped.
struct Writing<'a> {
    busy: &'a Mutex<HashSet<String>>,
    id: String,
}

impl<'a> Writing<'a> {
    fn begin(busy: &'a Mutex<HashSet<String>>, id: &UploadId) -> Result<Self, Error> {
        let mut set = busy.lock().unwrap_or_else(|e| e.into_inner());
        if !set.insert(id.to_string()) {
            return Err(Error::UploadBusy(id.to_string()));
        }
        Ok(Self {
            busy,
            id: id.to_string(),
        })
    }
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        let mut set = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        set.remove(&self.id);
    }
}
