#!/usr/bin/env bash
# The demo: a local control plane (built on the first run, then cached), kreload serving
# and registered against it, a Deployment and a ConfigMap, an edit, and the rollout that
# follows. Runs until Ctrl-C so you can look around with the kubectl command it prints;
# pass --exit to stop right after the reload.
set -euo pipefail
trap 'rc=$?; echo "hack/demo.sh: failed (exit $rc) at line $LINENO: $BASH_COMMAND" >&2' ERR
cd "$(dirname "${BASH_SOURCE[0]}")/.."
assets=$(bash hack/controlplane.sh | tail -n 1)
# The demo (testenv/) runs kreload in-process; it is not part of the kreload binary.
cargo build --quiet --locked -p kreload-testenv --bin kreload-demo
exec "${CARGO_TARGET_DIR:-target}/debug/kreload-demo" --assets "$assets" "$@"
