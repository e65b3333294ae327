#!/usr/bin/env bash
# Builds cert-manager for kreload's tests from Go modules, into a cache directory outside the
# repository keyed by the pinned version. Prints that directory on the last line:
#
#   <dir>/cert-manager-lite   `controller` and `cainjector` subcommands (hack/certmanager/README.md)
#   <dir>/crds/*.yaml         cert-manager's CustomResourceDefinitions, plain YAML
#
#   hack/certmanager.sh       build if needed, print the directory
#
# The version is pinned in hack/certmanager/go.mod (github.com/cert-manager/cert-manager, and
# through it the k8s.io libraries). cert-manager's cmd/ modules are not published, so
# hack/certmanager/main.go wires its controllers from the pkg/ packages; the CRDs are copied
# from deploy/crds/ in the same module and checked to parse as CustomResourceDefinitions.
set -euo pipefail
trap 'rc=$?; log "failed (exit $rc) at line $LINENO: $BASH_COMMAND"' ERR

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mod="$here/certmanager"
module=github.com/cert-manager/cert-manager
binary=cert-manager-lite

log() { printf 'certmanager: %s\n' "$*" >&2; }

if ! command -v go >/dev/null 2>&1; then
  log "Go is not installed. cert-manager is built from source with Go (1.26 or newer):"
  log "install it from your distribution or https://go.dev/dl."
  exit 1
fi

version=$(awk -v m="$module" '$1 == m { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' "$mod/go.mod")
[[ -n "$version" ]] || { log "cannot read the pinned $module version from $mod/go.mod"; exit 1; }
go_version=$(go env GOVERSION)
# The key names the version and also hashes the module files, the wiring and the Go
# toolchain, so changing a pin or main.go never reuses a stale build.
digest=$(cat "$mod/go.mod" "$mod/go.sum" "$mod"/*.go <(echo "$go_version") | sha256sum | cut -c1-12)
cache_root="${KRELOAD_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kreload}/certmanager"
dest="$cache_root/$version-$digest"

have_all() { [[ -x "$dest/$binary" && -f "$dest/crds/cert-manager.io_certificates.yaml" ]]; }

if have_all; then
  log "cached: cert-manager $version"
  echo "$dest"
  exit 0
fi

mkdir -p "$cache_root"
exec 9>"$cache_root/.lock"
flock 9   # two test runs at once build once
if have_all; then echo "$dest"; exit 0; fi

log "building cert-manager $version with $go_version (first run only; several minutes)"
tmp=$(mktemp -d "$cache_root/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"   # mktemp makes it private; the renamed directory is the cache entry
start=$SECONDS
cd "$mod"
export GOFLAGS="-mod=readonly${GOFLAGS:+ $GOFLAGS}"
go build -trimpath -ldflags "-s -w -X $module/pkg/util.AppVersion=$version" -o "$tmp/$binary" . \
  || { log "go build of $binary ($module $version) failed (output above)"; exit 1; }

src=$(go mod download -json "$module@$version" | awk -F'"' '$2 == "Dir" { print $4; exit }')
[[ -d "$src/deploy/crds" ]] || { log "$module@$version has no deploy/crds directory"; exit 1; }
mkdir "$tmp/crds"
cp "$src"/deploy/crds/*.yaml "$tmp/crds/"
chmod u+w "$tmp"/crds/*.yaml   # the module cache is read-only
"$tmp/$binary" check-crds "$tmp/crds" >&2 || { log "the CRDs of $module@$version do not parse (see above)"; exit 1; }

rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
log "built in $((SECONDS - start))s into $dest"
echo "$dest"
