"""`kubectl port-forward` through the official Python client (WebSocket v4.channel.k8s.io
with `?ports=`, the kubelet's channel form).

Usage: portforward.py KUBECONFIG. Fetches `/` of pod `pf-web` (wasmkube/web, port 80)
through a forward and prints "python port-forward: ok" when it answers 200; then forwards
a port nobody listens on and prints the error the node reported.
"""

import sys
import time

from kubernetes import client, config
from kubernetes.stream import portforward


def fetch(v1: client.CoreV1Api, pod: str, port: int) -> tuple:
    pf = portforward(
        v1.connect_get_namespaced_pod_portforward, pod, "default", ports=str(port),
    )
    sock = pf.socket(port)
    sock.settimeout(20)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: pod\r\nConnection: close\r\n\r\n")
    reply = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        reply += chunk
    sock.close()
    return reply, pf.error(port)


def main() -> None:
    config.load_kube_config(sys.argv[1])
    pod, port = "pf-web", 80
    v1 = client.CoreV1Api()
    reply, error = fetch(v1, pod, port)
    assert reply.startswith(b"HTTP/1.1 200"), (reply[:200], error)
    print("python port-forward: ok")
    # The node reports a refused port as soon as the WebSocket opens, as the kubelet does.
    pf = portforward(
        v1.connect_get_namespaced_pod_portforward, pod, "default", ports="9999",
    )
    deadline = time.time() + 10
    while pf.error(9999) is None and time.time() < deadline:
        time.sleep(0.05)
    print("python port-forward error:", pf.error(9999))


if __name__ == "__main__":
    main()
