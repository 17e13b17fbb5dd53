"""Shared fixtures: the embedded ml-latest-small, fetched, read and encoded, and the small
study run once for the tests that read its results.

The suite runs in pytest-xdist workers, each test file in one of them, in the order
pytest_collection_modifyitems sorts them (pyproject's addopts): the browser, cluster and
container files, the longest, start first (one SLURM on its fixed ports, one image
build), and the quick files come last. Each worker has its own session fixtures, except
the encoded data and the two studies, which the first worker to need them builds and the
others wait for (`once_per_run`)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from filelock import FileLock

from data_helpers import encode_for_tests
from deepfm_rec.data.encoding import open_encoded
from deepfm_rec.data.layouts import read_canonical
from deepfm_rec.data.sources import fetch
from deepfm_rec.data.users import build_users
from workflow_helpers import FAST, TINY_100K, copy_project, edit_config, snakemake

ROOT = Path(__file__).resolve().parents[1]
EMBEDDED = ROOT / "resources" / "embedded" / "ml-latest-small"


# The suite starts some 300 Python processes (snakemake and its jobs) that import the
# package from lib/; where the environment sets PYTHONDONTWRITEBYTECODE (this CI's does),
# each compiled lib/ again, 0.1 s of CPU apiece. They cache it, as Python does by default.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

if os.environ.get("PYTEST_XDIST_WORKER"):
    # the workers share the cores: torch's default of one thread per core in each worker
    # oversubscribes them (a training test ran 5 times slower)
    workers = int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))

# Tests with these markers are slow too: `pytest -m "not slow"` leaves them out.
SLOW_KINDS = {"workflow", "container", "cluster", "browser"}


# Tests with these markers wait on daemons and builds (SLURM, podman, Chromium and its study).
DAEMON_KINDS = {"container", "cluster", "browser"}


def pytest_collection_modifyitems(items):
    files: dict[Path, set[str]] = {}
    for item in items:
        marks = {mark.name for mark in item.iter_markers()}
        if SLOW_KINDS & marks:
            item.add_marker(pytest.mark.slow)
            marks.add("slow")
        if "small_study" in item.fixturenames:
            marks.add("small_study")
        files.setdefault(item.path, set()).update(marks)

    def rank(marks: set[str]) -> int:
        """When a file starts. The workers take files in this order (pyproject's addopts),
        the next as they end one: the daemons' files first, the browser's building the
        small study (about 4 minutes); then the files that run workflows, the longest,
        if they do not read that study; then the ones that do (built by the time a worker
        ends its first files), the other slow ones, and the many quick ones last, which
        the workers share out so that they end together (with the small study's readers
        last, one worker ran test_workflow.py alone for a minute at the end)."""
        if DAEMON_KINDS & marks:
            return 0
        if "small_study" in marks:
            return 2
        if "workflow" in marks:
            return 1
        return 3 if "slow" in marks else 4

    items.sort(key=lambda item: rank(files[item.path]))  # stable: file order within a rank


@pytest.fixture(scope="session")
def raw_small(tmp_path_factory) -> Path:
    """The embedded ml-latest-small, fetched (md5-verified) into a temp folder."""
    dest = tmp_path_factory.mktemp("raw") / "ml-latest-small"
    fetch("ml-latest-small", EMBEDDED, dest)
    return dest


@pytest.fixture(scope="session")
def tables_small(raw_small):
    return read_canonical(raw_small)


def once_per_run(tmp_path_factory, name: str, build: Callable[[Path], object]) -> Path:
    """The folder `name` that `build(folder)` fills, built once per test run: the first
    worker to ask builds it, the others wait for it. Tests must leave it as they found it."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, above each worker's
    folder, done = root / name, root / f"{name}.done"
    with FileLock(root / f"{name}.lock"):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # a failed build's
            build(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def encoded_small(tables_small, tmp_path_factory):
    """ml-latest-small encoded with synthetic users, seed 7."""

    def build(out: Path) -> None:
        users = build_users(tables_small.ratings["user"].unique(), None, "auto", seed=7)
        encode_for_tests(tables_small, users, out, seed=7)

    return open_encoded(once_per_run(tmp_path_factory, "encoded-small", build))


@pytest.fixture(scope="session")
def encoded_tiny(tables_small, tmp_path_factory):
    """The ratings of the first 60 users of ml-latest-small, for fast training tests."""
    from deepfm_rec.data.layouts import Tables

    def build(out: Path) -> None:
        ratings = tables_small.ratings[tables_small.ratings["user"] <= 60]
        ratings = ratings.reset_index(drop=True)
        tables = Tables(ratings=ratings, movies=tables_small.movies, tags=tables_small.tags)
        users = build_users(ratings["user"].unique(), None, "synthetic", seed=3)
        encode_for_tests(tables, users, out, seed=3)

    return open_encoded(once_per_run(tmp_path_factory, "encoded-tiny", build))


@pytest.fixture(scope="session")
def small_study(tmp_path_factory) -> Path:
    """A scratch clone that has run the whole study once (FAST config); tests may run
    snakemake in it again but must leave its config and outputs as they found them."""

    def build(project: Path) -> None:
        copy_project(project)
        edit_config(project, FAST)
        snakemake(project)

    return once_per_run(tmp_path_factory, "small-study", build)


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory) -> Path:
    """A scratch clone that has run the whole study (the default target) on the ml-100k
    layout's fixture (TINY_100K), its snakemake output in snakemake.out; tests read it (or
    a copy: test_rerun_real.py) and must leave it as they found it."""

    def build(project: Path) -> None:
        copy_project(project)
        edit_config(project, TINY_100K)
        (project / "snakemake.out").write_text(snakemake(project).stdout)

    return once_per_run(tmp_path_factory, "tiny-study", build)
