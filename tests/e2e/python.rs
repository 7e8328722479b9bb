//! The official Kubernetes Python client (`kubernetes` from PyPI) against the API server: create,
//! list with a label selector, watch, patch, delete and NotFound (`tests/python/client.py`).

use crate::support::{Cluster, OutputExt, python_path};

#[test]
fn python_client_creates_lists_watches_and_deletes() {
    let Some(python) = python_path("python::python_client_creates_lists_watches_and_deletes")
    else {
        return;
    };
    let cluster = Cluster::start();
    let out = cluster.python_script(&python, "client.py");
    assert!(
        out.status.success(),
        "tests/python/client.py failed: {}\n--- server stderr (tail)\n{}",
        out.describe(),
        cluster.server_log_tail()
    );
    assert!(
        out.stdout_text().lines().any(|l| l == "python client: ok"),
        "no success line: {}",
        out.describe()
    );
}
