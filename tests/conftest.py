"""Shared fixtures: the embedded ml-latest-small, fetched and encoded once per session, and
the small study run once per session for the tests that read its results."""

from __future__ import annotations

from pathlib import Path

import pytest

from data_helpers import encode_for_tests
from deepfm_rec.data.layouts import read_canonical
from deepfm_rec.data.sources import fetch
from deepfm_rec.data.users import build_users
from workflow_helpers import FAST, copy_project, edit_config, snakemake

ROOT = Path(__file__).resolve().parents[1]
EMBEDDED = ROOT / "resources" / "embedded" / "ml-latest-small"


# Tests with these markers are slow too: `pytest -m "not slow"` leaves them out.
SLOW_KINDS = {"workflow", "container", "cluster", "browser"}


def pytest_collection_modifyitems(items):
    for item in items:
        if SLOW_KINDS & {mark.name for mark in item.iter_markers()}:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def raw_small(tmp_path_factory) -> Path:
    """The embedded ml-latest-small, fetched (md5-verified) into a temp folder."""
    dest = tmp_path_factory.mktemp("raw") / "ml-latest-small"
    fetch("ml-latest-small", EMBEDDED, dest)
    return dest


@pytest.fixture(scope="session")
def tables_small(raw_small):
    return read_canonical(raw_small)


@pytest.fixture(scope="session")
def encoded_small(tables_small, raw_small, tmp_path_factory):
    """ml-latest-small encoded with synthetic users, seed 7."""
    out = tmp_path_factory.mktemp("enc") / "encoded"
    users = build_users(tables_small.ratings["user"].unique(), None, "auto", seed=7)
    return encode_for_tests(tables_small, users, out, seed=7)


@pytest.fixture(scope="session")
def encoded_tiny(tables_small, tmp_path_factory):
    """The ratings of the first 60 users of ml-latest-small, for fast training tests."""
    from deepfm_rec.data.layouts import Tables

    ratings = tables_small.ratings[tables_small.ratings["user"] <= 60].reset_index(drop=True)
    tables = Tables(ratings=ratings, movies=tables_small.movies, tags=tables_small.tags)
    out = tmp_path_factory.mktemp("enc") / "tiny"
    users = build_users(ratings["user"].unique(), None, "synthetic", seed=3)
    return encode_for_tests(tables, users, out, seed=3)


@pytest.fixture(scope="session")
def small_study(tmp_path_factory) -> Path:
    """A scratch clone that has run the whole study once (FAST config); tests may run
    snakemake in it again but must leave its config as they found it."""
    project = copy_project(tmp_path_factory.mktemp("study"))
    edit_config(project, FAST)
    snakemake(project)
    return project
