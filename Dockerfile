# syntax=docker/dockerfile:1
# The image every rule runs in (the Snakefile's `container:`): Debian 12, Python 3.11,
# a venv of pinned packages and the deepfm_rec package, run as a non-root user.
# Build, push, SIF conversion and CI: docs/container.md.
#
# Build args
#   BASE_IMAGE            a Debian 12 image (CI tags a debootstrapped one with this name)
#   TORCH_VARIANT         ""     PyPI's torch with its CUDA 13 libraries (default: GPU nodes;
#                                the node's NVIDIA driver must support CUDA 13)
#                         "+cpu" (or "+cu126", ...) that build, from PIP_EXTRA_INDEX_URL=
#                                https://download.pytorch.org/whl/cpu (.../cu126) or a
#                                PIP_FIND_LINKS folder
#   PIP_EXTRA_INDEX_URL   extra package index for pip
#   PIP_FIND_LINKS        folder (inside the build) of local wheels, e.g. a build volume
# Secret `cacert` (optional): a CA bundle, for pip behind a TLS-intercepting proxy.

ARG BASE_IMAGE=debian:bookworm-slim

# ---- deps: the venv of the pinned packages (pip's caches and python3-venv stay here) ----
FROM ${BASE_IMAGE} AS deps
ENV DEBIAN_FRONTEND=noninteractive
# Debian's python3 follows bookworm's security updates, so it is not pinned.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
ARG TORCH_VARIANT=
ARG PIP_EXTRA_INDEX_URL=
ARG PIP_FIND_LINKS=
# The pins: environment.yml names the same versions (tests/container/test_pins.py).
RUN --mount=type=secret,id=cacert \
    if [ -s /run/secrets/cacert ]; then export PIP_CERT=/run/secrets/cacert; fi \
 && pip install \
        "torch==2.13.0${TORCH_VARIANT}" \
        numpy==2.4.6 \
        pandas==3.1.1 \
        pyarrow==26.0.1 \
        pyyaml==6.0.4 \
        jsonschema==4.26.0 \
        loguru==0.7.3 \
        matplotlib==3.11.2 \
        tqdm==4.70.1 \
        snakemake==9.27.1 \
        snakemake-executor-plugin-slurm==2.8.0 \
        optuna==5.0.0

# ---- build: the project's wheel (.dockerignore lets only pyproject.toml, README.md and
# lib/ in). A stage of its own, so that editing the package neither reinstalls torch nor
# changes the final image's venv layer (1.5 GB), only the small layer installing it.
FROM deps AS build
COPY . /src
RUN --mount=type=secret,id=cacert \
    if [ -s /run/secrets/cacert ]; then export PIP_CERT=/run/secrets/cacert; fi \
 && pip wheel --no-deps --wheel-dir /dist /src

# ---- final: Python, git (for the report's provenance), the venv and the project ----
FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="deepfm-rec" \
      org.opencontainers.image.description="FM and DeepFM on MovieLens: the environment of every workflow rule" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.source="https://github.com/deepfm-rec/deepfm-rec" \
      org.opencontainers.image.licenses="MIT"
ENV DEBIAN_FRONTEND=noninteractive
# safe.directory: the bind-mounted checkout belongs to another uid than the one running.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 git ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && git config --system --add safe.directory '*' \
 && useradd --create-home --uid 1000 --user-group --shell /bin/bash deepfm
COPY --from=deps /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# COPY, not a RUN --mount from the stage: podman 4.3 reuses such a RUN's cached layer
# when only the mounted wheel changed
COPY --from=build /dist /dist
RUN pip install --no-deps /dist/*.whl \
 && pip check \
 && rm -rf /dist
ENV PYTHONDONTWRITEBYTECODE=1 \
    MPLBACKEND=Agg
# numeric, so that runtimes (Kubernetes runAsNonRoot) can tell it is not root
USER 1000:1000
WORKDIR /home/deepfm
CMD ["snakemake", "--version"]
