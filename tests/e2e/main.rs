//! End-to-end tests: each starts the real `wasmkube server` on a random loopback port with a
//! temporary data directory (`support::Cluster`) and drives it the way a user would, with the real
//! kubectl 1.37 and Python client from `.venv` (see `scripts/test.sh`), the `wasmkube` CLI, and raw
//! HTTP for the error paths no client reaches (`http.rs`). Start reading at `support.rs`.
//!
//! Outside CI a missing kubectl or Python client skips those tests with a printed line; with
//! `CI=true` it fails them.

mod batch;
mod cli;
mod errors;
mod exec;
mod guests;
mod hostports;
mod http;
mod images;
mod kubectl;
mod lifecycle;
mod metrics;
mod nodes;
mod pods;
mod portforward;
mod python;
mod registry;
mod restart;
mod server;
mod services;
mod storage;
mod support;
mod workloads;
