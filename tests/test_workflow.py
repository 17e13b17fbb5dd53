"""The real workflow on the embedded ml-latest-small: outputs, reruns, config errors, lint."""

from __future__ import annotations

import html
import json
import os
import re
import stat
import zipfile
from itertools import product

import pandas as pd
import pytest
import yaml
from snakemake.utils import validate

from workflow_helpers import (
    ROOT,
    copy_project,
    edit_config,
    four_decimals,
    scheduled_jobs,
    snakemake,
)

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def project(small_study):
    """A scratch clone that has run the whole study once (shared with the browser test)."""
    return small_study


def test_the_study_writes_its_outputs(project):
    metrics = pd.read_csv(project / "results" / "metrics.tsv", sep="\t")
    assert list(zip(metrics["model"], metrics["seed"].fillna(-1), strict=True)) == [
        ("fm", 42), ("fm", 43), ("deepfm", 42), ("deepfm", 43), ("global_mean", -1), ("bias", -1),
        ("popularity", -1),
    ]  # fmt: skip
    meta = json.loads((project / "results/ml-latest-small/encoded/meta.json").read_text())
    rated = metrics[metrics["model"] != "popularity"]
    assert (rated["rows"] == meta["splits"]["test"]).all()  # the whole test split
    ranked = metrics[~metrics["model"].isin(["global_mean", "bias"])]
    assert ranked["ndcg@10"].between(0, 1).all() and ranked["hr@10"].between(0, 1).all()
    assert (rated["rmse"] < 1.1).all()
    assert list(rated["rmse"] ** 2) == pytest.approx(list(rated["mse"]), rel=1e-5)
    by_run = metrics.set_index(["model", "seed"])
    for model in ("fm", "deepfm"):
        # seeds change the initialisation and batch order, so the numbers differ
        assert by_run.loc[(model, 42), "rmse"] != by_run.loc[(model, 43), "rmse"]
        for seed in (42, 43):
            folder = project / "results/ml-latest-small" / model / f"seed{seed}"
            record = json.loads((folder / "metrics.json").read_text())
            assert record["rmse"] == pytest.approx(by_run.loc[(model, seed), "rmse"], abs=1e-6)
            assert record["checksum"] == meta["checksum"] and record["seed"] == seed
            history = pd.read_csv(folder / "history.tsv", sep="\t")
            assert 1 <= len(history) <= 3
            assert (folder / "curves.png").read_bytes()[:4] == b"\x89PNG"
    profile = (project / "results/ml-latest-small/deepfm/profile.txt").read_text()
    assert "aten::" in profile and "batch 256" in profile
    trace = json.loads((project / "results/ml-latest-small/deepfm/trace.json").read_text())
    assert trace["traceEvents"]
    users = pd.read_csv(project / "results/ml-latest-small/users.tsv", sep="\t")
    assert len(users) == 610 and set(users["origin"]) == {"synthetic"}
    for log in (
        "download/ml-latest-small",
        "encode/ml-latest-small",
        "train_fm/ml-latest-small/seed42",
    ):
        assert (project / "logs" / f"{log}.log").stat().st_size > 0


def test_the_report_shows_models_baselines_and_provenance(project):
    page = (project / "results" / "report.html").read_text()
    metrics = pd.read_csv(project / "results" / "metrics.tsv", sep="\t")
    for _, row in metrics.dropna(subset="rmse").iterrows():  # every per-seed row
        for metric in ("rmse", "mae"):
            assert any(text in page for text in four_decimals(row[metric])), (metric, row)
    for model in ("fm", "deepfm"):  # mean ± std over the seeds
        rmse = metrics[metrics["model"] == model]["rmse"]
        pairs = product(four_decimals(rmse.mean()), four_decimals(rmse.std()))
        assert any(f"{mean} ± {std}" in page for mean, std in pairs), model
    assert page.count("data:image/png;base64,") == 4  # metrics, ranking, two curves
    popularity = metrics.set_index("model").loc["popularity", "ndcg@10"]
    assert "Ranking" in page and f"{popularity:.4f}" in page
    topk = pd.read_csv(project / "results/ml-latest-small/deepfm/topk.tsv", sep="\t")
    assert topk.groupby("user").size().eq(10).all()
    assert html.escape(topk["title"].iloc[0]) in page  # the first example user's top movie
    assert 'src="http' not in page  # self-contained
    meta = json.loads((project / "results/ml-latest-small/encoded/meta.json").read_text())
    assert meta["checksum"] in page and "torch" in page and "snakemake" in page
    assert "aten::" in page  # the profile's operators
    assert re.search(r"dropout: 0\.2", page)  # the config used


def test_a_second_run_has_nothing_to_do(project):
    assert "Nothing to be done" in snakemake(project, "-n").stdout


def test_changing_a_deepfm_setting_reruns_only_deepfm_and_its_dependents(project):
    edit_config(project, {"deepfm": {"dropout": 0.3}})
    try:
        jobs = scheduled_jobs(snakemake(project, "-n").stdout)
    finally:
        edit_config(project, {"deepfm": {"dropout": 0.2}})
    assert jobs == {
        "train_deepfm": 2, "evaluate": 2, "profile": 1, "recommend": 1, "report": 1, "all": 1,
    }  # fmt: skip
    assert "Nothing to be done" in snakemake(project, "-n").stdout


def test_snakemake_report_archive(project):
    snakemake(project, "--report", "results/snakemake-report.zip")
    names = zipfile.ZipFile(project / "results" / "snakemake-report.zip").namelist()
    assert any(n.endswith("curves.png") for n in names)
    assert any(n.endswith("metrics.tsv") for n in names)


def test_the_data_folders_are_as_readable_as_the_umask_says(tmp_path):
    """Not mkdtemp's 0700: on a shared cluster the group reads the results."""
    project = copy_project(tmp_path)
    umask = os.umask(0o027)
    try:
        snakemake(project, "results/ml-latest-small/encoded")
    finally:
        os.umask(umask)
    for folder in ("resources/ml-latest-small", "results/ml-latest-small/encoded"):
        modes = {stat.S_IMODE(p.stat().st_mode) for p in (project / folder).iterdir()}
        assert stat.S_IMODE((project / folder).stat().st_mode) == 0o750 and modes == {0o640}


def test_a_run_that_builds_no_report_does_not_point_to_one(tmp_path):
    project = copy_project(tmp_path)
    result = snakemake(project, "resources/ml-latest-small")
    assert "the report is" not in result.stdout and "Finished job" in result.stdout


def test_lint_is_clean(project):
    result = snakemake(project, "--lint", check=False)
    assert result.returncode == 0 and "Lints for" not in result.stdout, result.stdout


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"fm": {"embed_dimm": 8}}, "embed_dimm"),
        ({"deepfm": {"dropout": "high"}}, "dropout"),
        ({"seeed": 1}, "seeed"),
        ({"split": {"test": 0.9}}, "test"),
        ({"dataset": "ml-7m"}, "ml-7m"),
        # torch.manual_seed takes no more than 2^64 - 1, and the schema says 2^32 - 1
        ({"seed": 2**64 + 1}, "18446744073709551617 is greater than the maximum of 4294967295"),
        ({"seeds": [42, 2**32]}, "4294967296 is greater than the maximum of 4294967295"),
        ({"synthetic": {"seed": 2**32}}, "4294967296 is greater than the maximum"),
    ],
)
def test_config_errors_fail_before_any_job_naming_the_key(tmp_path, change, message):
    project = copy_project(tmp_path)
    edit_config(project, change)
    result = snakemake(project, "-n", check=False)
    assert result.returncode != 0
    assert message in result.stdout and "validat" in result.stdout.lower(), result.stdout[-2000:]
    assert not (project / "results").exists()


def test_a_yaml_syntax_error_names_the_file_and_line(tmp_path):
    project = copy_project(tmp_path)
    config = project / "config" / "config.yaml"
    lines = config.read_text().splitlines(keepends=True)
    line = next(i for i, text in enumerate(lines, 1) if text.startswith("seeds:"))
    lines[line - 1] = "seeds: [42, 43\n"  # the closing bracket forgotten
    config.write_text("".join(lines))
    result = snakemake(project, "-n", check=False)
    assert result.returncode != 0
    assert "config/config.yaml is not valid YAML" in result.stdout, result.stdout[-2000:]
    assert f'in "config/config.yaml", line {line}, column 8' in result.stdout
    assert not (project / "results").exists()


def test_a_number_that_yaml_reads_as_text_names_the_line_and_how_to_write_it(tmp_path):
    """PyYAML reads YAML 1.1, where lr: 1e-3 is the string '1e-3'."""
    project = copy_project(tmp_path)
    config = project / "config" / "config.yaml"
    lines = config.read_text().splitlines(keepends=True)
    line = next(i for i, text in enumerate(lines, 1) if text.strip().startswith("lr:"))
    lines[line - 1] = "    lr: 1e-3\n"  # the first lr: fm's stars section's
    config.write_text("".join(lines))
    result = snakemake(project, "-n", check=False)
    assert result.returncode != 0
    assert (
        f"config/config.yaml, line {line}: fm.stars.lr: 1e-3 is text to YAML 1.1 (PyYAML), "
        "whose numbers in exponent form need a dot and a signed exponent; write 0.001"
    ) in result.stdout, result.stdout[-2000:]
    assert not (project / "results").exists()


def test_the_schema_defaults_are_the_shipped_config():
    """A key left out of config.yaml means what config.yaml ships (and config/README.md
    documents): the schema fills in exactly the shipped study."""
    config: dict = {}
    validate(config, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"), set_default=True)
    assert config == yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
