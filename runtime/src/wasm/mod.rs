//! The WebAssembly execution layer of the node agent: containers as wasmtime instances.
//!
//! Start reading at [`ContainerRuntime::run`] in `instance.rs`: a [`ContainerSpec`] (image,
//! argv, env, ephemeral root, mounts, pod IP, memory limit, output sinks, stop token) goes in,
//! an [`Exit`] (code, reason, message) comes out. Around it:
//!
//! - `engine.rs`: the process's one [`WasmEngine`] (component model, async, epoch
//!   interruption with a 10 ms ticker, pooling allocator sized by [`EngineConfig`]);
//! - `executor.rs`: [`GuestExecutor`], the tokio runtime a node's guests run on, sized by
//!   `--node-cpu`;
//! - `cache.rs`: [`CompileCache`], compiled images by digest in memory and as `.cwasm` on disk;
//! - `http.rs`: `wasi:http` handler components, served by the node one instance per request;
//! - `net/`: the pod network, shadowed `wasi:sockets/tcp` and `udp` that make `localhost`
//!   the pod IP, map low ports when needed, and apply the egress policy ([`PodNetwork`]);
//! - `exit.rs`: [`Exit`], how a run ends in Kubernetes' terms (codes, reasons, messages);
//! - `limits.rs`: the memory limiter whose denied-grow flag means `OOMKilled`;
//! - `cpu.rs`: CPU time per container, `requests.cpu` as a fair share and `limits.cpu` as a
//!   quota, decided at each epoch tick;
//! - `output.rs`: [`OutputSink`], where stdout and stderr go; `stdin.rs`: [`StdinPipe`],
//!   where stdin comes from.

mod cache;
mod cpu;
mod engine;
mod executor;
mod exit;
mod http;
mod instance;
mod limits;
mod net;
mod output;
mod stdin;

use std::path::PathBuf;

pub use cache::{CacheStats, CompileCache, Prepared, ProgramKind};
pub use cpu::{CPU_PERIOD, CpuShare, process_cpu_time, thread_cpu_time};
pub use engine::{EngineConfig, WasmEngine};
pub use executor::GuestExecutor;
pub use exit::{EXIT_KILLED, EXIT_START_ERROR, EXIT_TRAP, Exit};
pub use instance::{ContainerRuntime, ContainerSpec, Mount};
pub use limits::Usage;
pub use net::{
    Ipv4Cidr, MAPPED_PORT_BASE, POD_RANGE, PodCluster, PodNetwork, Route, ServiceEntry,
    ServiceTable, VirtualPort, low_ports_bindable,
};
pub use output::{Discard, LogFile, MemorySink, OutputSink};
pub use stdin::StdinPipe;

/// Everything that can go wrong before a guest runs. (Once it runs, the outcome is an
/// [`Exit`], never an error.)
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Building the engine, its ticker or its linkers failed.
    #[error("wasm engine: {0}")]
    Engine(String),
    /// The image is not a WebAssembly module or component.
    #[error("image {image} is not WebAssembly: {detail}")]
    NotWasm {
        /// The image name.
        image: String,
        /// What the bytes look like instead.
        detail: String,
    },
    /// wasmtime refused to compile the image.
    #[error("compiling image {image} failed: {message}")]
    Compile {
        /// The image name.
        image: String,
        /// wasmtime's error.
        message: String,
    },
    /// The image imports something the node does not provide.
    #[error("image {image} cannot be linked: {message}")]
    Link {
        /// The image name.
        image: String,
        /// wasmtime's error, naming the missing import.
        message: String,
    },
    /// The image has nothing to run.
    #[error("image {image} has no entry point: {detail}")]
    NoEntryPoint {
        /// The image name.
        image: String,
        /// What was expected.
        detail: String,
    },
    /// The compile cache directory is unusable.
    #[error("compile cache {path}")]
    Cache {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A mount path is not acceptable.
    #[error("invalid mount path {guest:?}: {reason}")]
    InvalidMount {
        /// The path as given.
        guest: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A root or volume directory could not be opened.
    #[error("opening {path} for the container: {message}")]
    Sandbox {
        /// The host directory.
        path: PathBuf,
        /// Why.
        message: String,
    },
}
