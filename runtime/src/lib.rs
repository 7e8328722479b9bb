//! wasmkube's node agent: the kubelet of a cluster whose containers are WebAssembly instances.
//!
//! - [`node`] is the agent itself: registers the Node, renews its Lease, watches the pods bound
//!   to it and runs one worker per pod (sandbox, containers, status, events, logs). Start at
//!   [`node::run`].
//! - [`wasm`] runs one container: engine, compile cache, pod network, limits, exit codes.
//!   Start at [`wasm::ContainerRuntime::run`].
//! - [`images`] resolves `image:` references to WebAssembly bytes: the built-in catalog
//!   (`wasmkube/web`, `toolbox`, `crash`, `stress`) and `file://` paths behind a flag.

pub mod images;
pub mod node;
pub mod wasm;
