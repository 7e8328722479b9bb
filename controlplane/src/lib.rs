//! wasmkube's control plane: the store, the registry of served kinds, the API server and the
//! controllers that run inside it, and the image store its distribution API (`/v2/`) serves.
//!
//! Start one with [`server::ControlPlane::start`]; everything else talks to it over HTTP, like
//! any Kubernetes client.

pub mod apiserver;
pub mod controllers;
pub mod images;
pub mod registry;
pub mod scheduler;
pub mod server;
pub mod store;
pub mod telemetry;
