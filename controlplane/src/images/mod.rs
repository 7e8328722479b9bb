//! The cluster's image store: an OCI distribution endpoint the API server serves at `/v2/`, so
//! `oci-client`, Docker and any registry client can push images to the cluster and nodes can
//! pull them from it, with no registry to run beside it.
//!
//! Start reading at [`distribution`] (the HTTP endpoints, one `match`), then [`store`] (the
//! on-disk layout and repository operations) and [`uploads`] (blob upload sessions). [`names`]
//! validates what comes from paths, [`manifest`] reads what a manifest references, [`error`] is
//! the one error type and the OCI error body it becomes, and [`files`] holds the crash-safe
//! file system steps. The store lives in `DATA_DIR/images`; unreferenced blobs are not
//! garbage-collected.

pub mod distribution;
pub mod error;
pub mod files;
pub mod manifest;
pub mod names;
pub mod store;
pub mod uploads;

#[cfg(test)]
mod tests;

pub use error::Error;
pub use names::{Digest, Reference, RepoName, Tag, UploadId};
pub use store::{Blob, DEFAULT_MAX_BLOB, ImageStore, Manifest};
