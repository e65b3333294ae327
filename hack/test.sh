#!/usr/bin/env bash
# Runs every check and test kreload has: formatting, clippy, unit tests, and the end-to-end
# tests against a real control plane (built on the first run by hack/controlplane.sh and
# cached under ~/.cache/kreload; set KUBEBUILDER_ASSETS to use your own binaries).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { current=$*; printf '\n==> %s\n' "$*"; }
current="start"
trap 'rc=$?; printf "\nhack/test.sh: step \"%s\" failed (exit %s)\n" "$current" "$rc" >&2' ERR

step "control plane binaries"
start=$SECONDS
KUBEBUILDER_ASSETS=$(bash hack/controlplane.sh | tail -n 1)
export KUBEBUILDER_ASSETS
echo "control plane ready in $((SECONDS - start))s: $KUBEBUILDER_ASSETS"

step "tree shape (hack/shape.py)"
python3 hack/shape.py

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --features e2e --locked -- -D warnings

# The e2e feature turns on the end-to-end tests; plain `cargo test` runs the rest.
step "cargo test (unit, admission server, CLI, end-to-end)"
cargo test --workspace --all-targets --features e2e --locked
