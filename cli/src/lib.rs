//! wasmkube client verbs.
