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

# The install tests (tests/e2e/install) use real Helm, real cert-manager and Flux's CRDs;
# the GitOps tests (tests/e2e/gitops) run Flux's source-controller and helm-controller. All
# are built or fetched from Go modules and cached like the control plane (the Flux
# controllers' first build takes minutes; hack/flux.sh prints its time).
step "helm, cert-manager, Flux controllers, CSI driver CRDs"
start=$SECONDS
KRELOAD_HELM=$(bash hack/helm.sh | tail -n 1)/helm
KRELOAD_CERTMANAGER_DIR=$(bash hack/certmanager.sh | tail -n 1)
KRELOAD_FLUX_DIR=$(bash hack/flux.sh | tail -n 1)
KRELOAD_FLUX_CRDS=$KRELOAD_FLUX_DIR/crds
# The CSI tests (tests/e2e/csi.rs) install the Secrets Store CSI Driver's CRDs.
KRELOAD_CSI_CRDS=$(bash hack/csi.sh | tail -n 1)/crds
export KRELOAD_HELM KRELOAD_CERTMANAGER_DIR KRELOAD_FLUX_DIR KRELOAD_FLUX_CRDS KRELOAD_CSI_CRDS
# Debian packages the install tests use: umoci assembles and unpacks the image, runc runs it,
# iproute2's `ip netns` gives kreload an address the API server can reach as a Service
# endpoint. Installed when missing (a fresh machine; root, as CI is).
missing=()
command -v umoci >/dev/null 2>&1 || missing+=(umoci)
command -v runc >/dev/null 2>&1 || missing+=(runc)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
if ((${#missing[@]})) && [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} (apt-get)"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
echo "tools ready in $((SECONDS - start))s"

step "tree shape (hack/shape.py)"
python3 hack/shape.py

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --features e2e --locked -- -D warnings

# The e2e feature turns on the end-to-end tests; plain `cargo test` runs the rest.
step "cargo test (unit, admission server, CLI, end-to-end)"
cargo test --workspace --all-targets --features e2e --locked
