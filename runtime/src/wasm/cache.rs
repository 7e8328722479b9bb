//! The compile cache: an image's WebAssembly compiled once per engine configuration.
//!
//! Cranelift takes ~130 ms for a 265 KB component here; loading the precompiled `.cwasm`
//! takes ~0.2 ms and instantiating a pre-linked [`Prepared`] ~20 µs. So:
//!
//! - on disk, `<dir>/<engine-hash>/<digest>.cwasm`, surviving agent restarts; the engine hash
//!   is wasmtime's `precompile_compatibility_hash` (version, target, codegen settings), so an
//!   upgraded or reconfigured engine never loads an incompatible artifact;
//! - in memory, one [`Prepared`] per digest (the component linked against the node's linker),
//!   so the second start of an image costs only the instantiation.
//!
//! Concurrent starts of the same image compile it once.

use std::collections::HashMap;
use std::hash::Hasher;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use sha2::{Digest as _, Sha256};
use tokio::sync::OnceCell;
use wasmtime::component::Component;
use wasmtime::{Engine, Module};
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use super::Error;
use super::engine::WasmEngine;
use super::instance::{ComponentState, Linkers, ModuleState};
use crate::images::Image;

/// What kind of program an image holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgramKind {
    /// A `wasi:cli/command` component (wasip2).
    Component,
    /// A core module with a `_start` export (wasip1).
    Module,
}

/// An image compiled and linked, ready to instantiate.
pub struct Prepared {
    image: String,
    digest: String,
    pub(crate) program: Program,
}

/// The pre-linked program of a [`Prepared`].
pub(crate) enum Program {
    Command(CommandPre<ComponentState>),
    /// A `wasi:http/incoming-handler` component, served by the node (`http.rs`).
    Http(ProxyPre<ComponentState>),
    Module(wasmtime::InstancePre<ModuleState>),
}

impl Prepared {
    /// The image name it was built from.
    pub fn image(&self) -> &str {
        &self.image
    }

    /// The digest of the image's bytes.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Component or core module.
    pub fn kind(&self) -> ProgramKind {
        match self.program {
            Program::Command(_) | Program::Http(_) => ProgramKind::Component,
            Program::Module(_) => ProgramKind::Module,
        }
    }
}

/// Compiled code, before linking.
enum Compiled {
    Component(Component),
    Module(Module),
}

/// Compiled images, in memory and (optionally) on disk.
pub struct CompileCache {
    engine: Engine,
    /// `<cache dir>/<engine hash>`, or `None` for a memory-only cache.
    dir: Option<PathBuf>,
    entries: Mutex<HashMap<String, Arc<OnceCell<Arc<Prepared>>>>>,
    stats: Arc<CacheStats>,
}

/// How the cache answered so far (the node's `/metrics`).
#[derive(Debug, Default)]
pub struct CacheStats {
    /// Images found prepared in memory.
    pub memory_hits: std::sync::atomic::AtomicU64,
    /// Images loaded from a `.cwasm` on disk.
    pub disk_hits: std::sync::atomic::AtomicU64,
    /// Images compiled.
    pub compiles: std::sync::atomic::AtomicU64,
}

impl CompileCache {
    /// A cache for `engine`, persisting `.cwasm` files under `dir` when given.
    pub fn new(engine: &WasmEngine, dir: Option<&Path>) -> Result<CompileCache, Error> {
        let engine = engine.engine().clone();
        let dir = match dir {
            Some(dir) => {
                let dir = dir.join(engine_hash(&engine));
                std::fs::create_dir_all(&dir).map_err(|source| Error::Cache {
                    path: dir.clone(),
                    source,
                })?;
                Some(dir)
            }
            None => None,
        };
        Ok(CompileCache {
            engine,
            dir,
            entries: Mutex::default(),
            stats: Arc::default(),
        })
    }

    /// Hits and misses so far.
    pub fn stats(&self) -> &CacheStats {
        &self.stats
    }

    /// The directory holding this engine's `.cwasm` files, if the cache persists.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The prepared program of an image: from memory, else from disk, else compiled.
    pub(crate) async fn get(
        &self,
        image: &Image,
        linkers: &Linkers,
    ) -> Result<Arc<Prepared>, Error> {
        let cell = {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            entries.entry(image.digest.clone()).or_default().clone()
        };
        if cell.initialized() {
            self.stats.memory_hits.fetch_add(1, Ordering::Relaxed);
        }
        cell.get_or_try_init(|| async {
            let compiled = self.load_or_compile(image).await?;
            link(image, compiled, linkers).map(Arc::new)
        })
        .await
        .cloned()
    }

    /// Drops an image's in-memory entry (the `.cwasm` stays on disk).
    pub fn forget(&self, digest: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(digest);
    }

    async fn load_or_compile(&self, image: &Image) -> Result<Compiled, Error> {
        let kind = detect(image)?;
        let engine = self.engine.clone();
        let bytes = image.bytes.clone();
        let name = image.name.clone();
        let path = self
            .dir
            .as_ref()
            .map(|dir| dir.join(format!("{}.cwasm", image.digest.replace(':', "-"))));
        let stats = self.stats.clone();
        let work = move || -> Result<Compiled, Error> {
            if let Some(path) = &path
                && path.is_file()
            {
                let started = Instant::now();
                match deserialize(&engine, kind, path) {
                    Ok(compiled) => {
                        stats.disk_hits.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(image = %name, load_us = started.elapsed().as_micros() as u64, "loaded precompiled image");
                        return Ok(compiled);
                    }
                    // A stale or damaged artifact is not fatal: compile again and replace it.
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "ignoring unusable .cwasm")
                    }
                }
            }
            let started = Instant::now();
            let compiled = compile(&engine, kind, &name, &bytes)?;
            stats.compiles.fetch_add(1, Ordering::Relaxed);
            tracing::info!(image = %name, kind = ?kind, compile_ms = started.elapsed().as_millis() as u64, "compiled image");
            if let Some(path) = &path {
                let serialized = match &compiled {
                    Compiled::Component(c) => c.serialize(),
                    Compiled::Module(m) => m.serialize(),
                };
                match serialized
                    .map_err(|e| e.to_string())
                    .and_then(|b| write_atomically(path, &b).map_err(|e| e.to_string()))
                {
                    Ok(()) => {}
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "could not persist compiled image")
                    }
                }
            }
            Ok(compiled)
        };
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| Error::Compile {
                image: image.name.clone(),
                message: e.to_string(),
            })?
    }
}

/// Recognises a component or a core module from the header, before wasmtime sees the bytes
/// (with its `wat` feature, wasmtime would try to parse anything else as text and report a
/// confusing syntax error).
fn detect(image: &Image) -> Result<ProgramKind, Error> {
    let bytes = &image.bytes[..];
    let not_wasm = |detail: String| Error::NotWasm {
        image: image.name.clone(),
        detail,
    };
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        let shown: Vec<String> = bytes.iter().take(4).map(|b| format!("{b:02x}")).collect();
        return Err(not_wasm(format!(
            "{} bytes, starting with [{}] instead of the \\0asm magic",
            bytes.len(),
            shown.join(" ")
        )));
    }
    match [bytes[4], bytes[5], bytes[6], bytes[7]] {
        [1, 0, 0, 0] => Ok(ProgramKind::Module),
        [0x0d, 0, 1, 0] => Ok(ProgramKind::Component),
        [v0, v1, l0, l1] => Err(not_wasm(format!(
            "unsupported WebAssembly version {} (layer {})",
            u16::from_le_bytes([v0, v1]),
            u16::from_le_bytes([l0, l1])
        ))),
    }
}

fn compile(
    engine: &Engine,
    kind: ProgramKind,
    name: &str,
    bytes: &[u8],
) -> Result<Compiled, Error> {
    let err = |e: wasmtime::Error| Error::Compile {
        image: name.to_string(),
        message: format!("{e:#}"),
    };
    Ok(match kind {
        ProgramKind::Component => Compiled::Component(Component::new(engine, bytes).map_err(err)?),
        ProgramKind::Module => Compiled::Module(Module::new(engine, bytes).map_err(err)?),
    })
}

#[allow(
    unsafe_code,
    reason = "loading a precompiled .cwasm is unsafe in wasmtime's API; it is the point of the cache"
)]
fn deserialize(engine: &Engine, kind: ProgramKind, path: &Path) -> wasmtime::Result<Compiled> {
    // SAFETY: wasmtime requires that the file was produced by `serialize` of a compatible
    // engine and is not modified while mapped. We only load files this cache wrote (written to
    // a temporary name and renamed into place, so never partially) under a directory named by
    // the engine's compatibility hash; wasmtime additionally checks the version and config
    // header and refuses mismatches. The cache directory belongs to the agent: whoever can write
    // there can already run code as the agent.
    unsafe {
        Ok(match kind {
            ProgramKind::Component => {
                Compiled::Component(Component::deserialize_file(engine, path)?)
            }
            ProgramKind::Module => Compiled::Module(Module::deserialize_file(engine, path)?),
        })
    }
}

fn link(image: &Image, compiled: Compiled, linkers: &Linkers) -> Result<Prepared, Error> {
    let no_entry = |detail: String| Error::NoEntryPoint {
        image: image.name.clone(),
        detail,
    };
    let program = match compiled {
        Compiled::Component(component) => {
            let pre = linkers
                .component
                .instantiate_pre(&component)
                .map_err(|e| Error::Link {
                    image: image.name.clone(),
                    message: format!("{e:#}"),
                })?;
            match CommandPre::new(pre.clone()) {
                Ok(command) => Program::Command(command),
                Err(run) => match ProxyPre::new(pre) {
                    Ok(proxy) => Program::Http(proxy),
                    Err(_) => {
                        return Err(no_entry(format!(
                            "the component exports neither wasi:cli/run nor \
                             wasi:http/incoming-handler ({run:#})"
                        )));
                    }
                },
            }
        }
        Compiled::Module(module) => {
            match module.get_export("_start") {
                Some(wasmtime::ExternType::Func(f))
                    if f.params().len() == 0 && f.results().len() == 0 => {}
                Some(_) => {
                    return Err(no_entry(
                        "`_start` is not a function taking and returning nothing".into(),
                    ));
                }
                None => return Err(no_entry("the module has no `_start` export".into())),
            }
            let pre = linkers
                .module
                .instantiate_pre(&module)
                .map_err(|e| Error::Link {
                    image: image.name.clone(),
                    message: format!("{e:#}"),
                })?;
            Program::Module(pre)
        }
    };
    Ok(Prepared {
        image: image.name.clone(),
        digest: image.digest.clone(),
        program,
    })
}

/// Writes a file so readers see either nothing or all of it.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!(
        "tmp-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let tmp = PathBuf::from(tmp.to_string_lossy().replace(['(', ')'], ""));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// A short, stable name for an engine configuration: the first 16 hex digits of the sha256
/// of wasmtime's compatibility hash input.
fn engine_hash(engine: &Engine) -> String {
    struct Sha(Sha256);
    impl Hasher for Sha {
        fn finish(&self) -> u64 {
            0 // unused: the digest is read from the inner state
        }
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
    }
    let mut hasher = Sha(Sha256::new());
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
    hasher
        .0
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}
