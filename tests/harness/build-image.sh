#!/usr/bin/env bash
# build-image.sh [TAG...] - build the project's Dockerfile with podman, offline from
# any container registry: the Debian 12 base is made with debootstrap from the apt
# mirror this machine uses and tagged as the Dockerfile's FROM name. CI variant: the
# CPU torch wheel from $PIP_FIND_LINKS (default /opt/wheels) and the host's CA bundle
# (for pip behind the egress proxy). Needs root, podman, runc, debootstrap.
#   IMAGE=localhost/deepfm-rec:ci  the name built; extra TAGs are added to it
#   PODMAN_ROOT                    see podman-env.sh (the cache between runs)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
IMAGE=${IMAGE:-localhost/deepfm-rec:ci}
BASE=docker.io/library/debian:bookworm-slim
WHEELS=${PIP_FIND_LINKS:-/opt/wheels}
CACERT=${CACERT:-/etc/ssl/certs/ca-certificates.crt}
# shellcheck source=podman-env.sh disable=SC1091
source "$HERE/podman-env.sh"
LOGS=$PODMAN_ROOT/logs
mkdir -p "$LOGS"
# t NAME CMD...: run CMD with its output in $LOGS/NAME.log, say how long it took
t() {
  local s=$SECONDS name=$1; shift
  "$@" >"$LOGS/$name.log" 2>&1 || { tail -40 "$LOGS/$name.log" >&2; return 1; }
  echo "[time] $name: $((SECONDS - s)) s" >&2
}

# 1. The base: a minbase bookworm rootfs, cached in podman's storage between runs.
if ! podman image exists "$BASE"; then
  MIRROR=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  MIRROR=${MIRROR:-http://deb.debian.org/debian}
  R=$PODMAN_ROOT/rootfs
  rm -rf "$R"
  t debootstrap debootstrap --variant=minbase bookworm "$R" "$MIRROR"
  printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb %s-security bookworm-security main\n' \
    "$MIRROR" "$MIRROR" "$MIRROR" >"$R/etc/apt/sources.list"
  rm -rf "$R"/var/cache/apt/archives/*.deb "$R"/var/lib/apt/lists/*
  t import sh -c "tar --numeric-owner -C '$R' -c . | podman import - '$BASE'"
  rm -rf "$R"
fi

# 2. The build. chroot isolation shares the host's network, so pip and apt reach the
#    registries as the host does; the wheel folder goes in as a read-only build volume.
SECRET=()
[ -s "$CACERT" ] && SECRET=(--secret "id=cacert,src=$CACERT")
build() {
  podman build --pull=never --isolation chroot --layers "${SECRET[@]}" \
    -v "$WHEELS:/wheels:ro" --build-arg TORCH_VARIANT=+cpu --build-arg PIP_FIND_LINKS=/wheels "$@" "$ROOT"
}
t build build -t "$IMAGE"
for tag in "$@"; do podman tag "$IMAGE" "$tag"; done

# 3. The cache: tag the build stage too (all cached: seconds), then drop every untagged
#    leaf image, i.e. the earlier builds' layers, so the storage does not grow by a
#    venv (1.5 GB) per changed build; the chains of the tagged images stay.
t tag-build-stage build --target build -t "${IMAGE%:*}:build-stage"
podman image prune -f >/dev/null
podman images --format '{{.Repository}}:{{.Tag}} {{.Size}}' >&2
