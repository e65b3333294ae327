#!/usr/bin/env bash
# Builds kreload's container image without a container engine: a release build of the
# binary, then an OCI image layout assembled from scratch with umoci. Prints the layout
# directory on the last line.
#
#   hack/image.sh [DIR]      build into DIR (default target/image), tag = Cargo.toml version
#   KRELOAD_IMAGE_STATIC=1 hack/image.sh   link glibc statically (+crt-static): no libraries
#   KRELOAD_IMAGE_BINARY=target/debug/kreload hack/image.sh DIR   assemble around that binary,
#                            no cargo build (the test command does this with its debug build)
#   skopeo copy oci:target/image:0.1.0 docker://registry.example/kreload:0.1.0   to push
#
# The image holds only /kreload, the shared libraries `ldd` says it needs (taken from this
# machine, so build on the distribution you want to ship: Debian 12 for the Dockerfile's
# equivalent), the dynamic loader, /etc/passwd and /etc/group naming the non-root user
# 65532, and an empty /tmp. No shell, no CA roots: kreload only talks to the API server,
# whose CA comes from the service account mount or the kubeconfig.
#
# Needs: cargo, umoci (Debian: apt-get install umoci), ldd. Runs as root or, with
# `umoci --rootless`, as any user. Honours CARGO_TARGET_DIR and SOURCE_DATE_EPOCH.
set -euo pipefail
trap 'rc=$?; log "failed (exit $rc) at line $LINENO: $BASH_COMMAND"' ERR

log() { printf 'image: %s\n' "$*" >&2; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$root/target/image}
uid=65532

for tool in cargo umoci ldd; do
  command -v "$tool" >/dev/null 2>&1 || { log "$tool is not installed (umoci: apt-get install umoci)"; exit 1; }
done

version=$(cd "$root" && cargo metadata --no-deps --format-version 1 --locked \
  | sed -n 's/.*"name":"kreload","version":"\([^"]*\)".*/\1/p')
[[ -n "$version" ]] || { log "cannot read kreload's version from Cargo.toml"; exit 1; }
revision=$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)
# A fixed creation time keeps the layer and config digests stable for the same inputs.
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct 2>/dev/null || echo 0)}
created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)

target_dir=$(cd "$root" && cargo metadata --no-deps --format-version 1 --locked \
  | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
cargo_args=(build --release --locked --bin kreload)
bin="$target_dir/release/kreload"
if [[ "${KRELOAD_IMAGE_STATIC:-0}" == 1 ]]; then
  # Static glibc works for kreload (its TLS is rustls; glibc >= 2.34 has the files and dns
  # name services built in). An explicit --target keeps build scripts and proc-macros dynamic.
  host=$(rustc -vV | sed -n 's/^host: //p')
  export RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static"
  cargo_args+=(--target "$host")
  bin="$target_dir/$host/release/kreload"
fi
if [[ -n "${KRELOAD_IMAGE_BINARY:-}" ]]; then
  bin=$KRELOAD_IMAGE_BINARY
  log "using $bin (no cargo build)"
else
  log "cargo ${cargo_args[*]} (kreload $version)"
  (cd "$root" && cargo "${cargo_args[@]}") || { log "cargo build failed (output above)"; exit 1; }
fi
[[ -x "$bin" ]] || { log "no binary at $bin"; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/kreload-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"
mkdir -p "$rootfs/etc" "$rootfs/tmp"
chmod 1777 "$rootfs/tmp"
install -m 0755 "$bin" "$rootfs/kreload"

# Every library the binary loads, at the path the loader looks for it, plus the loader.
# `ldd` prints "name => /path (addr)" for libraries and "/path (addr)" for the loader.
libs=$(ldd "$bin" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' || true)
[[ -n "$libs" ]] || log "the binary is static; no libraries copied"
for lib in $libs; do
  mkdir -p "$rootfs$(dirname "$lib")"
  cp -L "$lib" "$rootfs$lib"   # the file itself, not the distribution's symlink
  log "library $lib"
done

printf 'root:x:0:0:root:/:/sbin/nologin\nnonroot:x:%s:%s:nonroot:/:/sbin/nologin\n' "$uid" "$uid" >"$rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:%s:\n' "$uid" >"$rootfs/etc/group"
find "$rootfs" -exec touch -h -d "@$epoch" {} +

rootless=()
[[ $(id -u) == 0 ]] || rootless=(--rootless)
rm -rf "$out"
mkdir -p "$(dirname "$out")"
umoci init --layout "$out"
umoci new --image "$out:$version"
# One layer holding the whole root filesystem (files owned by root, read-only to the user).
umoci insert "${rootless[@]}" --image "$out:$version" \
  --history.created "$created" --history.created_by "hack/image.sh" --history.comment "kreload $version" \
  "$rootfs" /
umoci config --image "$out:$version" \
  --created "$created" --architecture amd64 --os linux \
  --history.created "$created" --history.created_by "hack/image.sh" \
  --config.user "$uid:$uid" \
  --config.workingdir / \
  --config.entrypoint /kreload \
  --config.cmd serve \
  --config.exposedports 9443/tcp \
  --config.exposedports 9090/tcp \
  --config.label "org.opencontainers.image.title=kreload" \
  --config.label "org.opencontainers.image.description=Restarts workloads when the ConfigMaps and Secrets they use change" \
  --config.label "org.opencontainers.image.version=$version" \
  --config.label "org.opencontainers.image.revision=$revision" \
  --config.label "org.opencontainers.image.licenses=Apache-2.0" \
  --config.label "org.opencontainers.image.created=$created" \
  --manifest.annotation "org.opencontainers.image.version=$version" \
  --manifest.annotation "org.opencontainers.image.revision=$revision"
umoci tag --image "$out:$version" latest
umoci gc --layout "$out"
log "image kreload:$version (and :latest) in $out"
echo "$out"
