//! wasmkube control plane.
