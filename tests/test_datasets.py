"""Every dataset layout through the real workflow (bad input: test_bad_input.py)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from deepfm_rec.data.layouts import read_canonical
from workflow_helpers import (
    FIXTURES,
    STUDY_ROWS,
    TINY,
    TINY_100K,
    copy_project,
    edit_config,
    snakemake,
)

pytestmark = pytest.mark.workflow

# The temporal split and candidates that exclude train only run on one layout's study.
TEMPORAL = {"split": {"method": "temporal"}, "ranking": {"exclude": "train"}}


@pytest.mark.parametrize(
    ("dataset", "source", "origin", "protocol"),
    [
        ("ml-100k", FIXTURES / "ml-100k", "real", {}),
        ("ml-1m", FIXTURES / "ml-1m", "real", TEMPORAL),
        ("ml-10m", FIXTURES / "ml-10m" / "ml-10M100K", "synthetic", {}),
    ],
)
def test_each_layout_runs_download_to_report(request, tmp_path, dataset, source, origin, protocol):
    """Each upstream layout through the whole study. The csv layout (ml-20m, ml-25m,
    ml-32m) is the embedded ml-latest-small's: its study is conftest's small_study, and
    ml-20m's fixture runs to encode below; `dataset: synthetic` runs to the report in
    test_benchmarks.py (study_scale.py). ml-100k's study is conftest's tiny_study, which
    the cluster's run is compared with too."""
    settings = {**TINY, "dataset": dataset, "source": str(source), **protocol}
    if settings == TINY_100K:
        project = request.getfixturevalue("tiny_study")
        output = (project / "snakemake.out").read_text()
    else:
        project = copy_project(tmp_path)
        edit_config(project, settings)
        output = snakemake(project, "results/report.html").stdout
    assert "deepfm-rec: the report is results/report.html" in output
    results = project / "results" / dataset
    meta = json.loads((results / "encoded" / "meta.json").read_text())
    metrics = pd.read_csv(project / "results" / "metrics.tsv", sep="\t")
    assert list(metrics["model"]) == STUDY_ROWS
    assert (metrics["rows"].dropna() == meta["splits"]["test"]).all()
    assert meta["users_origin"] == [origin]
    page = (project / "results" / "report.html").read_text()
    assert f"deepfm-rec: {dataset}" in page and f"{metrics['rmse'].iloc[2]:.4f}" in page
    assert origin in page
    if protocol:  # each user's latest rating is test, candidates exclude train only
        assert meta["split_method"] == "temporal"
        ratings = read_canonical(project / "resources" / dataset).ratings
        split = np.load(results / "encoded" / "split.npy")
        latest = ratings.assign(split=split).sort_values("timestamp", kind="stable")
        assert (latest.groupby("user")["split"].last() == 2).all()
        record = json.loads((results / "fm/ranking/seed7/metrics.json").read_text())
        assert record["exclude"] == "train"
        test = meta["splits"]["test"] / meta["rows"]  # 7 of 50: round(7 × 10%) a user
        assert f"Protocol: a temporal split (each user's latest {test:.0%} of ratings" in page
        assert "did not rate in train is a candidate" in page
    else:
        assert meta["split_method"] == "random"
