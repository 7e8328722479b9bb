//! Reading manifests: enough of an OCI image manifest, an OCI image index or a Docker schema2
//! manifest (list) to know its media type and which blobs it needs.
//!
//! The store keeps the exact bytes the client pushed (their digest is the manifest's identity),
//! so nothing here ever re-serialises a manifest.

use serde::Deserialize;
use serde_json::Value;

use super::error::Error;
use super::names::Digest;

/// The largest manifest accepted (the spec suggests registries accept at least 4 MiB).
pub const MAX_MANIFEST: u64 = 4 * 1024 * 1024;

/// The media type of an OCI image manifest, served when a manifest names none.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// The media type of an OCI image index, served when an index names none.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// What the store needs to know about a pushed manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// The `mediaType` to serve it with.
    pub media_type: String,
    /// The `config` and `layers` blobs, which must be in the repository before the manifest.
    pub blobs: Vec<Digest>,
    /// The manifests an index lists (not checked: they are manifests, not blobs).
    pub children: Vec<Digest>,
}

#[derive(Deserialize)]
struct Head {
    #[serde(rename = "schemaVersion")]
    schema_version: Option<Value>,
    #[serde(rename = "mediaType")]
    media_type: Option<Value>,
    config: Option<Value>,
    layers: Option<Value>,
    manifests: Option<Value>,
}

/// Parses a pushed manifest; anything that is not a schema 2 manifest or index is
/// [`Error::ManifestInvalid`].
pub fn parse(bytes: &[u8]) -> Result<Parsed, Error> {
    let invalid = Error::ManifestInvalid;
    let head: Head = serde_json::from_slice(bytes)
        .map_err(|e| invalid(format!("the body is not a JSON object: {e}")))?;
    if let Some(v) = &head.schema_version
        && v.as_u64() != Some(2)
    {
        return Err(invalid(format!(
            "schemaVersion {v} is not supported: push a schema 2 (OCI or Docker v2) manifest"
        )));
    }
    let media_type = match &head.media_type {
        None => None,
        Some(Value::String(s)) if valid_media_type(s) => Some(s.clone()),
        Some(other) => return Err(invalid(format!("mediaType {other} is not a media type"))),
    };
    if let Some(manifests) = &head.manifests {
        let children = descriptors(manifests, "manifests")?;
        return Ok(Parsed {
            media_type: media_type.unwrap_or_else(|| OCI_INDEX.to_string()),
            blobs: Vec::new(),
            children,
        });
    }
    let (Some(config), Some(layers)) = (&head.config, &head.layers) else {
        return Err(invalid(
            "expected an image manifest (config and layers) or an index (manifests)".into(),
        ));
    };
    let mut blobs = vec![descriptor(config, "config")?];
    let layers = layers
        .as_array()
        .ok_or_else(|| invalid("layers must be an array".into()))?;
    for (i, layer) in layers.iter().enumerate() {
        // A foreign layer (`urls`) is fetched from elsewhere; the registry never holds it.
        if layer
            .get("urls")
            .and_then(Value::as_array)
            .is_some_and(|u| !u.is_empty())
        {
            continue;
        }
        blobs.push(descriptor(layer, &format!("layers[{i}]"))?);
    }
    Ok(Parsed {
        media_type: media_type.unwrap_or_else(|| OCI_MANIFEST.to_string()),
        blobs,
        children: Vec::new(),
    })
}

/// The media type to serve stored manifest bytes with.
pub fn media_type(bytes: &[u8]) -> String {
    match parse(bytes) {
        Ok(p) => p.media_type,
        Err(_) => OCI_MANIFEST.to_string(),
    }
}

fn descriptors(list: &Value, field: &str) -> Result<Vec<Digest>, Error> {
    let items = list
        .as_array()
        .ok_or_else(|| Error::ManifestInvalid(format!("{field} must be an array")))?;
    items
        .iter()
        .enumerate()
        .map(|(i, d)| descriptor(d, &format!("{field}[{i}]")))
        .collect()
}

fn descriptor(d: &Value, field: &str) -> Result<Digest, Error> {
    let digest = d
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::ManifestInvalid(format!("{field} has no digest")))?;
    Digest::parse(digest).map_err(|_| {
        Error::ManifestInvalid(format!(
            "{field}.digest {digest:?} is not a sha256:<64 lowercase hex> digest"
        ))
    })
}

/// `type/subtype[+suffix]` with header-safe characters, so it can go into `Content-Type`.
fn valid_media_type(s: &str) -> bool {
    let ok = |b: u8| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b);
    match s.split_once('/') {
        Some((t, sub)) => {
            !t.is_empty() && !sub.is_empty() && t.bytes().all(ok) && sub.bytes().all(ok)
        }
        None => false,
    }
}
