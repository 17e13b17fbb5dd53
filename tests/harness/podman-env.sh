# shellcheck shell=bash
# Source me: confines podman's storage, runtime state and config to $PODMAN_ROOT
# (default /var/tmp/deepfm-rec/podman, kept between runs so that the debootstrapped
# base and the build's layer cache survive; CI on a fresh machine starts empty).
# Needs root. Facts this encodes (found on the CI machines, Debian 12, podman 4.3):
# - runc, not crun: crun 1.8 refuses this VM's hybrid cgroup v1/v2 layout;
# - explicit ulimits: podman's rootful defaults (nofile=1048576, nproc=max) get EPERM
#   without CAP_SYS_RESOURCE.
PODMAN_ROOT=${PODMAN_ROOT:-/var/tmp/deepfm-rec/podman}
mkdir -p "$PODMAN_ROOT"/{conf,storage,run,tmp,net}
cat >"$PODMAN_ROOT/conf/storage.conf" <<EOC
[storage]
driver = "overlay"
graphroot = "$PODMAN_ROOT/storage"
runroot = "$PODMAN_ROOT/run"
EOC
cat >"$PODMAN_ROOT/conf/containers.conf" <<EOC
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[network]
network_config_dir = "$PODMAN_ROOT/net"
[engine]
runtime = "runc"
tmp_dir = "$PODMAN_ROOT/run/libpod"
EOC
export PODMAN_ROOT CONTAINERS_STORAGE_CONF="$PODMAN_ROOT/conf/storage.conf" \
    CONTAINERS_CONF="$PODMAN_ROOT/conf/containers.conf" TMPDIR="$PODMAN_ROOT/tmp"
