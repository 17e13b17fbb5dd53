"""Every dataset layout through the real workflow (bad input: test_bad_input.py).

Past `encode` the rules read the encoded arrays alone, whatever the layout, so one study
to the report per kind of data covers them: ml-100k's (real users, no tags, the temporal
protocol; conftest's tiny_study, which the cluster's run is compared with too) below, the
csv layout's (ml-20m, ml-25m, ml-32m: the embedded ml-latest-small, synthetic users, tags;
conftest's small_study) and `dataset: synthetic`'s (test_benchmarks.py, study_scale.py).
The other layouts run to `encode`; ml-20m's fixture does in test_bad_input.py."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from deepfm_rec.data.layouts import read_canonical
from workflow_helpers import FIXTURES, STUDY_ROWS, TINY, copy_project, edit_config, snakemake

pytestmark = pytest.mark.workflow


def test_the_ml_100k_layout_runs_download_to_report_with_the_temporal_protocol(tiny_study):
    project, dataset = tiny_study, "ml-100k"
    output = (project / "snakemake.out").read_text()
    assert "deepfm-rec: the report is results/report.html" in output
    results = project / "results" / dataset
    meta = json.loads((results / "encoded" / "meta.json").read_text())
    metrics = pd.read_csv(project / "results" / "metrics.tsv", sep="\t")
    assert list(metrics["model"]) == STUDY_ROWS
    assert (metrics["rows"].dropna() == meta["splits"]["test"]).all()
    assert meta["users_origin"] == ["real"]
    page = (project / "results" / "report.html").read_text()
    assert f"deepfm-rec: {dataset}" in page and f"{metrics['rmse'].iloc[2]:.4f}" in page
    assert "real" in page
    # the temporal split: each user's latest ratings are test; candidates exclude train only
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


@pytest.mark.parametrize(
    ("dataset", "source", "origin"),
    [
        ("ml-1m", FIXTURES / "ml-1m", "real"),
        ("ml-10m", FIXTURES / "ml-10m" / "ml-10M100K", "synthetic"),
    ],
)
def test_each_other_layout_runs_download_to_encode(tmp_path, dataset, source, origin):
    project = copy_project(tmp_path)
    edit_config(project, {**TINY, "dataset": dataset, "source": str(source)})
    snakemake(project, f"results/{dataset}/encoded")
    meta = json.loads((project / "results" / dataset / "encoded" / "meta.json").read_text())
    ratings = read_canonical(project / "resources" / dataset).ratings
    assert meta["rows"] == len(ratings) == 50
    assert meta["users_origin"] == [origin] and meta["split_method"] == "random"
    assert sum(meta["splits"].values()) == meta["rows"]
