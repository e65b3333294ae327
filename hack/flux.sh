#!/usr/bin/env bash
# Builds Flux's source-controller and helm-controller from their Go modules, with the
# CRDs of the same releases, into a cache directory outside the repository keyed by the
# pinned versions. Prints that directory on the last line; it holds
#
#   source-controller  helm-controller  crds/*.yaml
#
#   hack/flux.sh               build both controllers if needed (cold: about 14 minutes)
#   hack/flux.sh --crds-only   only the CRDs of the same releases (seconds: two module zips,
#                              no build); the directory then holds crds/*.yaml alone
#
# The versions are pinned in hack/flux/helm-controller/go.mod and
# hack/flux/source-controller/go.mod: two helper modules, because the controllers replace
# github.com/opencontainers/go-digest with different commits. Both controllers have replace
# directives, which `go install pkg@version` refuses, so the helper modules repeat them and
# `go build` builds the controllers' main packages (each at its module root).
# See hack/flux/README.md for how to run them against kreload's control plane.
set -euo pipefail
trap 'rc=$?; log "failed (exit $rc) at line $LINENO: $BASH_COMMAND"' ERR

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mods="$here/flux"
controllers=(source-controller helm-controller)

log() { printf 'flux: %s\n' "$*" >&2; }

if ! command -v go >/dev/null 2>&1; then
  log "Go is not installed. Flux's controllers are built from source with Go (1.25 or newer):"
  log "install it from your distribution or https://go.dev/dl."
  exit 1
fi

crds_only=0
[[ "${1:-}" == --crds-only ]] && crds_only=1

version_of() { awk -v m="github.com/fluxcd/$1" '$1 == m { print $2; exit }' "$mods/$1/go.mod"; }
helm_version=$(version_of helm-controller)
source_version=$(version_of source-controller)
[[ -n "$helm_version" && -n "$source_version" ]] || { log "cannot read the pinned versions from $mods/*/go.mod"; exit 1; }
# Asked inside a helper module, so that a toolchain its go line selected would show here.
go_version=$(cd "$mods/helm-controller" && go env GOVERSION)
# As the controllers' own Dockerfiles build them (static, no cgo), and stripped.
build_flags=(-trimpath -ldflags "-s -w")
export CGO_ENABLED=0
# The key names the versions and also hashes the module files, the Go toolchain and the
# build flags, so changing a pin, a replace or a flag never reuses a stale build.
digest=$(cat "$mods"/helm-controller/go.{mod,sum} "$mods"/source-controller/go.{mod,sum} \
  <(echo "$go_version CGO_ENABLED=$CGO_ENABLED ${build_flags[*]}") \
  | sha256sum | cut -c1-12)
cache_root="${KRELOAD_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kreload}/flux"
dest="$cache_root/helm-$helm_version-source-$source_version-$digest"

# CRDs only: the controllers' module zips carry config/crd/bases, so `go mod download` of
# the two modules (checked against the helper modules' go.sum) is all it takes.
if [[ $crds_only == 1 ]]; then
  crds_dest="$cache_root/crds-helm-$helm_version-source-$source_version-$digest"
  if [[ -s "$crds_dest/crds/helm.toolkit.fluxcd.io_helmreleases.yaml" ]]; then
    log "cached: CRDs of helm-controller $helm_version, source-controller $source_version"
    echo "$crds_dest"
    exit 0
  fi
  mkdir -p "$cache_root"
  tmp=$(mktemp -d "$cache_root/.crds.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  chmod 755 "$tmp"
  mkdir "$tmp/crds"
  export GOFLAGS="-mod=readonly${GOFLAGS:+ $GOFLAGS}"
  for b in "${controllers[@]}"; do
    src=$(cd "$mods/$b" && go mod download -json "github.com/fluxcd/$b" | awk -F'"' '$2 == "Dir" { print $4; exit }')
    [[ -n "$src" ]] && compgen -G "$src/config/crd/bases/*.yaml" >/dev/null \
      || { log "no CRDs under ${src:-?}/config/crd/bases for $b"; exit 1; }
    cp "$src"/config/crd/bases/*.yaml "$tmp/crds/"
  done
  chmod u+w "$tmp"/crds/*.yaml
  rm -rf "$crds_dest"
  mv "$tmp" "$crds_dest"
  trap - EXIT
  log "CRDs of helm-controller $helm_version and source-controller $source_version in $crds_dest"
  echo "$crds_dest"
  exit 0
fi

have_all() {
  for b in "${controllers[@]}"; do [[ -x "$dest/$b" ]] || return 1; done
  [[ -s "$dest/crds/helm.toolkit.fluxcd.io_helmreleases.yaml" \
     && -s "$dest/crds/source.toolkit.fluxcd.io_helmrepositories.yaml" ]]
}

if have_all; then
  log "cached: helm-controller $helm_version, source-controller $source_version"
  echo "$dest"
  exit 0
fi

mkdir -p "$cache_root"
exec 9>"$cache_root/.lock"
flock 9   # two test runs at once build once
if have_all; then echo "$dest"; exit 0; fi

log "building helm-controller $helm_version and source-controller $source_version with $go_version (first run only; several minutes)"
tmp=$(mktemp -d "$cache_root/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/crds"
start=$SECONDS
export GOFLAGS="-mod=readonly${GOFLAGS:+ $GOFLAGS}"
for b in "${controllers[@]}"; do
  v=$(version_of "$b")
  (cd "$mods/$b" && go build "${build_flags[@]}" -o "$tmp/$b" "github.com/fluxcd/$b") \
    || { log "go build of $b $v failed (output above)"; exit 1; }
  # The CRDs ship in the same module zip, so they always match the binary.
  src=$(cd "$mods/$b" && go list -m -f '{{.Dir}}' "github.com/fluxcd/$b")
  [[ -n "$src" ]] && compgen -G "$src/config/crd/bases/*.yaml" >/dev/null \
    || { log "no CRDs under ${src:-?}/config/crd/bases for $b $v"; exit 1; }
  cp "$src"/config/crd/bases/*.yaml "$tmp/crds/"
  chmod u+w "$tmp"/crds/*.yaml   # the module cache is read-only; let rm -rf clean up
  "$tmp/$b" --help >/dev/null 2>&1 || { log "the built $b does not run"; exit 1; }
done
rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
log "built in $((SECONDS - start))s into $dest"
echo "$dest"
