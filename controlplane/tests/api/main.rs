//! The API server over a real socket: each test starts a control plane in-process on a random
//! loopback port with a temporary data directory ([`support::Cluster`]) and talks to it with
//! the kube client, as any Kubernetes client would. Start reading at `support.rs`.

mod budgets;
mod cascade;
mod daemonsets;
mod ephemeral;
mod jobs;
mod nodes;
mod statefulsets;
mod storage;
mod streams;
mod support;
