#!/usr/bin/env bash
# Builds Helm (helm.sh/helm/v3, pinned in hack/helm/go.mod) from its Go module into a cache
# directory outside the repository, for linting, templating and packaging charts/kreload.
# Prints that directory on the last line.
#
#   hack/helm.sh                 build if needed, print the directory holding `helm`
#   HELM=/usr/bin/helm hack/helm.sh   use your own helm instead (its directory is printed)
#
# hack/helm/go.mod records Helm's command as a `tool`, so go.sum holds every module it
# needs and `go build` inside that module is reproducible. Helm's own go.mod has no replace
# directives; if a future version adds some, repeat them in hack/helm/go.mod.
set -euo pipefail
trap 'rc=$?; log "failed (exit $rc) at line $LINENO: $BASH_COMMAND"' ERR

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mod="$here/helm"

log() { printf 'helm: %s\n' "$*" >&2; }

if [[ -n "${HELM:-}" ]]; then
  [[ -x "$HELM" ]] || { log "HELM=$HELM is not an executable"; exit 1; }
  log "using $HELM"
  dirname "$HELM"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  log "Go is not installed. Helm is built from source with Go (1.26 or newer): install it"
  log "from your distribution or https://go.dev/dl, or set HELM to a helm binary."
  exit 1
fi

helm_version=$(awk '$1 == "helm.sh/helm/v3" { print $2; exit }' "$mod/go.mod")
client_go=$(awk '$1 == "k8s.io/client-go" { print $2; exit }' "$mod/go.mod")
[[ -n "$helm_version" && -n "$client_go" ]] || { log "cannot read the pinned versions from $mod/go.mod"; exit 1; }
go_version=$(go env GOVERSION)
# The key hashes the module files and the Go toolchain, so changing a pin never reuses a
# stale build.
digest=$(cat "$mod/go.mod" "$mod/go.sum" <(echo "$go_version") | sha256sum | cut -c1-12)
cache_root="${KRELOAD_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kreload}/helm"
dest="$cache_root/$helm_version-$digest"

if [[ -x "$dest/helm" ]]; then
  log "cached: helm $helm_version"
  echo "$dest"
  exit 0
fi

mkdir -p "$cache_root"
exec 9>"$cache_root/.lock"
flock 9   # two runs at once build once
if [[ -x "$dest/helm" ]]; then echo "$dest"; exit 0; fi

log "building helm $helm_version with $go_version (first run only; a few minutes)"
tmp=$(mktemp -d "$cache_root/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# What Helm's Makefile sets for a release build. Without the k8sVersion pair, `helm template`
# would claim Kubernetes 1.20 as .Capabilities.KubeVersion; Helm derives it from client-go
# (v0.X.Y is Kubernetes 1.X).
k8s_minor=${client_go#v0.}; k8s_minor=${k8s_minor%%.*}
ldflags="-s -w \
 -X helm.sh/helm/v3/internal/version.version=$helm_version \
 -X helm.sh/helm/v3/internal/version.metadata= \
 -X helm.sh/helm/v3/internal/version.gitTreeState=clean \
 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 \
 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$k8s_minor \
 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 \
 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$k8s_minor"
start=$SECONDS
cd "$mod"
export GOFLAGS="-mod=readonly${GOFLAGS:+ $GOFLAGS}"
CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmp/helm" helm.sh/helm/v3/cmd/helm \
  || { log "go build of helm $helm_version failed (output above)"; exit 1; }
# Read the version whole before printing it (no `| head` under pipefail).
says=$("$tmp/helm" version --short) || { log "the built helm does not run"; exit 1; }
log "built $says"
rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
log "built in $((SECONDS - start))s into $dest"
echo "$dest"
