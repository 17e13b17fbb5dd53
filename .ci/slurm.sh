#!/usr/bin/env bash
# CI stage: the workflow on a real single-node SLURM through workflow/profiles/slurm.
# Runs from the repository root after .ci/run has made .venv; needs root. ~4 min.
set -euo pipefail
VENV=${VENV:-.venv}
t() { local s=$SECONDS; "$@"; echo "[time] $((SECONDS - s)) s: $*"; }
packages=(slurmctld slurmd slurm-client munge)
if ! dpkg -s "${packages[@]}" >/dev/null 2>&1; then
  t apt-get update -qq
  # Debian's postinst scripts do not start the daemons here; the tests start their own.
  DEBIAN_FRONTEND=noninteractive t apt-get install -y -qq --no-install-recommends \
    -o DPkg::Lock::Timeout=600 "${packages[@]}" >/dev/null
fi
t "$VENV/bin/pip" install -q snakemake-executor-plugin-slurm==2.8.0
# DEEPFM_REQUIRE_CLUSTER=1: a missing prerequisite fails instead of skipping.
DEEPFM_REQUIRE_CLUSTER=1 t "$VENV/bin/pytest" -m cluster tests/cluster
