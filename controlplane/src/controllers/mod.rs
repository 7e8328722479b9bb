//! Controllers that run inside the control plane process.
//!
//! Most controllers (from the scheduler issue on) talk to the API like any client; the
//! namespace controller is owned by the API server itself, as kube-apiserver's namespace
//! lifecycle is, and works on the [`ApiState`](crate::apiserver::ApiState) directly.

pub mod binder;
pub mod namespace;
