//! The layout of a WebAssembly image in an OCI registry (the CNCF wasm OCI artifact layout):
//! an image manifest whose config is `application/vnd.wasm.config.v0+json` and whose one
//! layer is the `.wasm` file itself, `application/wasm`.
//!
//! Pushes (`wasmkube image import|push`) write that layout; pulls also accept the layer types
//! older tools wrote (`wasm-to-oci`, runwasi), and refuse container images with a message
//! that says why.

use std::collections::BTreeMap;

use oci_client::client::{Config, ImageLayer};
use oci_client::manifest::{OCI_IMAGE_MEDIA_TYPE, OciDescriptor, OciImageManifest};

/// The media type of the layer holding the wasm binary.
pub const WASM_LAYER: &str = "application/wasm";
/// The media type of the image config.
pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
/// Layer media types other tools use for a wasm binary; pulled like [`WASM_LAYER`].
pub const WASM_LAYERS: [&str; 3] = [
    WASM_LAYER,
    "application/vnd.wasm.content.layer.v1+wasm",
    "application/vnd.module.wasm.content.layer.v1+wasm",
];

/// Which WASI a binary targets, judged from its header: `wasip2` for a component, `wasip1`
/// for a core module, `None` for anything that is not WebAssembly.
pub fn wasi_target(bytes: &[u8]) -> Option<&'static str> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return None;
    }
    match bytes[4..8] {
        [1, 0, 0, 0] => Some("wasip1"),
        [0x0d, 0, 1, 0] => Some("wasip2"),
        _ => None,
    }
}

/// The layer and config of an image made from one wasm binary, and its manifest.
pub struct Artifact {
    /// The wasm binary as the one layer.
    pub layer: ImageLayer,
    /// The image config (`architecture: wasm`, `os: wasip1|wasip2`, the layer digest).
    pub config: Config,
    /// The manifest naming both.
    pub manifest: OciImageManifest,
}

/// Packs a wasm binary as an image. `None` when the bytes are not WebAssembly.
pub fn artifact(wasm: bytes::Bytes, created: &str) -> Option<Artifact> {
    let os = wasi_target(&wasm)?;
    let layer_digest = super::digest_of(&wasm);
    let config = serde_json::json!({
        "created": created,
        "architecture": "wasm",
        "os": os,
        "layerDigests": [layer_digest],
    });
    let config = Config::new(
        serde_json::to_vec(&config).unwrap_or_default(),
        WASM_CONFIG.to_string(),
        None,
    );
    let layer = ImageLayer::new(wasm, WASM_LAYER.to_string(), None);
    let mut manifest =
        OciImageManifest::build(std::slice::from_ref(&layer), &config, Some(annotations(os)));
    manifest.media_type = Some(OCI_IMAGE_MEDIA_TYPE.to_string());
    Some(Artifact {
        layer,
        config,
        manifest,
    })
}

fn annotations(os: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(
        "io.wasmkube.wasi".to_string(),
        os.to_string(), // shown by `wasmkube image ls`
    )])
}

/// The layer of a pulled manifest that holds the wasm binary, or a message saying what the
/// image holds instead.
pub fn wasm_layer(manifest: &OciImageManifest) -> Result<&OciDescriptor, String> {
    if let Some(layer) = manifest
        .layers
        .iter()
        .find(|l| WASM_LAYERS.contains(&l.media_type.as_str()))
    {
        return Ok(layer);
    }
    let types: Vec<&str> = manifest
        .layers
        .iter()
        .map(|l| l.media_type.as_str())
        .collect();
    Err(if types.is_empty() {
        "the image has no layers".to_string()
    } else {
        format!(
            "not a WebAssembly image (layers {}; config {}): wasmkube runs wasm images whose \
             layer is {WASM_LAYER}, e.g. pushed with `wasmkube image push app.wasm REF`",
            types.join(", "),
            manifest.config.media_type
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_and_modules_are_told_apart() {
        assert_eq!(wasi_target(b"\0asm\x0d\0\x01\0rest"), Some("wasip2"));
        assert_eq!(wasi_target(b"\0asm\x01\0\0\0"), Some("wasip1"));
        assert_eq!(wasi_target(b"\x7fELF\x02\x01\x01\0"), None);
        assert_eq!(wasi_target(b"\0asm"), None);
    }

    #[test]
    fn an_artifact_names_its_layer_in_manifest_and_config() {
        let wasm = bytes::Bytes::from_static(b"\0asm\x01\0\0\0");
        let a = artifact(wasm.clone(), "2026-01-01T00:00:00Z").unwrap();
        assert_eq!(a.manifest.layers.len(), 1);
        let layer = wasm_layer(&a.manifest).unwrap();
        assert_eq!(layer.digest, crate::images::digest_of(&wasm));
        assert_eq!(layer.size, 8);
        let config: serde_json::Value = serde_json::from_slice(&a.config.data).unwrap();
        assert_eq!(config["os"], "wasip1");
        assert_eq!(config["layerDigests"][0], layer.digest);
        assert_eq!(a.manifest.config.media_type, WASM_CONFIG);
        assert!(artifact(bytes::Bytes::from_static(b"not wasm"), "").is_none());
    }

    #[test]
    fn container_images_are_refused_with_their_layer_types() {
        let mut m = OciImageManifest::default();
        m.layers.push(OciDescriptor {
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            ..OciDescriptor::default()
        });
        let e = wasm_layer(&m).unwrap_err();
        assert!(e.contains("not a WebAssembly image"), "{e}");
        assert!(e.contains("tar+gzip"), "{e}");
    }
}
