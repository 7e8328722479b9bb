//! wasmkube's node agent: the kubelet of a cluster whose containers are WebAssembly instances.
//!
//! - [`wasm`] runs one container: engine, compile cache, pod network, limits, exit codes.
//!   Start at [`wasm::ContainerRuntime::run`].
//! - [`images`] resolves `image:` references to WebAssembly bytes: the built-in catalog
//!   (`wasmkube/web`, `toolbox`, `crash`, `stress`) and `file://` paths behind a flag.

pub mod images;
pub mod node;
pub mod wasm;
