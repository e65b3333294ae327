#!/usr/bin/env bash
# Fetches the CRDs of the Secrets Store CSI Driver (SecretProviderClass and
# SecretProviderClassPodStatus) for kreload's --enable-csi-integration tests, from the
# driver's Go module, and caches them outside the repository. Prints that directory on the
# last line; it holds
#
#   crds/secrets-store.csi.x-k8s.io_secretproviderclasses.yaml
#   crds/secrets-store.csi.x-k8s.io_secretproviderclasspodstatuses.yaml
#
# The module zip carries config/crd/bases, so `go mod download` (checked against the Go
# checksum database, and here against the pinned sum) is all it takes: seconds, no build.
# v1.5.3 is pinned because the proxy serves it; v1.5.4 is refused (its go.mod has no
# entry in sum.golang.org: "verifying go.mod: ... 404 Not Found").
set -euo pipefail
trap 'rc=$?; log "failed (exit $rc) at line $LINENO: $BASH_COMMAND"' ERR

module=sigs.k8s.io/secrets-store-csi-driver
version=v1.5.3
sum="h1:SBsYaGmuQN9EIHwi32gaf0k94hyjjeaQ5eWeyqC0lWQ="
crds=(secrets-store.csi.x-k8s.io_secretproviderclasses.yaml
      secrets-store.csi.x-k8s.io_secretproviderclasspodstatuses.yaml)

log() { printf 'csi: %s\n' "$*" >&2; }

cache_root="${KRELOAD_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kreload}/csi"
dest="$cache_root/$version"

have_all() {
  for c in "${crds[@]}"; do [[ -s "$dest/crds/$c" ]] || return 1; done
}

if have_all; then
  log "cached: CRDs of $module $version"
  echo "$dest"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  log "Go is not installed. The CSI driver's CRDs are fetched with \`go mod download\`:"
  log "install Go from your distribution or https://go.dev/dl."
  exit 1
fi

mkdir -p "$cache_root"
tmp=$(mktemp -d "$cache_root/.crds.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
mkdir "$tmp/crds"
# Outside any module, so no go.mod around the caller changes what is downloaded.
if ! json=$(cd "$tmp" && GOFLAGS=-mod=mod go mod download -json "$module@$version" 2>&1); then
  log "go mod download $module@$version failed:"
  printf '%s\n' "$json" >&2
  exit 1
fi
got_sum=$(awk -F'"' '$2 == "Sum" { print $4; exit }' <<<"$json")
src=$(awk -F'"' '$2 == "Dir" { print $4; exit }' <<<"$json")
if [[ "$got_sum" != "$sum" ]]; then
  log "$module@$version has sum ${got_sum:-none}, want $sum; refusing it"
  printf '%s\n' "$json" >&2
  exit 1
fi
for c in "${crds[@]}"; do
  [[ -s "$src/config/crd/bases/$c" ]] || { log "no $c under ${src:-?}/config/crd/bases"; exit 1; }
  cp "$src/config/crd/bases/$c" "$tmp/crds/"
done
chmod u+w "$tmp"/crds/*.yaml   # the module cache is read-only; let rm -rf clean up
rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
log "CRDs of $module $version in $dest"
echo "$dest"
