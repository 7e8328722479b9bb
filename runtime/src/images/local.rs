//! The node's images: what it pulled, kept on disk so `imagePullPolicy: IfNotPresent` and
//! `Never` find them after an agent restart, and so an unchanged image is never downloaded
//! twice.
//!
//! `<dir>/blobs/sha256/<hex>` holds each wasm binary by digest; `<dir>/refs/<hash>` maps a
//! reference as pulled (`localhost:5000/app:v1`) to the digest it had then (`reference\n
//! digest`). Both are written to a temporary name and renamed, so a crash never leaves a
//! half-written image under a digest.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest as _, Sha256};

use super::Image;

/// Pulled images on one node (or one process of in-process nodes).
pub struct LocalImages {
    dir: PathBuf,
    /// Images read or written in this process, by digest.
    loaded: Mutex<HashMap<String, Image>>,
}

impl LocalImages {
    /// The images under `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> LocalImages {
        LocalImages {
            dir: dir.into(),
            loaded: Mutex::default(),
        }
    }

    fn blob_path(&self, digest: &str) -> Option<PathBuf> {
        let hex = digest.strip_prefix("sha256:")?;
        (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| self.dir.join("blobs").join("sha256").join(hex))
    }

    fn ref_path(&self, reference: &str) -> PathBuf {
        let hash = Sha256::digest(reference.as_bytes());
        let hex: String = hash.iter().take(16).map(|b| format!("{b:02x}")).collect();
        self.dir.join("refs").join(hex)
    }

    /// The image with this digest, if the node has it, named `name`.
    pub async fn by_digest(&self, name: &str, digest: &str) -> Option<Image> {
        if let Some(image) = self
            .loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(digest)
        {
            return Some(Image {
                name: name.to_string(),
                ..image.clone()
            });
        }
        let bytes = tokio::fs::read(self.blob_path(digest)?).await.ok()?;
        let image = Image::from_bytes(name, bytes);
        // A damaged file is not the image it claims to be.
        if image.digest != digest {
            return None;
        }
        self.loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(digest.to_string(), image.clone());
        Some(image)
    }

    /// The image last pulled as `reference`, if the node has it.
    pub async fn by_reference(&self, reference: &str) -> Option<Image> {
        let text = tokio::fs::read_to_string(self.ref_path(reference))
            .await
            .ok()?;
        let (written, digest) = text.trim_end().split_once('\n')?;
        if written != reference {
            return None;
        }
        self.by_digest(reference, digest).await
    }

    /// Keeps `image` as the node's copy of `reference`.
    pub async fn put(&self, reference: &str, image: &Image) -> std::io::Result<()> {
        let blob = self
            .blob_path(&image.digest)
            .ok_or_else(|| std::io::Error::other("not a sha256 digest"))?;
        let refs = self.ref_path(reference);
        let bytes = image.bytes.clone();
        let record = format!("{reference}\n{}\n", image.digest);
        tokio::task::spawn_blocking(move || {
            if !blob.is_file() {
                write_atomically(&blob, &bytes)?;
            }
            write_atomically(&refs, record.as_bytes())
        })
        .await
        .map_err(std::io::Error::other)??;
        self.loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(image.digest.clone(), image.clone());
        Ok(())
    }
}

impl std::fmt::Debug for LocalImages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalImages")
            .field("dir", &self.dir)
            .finish()
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("x"),
        std::process::id()
    ));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pulled_images_survive_a_new_process() {
        let dir = tempfile::tempdir().unwrap();
        let image = Image::from_bytes("localhost:5000/app:v1", b"\0asm\x01\0\0\0".to_vec());
        LocalImages::new(dir.path())
            .put("localhost:5000/app:v1", &image)
            .await
            .unwrap();
        let again = LocalImages::new(dir.path());
        let found = again.by_reference("localhost:5000/app:v1").await.unwrap();
        assert_eq!(
            (found.digest, &found.bytes[..]),
            (image.digest.clone(), &image.bytes[..])
        );
        assert!(again.by_reference("localhost:5000/app:v2").await.is_none());
        let renamed = again.by_digest("other:v9", &image.digest).await.unwrap();
        assert_eq!(renamed.name, "other:v9");
    }

    #[tokio::test]
    async fn a_damaged_blob_is_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let image = Image::from_bytes("app", b"\0asm\x01\0\0\0".to_vec());
        let local = LocalImages::new(dir.path());
        local.put("app", &image).await.unwrap();
        let path = local.blob_path(&image.digest).unwrap();
        std::fs::write(&path, b"tampered").unwrap();
        assert!(
            LocalImages::new(dir.path())
                .by_reference("app")
                .await
                .is_none()
        );
    }
}
