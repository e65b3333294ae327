#!/usr/bin/env bash
# Builds the real Kubernetes control plane that kreload's tests run against (etcd,
# kube-apiserver, kube-controller-manager, kubectl) from Go modules, into a cache directory
# outside the repository keyed by the pinned versions. Prints that directory on the last line.
#
#   hack/controlplane.sh            build if needed, print the bin directory
#   KUBEBUILDER_ASSETS=/dir hack/controlplane.sh   use your own binaries (setup-envtest)
#
# The versions are pinned in hack/controlplane/go.mod (k8s.io/kubernetes and, through it,
# go.etcd.io/etcd/server/v3). k8s.io/kubernetes replaces its staging repositories with
# local paths, so that module replaces each of them with the published release of the same
# version; `go build` (not `go install`) is used because `go install pkg@version` refuses
# modules with replace directives.
set -euo pipefail
trap 'rc=$?; log "failed (exit $rc) at line $LINENO: $BASH_COMMAND"' ERR

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mod="$here/controlplane"
binaries=(etcd kube-apiserver kube-controller-manager kubectl)

log() { printf 'controlplane: %s\n' "$*" >&2; }

# Someone else's binaries (the controller-runtime envtest convention) win over ours.
if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
  for b in etcd kube-apiserver; do
    [[ -x "$KUBEBUILDER_ASSETS/$b" ]] || { log "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS has no executable $b"; exit 1; }
  done
  log "using binaries from KUBEBUILDER_ASSETS"
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  log "Go is not installed. The control plane is built from source with Go (1.24 or newer):"
  log "install it from your distribution or https://go.dev/dl, or point KUBEBUILDER_ASSETS"
  log "at a directory holding etcd, kube-apiserver, kube-controller-manager and kubectl."
  exit 1
fi

k8s_version=$(awk '$1 == "k8s.io/kubernetes" { print $2; exit }' "$mod/go.mod")
etcd_version=$(awk '$1 == "go.etcd.io/etcd/server/v3" { print $2; exit }' "$mod/go.mod")
[[ -n "$k8s_version" && -n "$etcd_version" ]] || { log "cannot read the pinned versions from $mod/go.mod"; exit 1; }
go_version=$(go env GOVERSION)
# The key names the versions and also hashes the module files and the Go toolchain, so
# changing a pin or a replace never reuses a stale build.
digest=$(cat "$mod/go.mod" "$mod/go.sum" <(echo "$go_version") | sha256sum | cut -c1-12)
cache_root="${KRELOAD_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kreload}/controlplane"
dest="$cache_root/k8s-$k8s_version-etcd-$etcd_version-$digest"

have_all() { for b in "${binaries[@]}"; do [[ -x "$dest/$b" ]] || return 1; done; }

if have_all; then
  log "cached: kubernetes $k8s_version, etcd $etcd_version"
  echo "$dest"
  exit 0
fi

mkdir -p "$cache_root"
exec 9>"$cache_root/.lock"
flock 9   # two test runs at once build once
if have_all; then echo "$dest"; exit 0; fi

log "building kubernetes $k8s_version and etcd $etcd_version with $go_version (first run only; several minutes)"
tmp=$(mktemp -d "$cache_root/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
minor=${k8s_version#v1.}; minor=${minor%%.*}
ldflags="-s -w \
 -X k8s.io/component-base/version.gitVersion=$k8s_version \
 -X k8s.io/component-base/version.gitMajor=1 \
 -X k8s.io/component-base/version.gitMinor=$minor \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/client-go/pkg/version.gitVersion=$k8s_version"
start=$SECONDS
cd "$mod"
export GOFLAGS="-mod=readonly${GOFLAGS:+ $GOFLAGS}"
go build -trimpath -ldflags "$ldflags" -o "$tmp/etcd" go.etcd.io/etcd/server/v3 \
  || { log "go build of etcd $etcd_version failed (output above)"; exit 1; }
for b in kube-apiserver kube-controller-manager kubectl; do
  go build -trimpath -ldflags "$ldflags" -o "$tmp/$b" "k8s.io/kubernetes/cmd/$b" \
    || { log "go build of $b $k8s_version failed (output above)"; exit 1; }
done
# Read each version whole before printing it: `etcd --version | head -1` under pipefail
# fails with SIGPIPE (141) whenever head exits first, which threw away whole builds.
"$tmp/kube-apiserver" --version >&2 || { log "the built kube-apiserver does not run"; exit 1; }
etcd_says=$("$tmp/etcd" --version) || { log "the built etcd does not run"; exit 1; }
printf '%s\n' "${etcd_says%%$'\n'*}" >&2
rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
log "built in $((SECONDS - start))s into $dest"
echo "$dest"
