#!/usr/bin/env bash
# The demo: a local control plane (built on the first run, then cached), kreload serving
# and registered against it, a Deployment and a ConfigMap, an edit, and the rollout that
# follows. Runs until Ctrl-C so you can look around with the kubectl command it prints;
# pass --exit to stop right after the reload.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
assets=$(bash hack/controlplane.sh | tail -n 1)
cargo build --quiet --bin kreload
exec target/debug/kreload demo --assets "$assets" "$@"
