#!/usr/bin/env bash
# Builds wasmkube, starts `wasmkube up` on a scratch data dir, applies examples/demo.yaml and
# shows what the cluster holds; the cluster keeps running until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2 >/dev/null 2>&1 || echo "note: could not add wasm32-wasip2 (not needed yet)"
echo "== building wasmkube (release; the first build takes a few minutes)"
cargo build --release --bin wasmkube
bin=target/release/wasmkube
data=${WASMKUBE_DEMO_DIR:-$(mktemp -d /tmp/wasmkube-demo.XXXXXX)}
log=$data/up.log
mkdir -p "$data"

"$bin" up --port "${WASMKUBE_PORT:-0}" --data-dir "$data" >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 1 200); do
  grep -q "ready at" "$log" && break
  kill -0 $pid 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.05
done
cat "$log"
export KUBECONFIG=$data/kubeconfig

echo "== wasmkube apply -f examples/demo.yaml"
"$bin" apply -f examples/demo.yaml
echo "== wasmkube get deploy,svc,cm -n demo"
"$bin" get deploy,svc,cm -n demo
echo "== wasmkube scale deployment/web --replicas 2 -n demo"
"$bin" scale deployment/web --replicas 2 -n demo
"$bin" get deploy web -n demo -o wide
echo "== a pod: two containers meeting on localhost:80 (examples/pod.yaml)"
"$bin" apply -f examples/pod.yaml
for _ in $(seq 1 100); do
  "$bin" get pod web-and-client -o wide 2>/dev/null | grep -q Running && break
  sleep 0.1
done
"$bin" get pods -o wide
sleep 2
echo "== wasmkube logs web-and-client -c client (the web container's page, fetched over localhost)"
"$bin" logs web-and-client -c client --tail 6
echo
wasm=${CARGO_TARGET_DIR:-target}/wasm-examples/wasm32-wasip2/release/web.wasm
echo "== wasmkube image import my-web:v1 $wasm (your own wasm; here a guest the build made)"
"$bin" image import my-web:v1 "$wasm"
"$bin" image ls
"$bin" apply -f - <<'YAML'
apiVersion: v1
kind: Pod
metadata:
  name: my-web
spec:
  containers:
  - name: web
    image: my-web:v1
YAML
for _ in $(seq 1 100); do
  "$bin" get pod my-web 2>/dev/null | grep -q Running && break
  sleep 0.1
done
"$bin" describe pod my-web | sed -n '/^Events:/,$p'
echo
echo "== a Service by name from a pod (cluster DNS; the ClusterIP is balanced in the socket layer)"
"$bin" apply -f - <<'YAML'
apiVersion: v1
kind: Pod
metadata:
  name: client
  namespace: demo
spec:
  restartPolicy: Never
  containers:
  - name: busybox
    image: busybox
    command: [sh, -c, "nslookup web.demo.svc.cluster.local; wget -qO- http://web | head -4"]
YAML
for _ in $(seq 1 100); do
  "$bin" get pod client -n demo 2>/dev/null | grep -q Completed && break
  sleep 0.1
done
"$bin" logs client -n demo
echo "== a LoadBalancer Service, answered on 127.0.0.1 by the first node (like k3s's servicelb)"
lb_port=${WASMKUBE_DEMO_LB_PORT:-18080}
"$bin" apply -f - <<YAML
apiVersion: v1
kind: Service
metadata:
  name: web-lb
  namespace: demo
spec:
  type: LoadBalancer
  selector: {app: web}
  ports:
  - port: $lb_port
    targetPort: 80
YAML
sleep 1
"$bin" get svc web-lb -n demo
if command -v curl >/dev/null; then
  curl -s "http://127.0.0.1:$lb_port/" | head -4 || true
fi
echo
echo "The cluster is running: export KUBECONFIG=$KUBECONFIG and use kubectl or wasmkube."
echo "Ctrl-C stops it."
wait $pid
