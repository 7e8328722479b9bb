//! wasmkube's control plane: the store, the registry of served kinds, the API server and the
//! controllers that run inside it.
//!
//! Start one with [`server::ControlPlane::start`]; everything else talks to it over HTTP, like
//! any Kubernetes client.

pub mod apiserver;
pub mod controllers;
pub mod registry;
pub mod server;
pub mod store;
