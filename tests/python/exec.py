"""`kubectl exec` through the official Python client (WebSocket v4.channel.k8s.io).

Usage: exec.py KUBECONFIG. Expects a running pod `web` (wasmkube/web). Prints
"python exec: ok" when the output and exit codes are right.
"""

import sys

from kubernetes import client, config
from kubernetes.stream import stream


def main() -> None:
    config.load_kube_config(sys.argv[1])
    v1 = client.CoreV1Api()
    # The image's own command, output as one string.
    version = stream(
        v1.connect_get_namespaced_pod_exec, "web", "default",
        command=["web", "--version"], stdout=True, stderr=True, stdin=False, tty=False,
    )
    assert version.startswith("web (wasmkube)"), repr(version)
    # A toolbox applet with stdin, and its exit code from the status channel.
    resp = stream(
        v1.connect_get_namespaced_pod_exec, "web", "default",
        command=["sh", "-c", "read line; echo got-$line; exit 3"],
        stdout=True, stderr=True, stdin=True, tty=False, _preload_content=False,
    )
    resp.write_stdin("py\n")
    out = ""
    while resp.is_open():
        resp.update(timeout=1)
        out += resp.read_stdout()
    out += resp.read_stdout()
    assert "got-py" in out, repr(out)
    assert resp.returncode == 3, resp.returncode
    print("python exec: ok")


if __name__ == "__main__":
    main()
