"""The real workflow on the embedded ml-latest-small: outputs, reruns, config errors, lint."""

from __future__ import annotations

import html
import json
import os
import re
import stat
import zipfile
from itertools import product

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image
from snakemake.utils import validate

from deepfm_rec.data.encoding import open_encoded
from deepfm_rec.inference import read_checkpoint
from workflow_helpers import (
    FAST,
    ROOT,
    copy_project,
    edit_config,
    error_messages,
    four_decimals,
    scheduled_jobs,
    snakemake,
)

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def project(small_study):
    """A scratch clone that has run the whole study once (shared with the browser test)."""
    return small_study


RUNS = [(model, objective) for model in ("fm", "deepfm") for objective in ("stars", "ranking")]
BASELINES = ["global_mean", "bias", "popularity", "itemknn", "ease"]


def assert_curves_drawn(path):
    """A learning-curves PNG that decodes to a wide figure of two panels, each with its
    coloured curves drawn (not only axes and text, which are grey and black)."""
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB")).astype(int)
    height, width, _ = pixels.shape
    assert 2 * height < width  # two panels side by side
    coloured = pixels.max(axis=2) - pixels.min(axis=2) > 100
    for half in (coloured[:, : width // 2], coloured[:, width // 2 :]):
        assert half.sum() > 500, path


def test_the_study_writes_its_outputs(project):
    metrics = pd.read_csv(project / "results" / "metrics.tsv", sep="\t")
    names = [f"{model} ({objective})" for model, objective in RUNS]
    assert list(zip(metrics["model"], metrics["seed"].fillna(-1), strict=True)) == [
        (name, seed) for name in names for seed in (42, 43)
    ] + [(name, -1) for name in BASELINES]
    meta = json.loads((project / "results/ml-latest-small/encoded/meta.json").read_text())
    rated = metrics.dropna(subset="rmse")
    assert set(rated["model"]) == {"fm (stars)", "deepfm (stars)", "global_mean", "bias"}
    assert (rated["rows"] == meta["splits"]["test"]).all()  # the whole test split
    ranked = metrics.dropna(subset="ndcg@10")
    assert set(ranked["model"]) == {*names, "popularity", "itemknn", "ease"}
    for column in ("ndcg@10", "hr@10", "recall@10", "precision@10", "coverage@10"):
        assert ranked[column].between(0, 1).all(), column
    assert list(rated["rmse"] ** 2) == pytest.approx(list(rated["mse"]), rel=1e-5)
    # the global mean, computed here from the encoded arrays: train's mean for every test row
    encoded = project / "results/ml-latest-small/encoded"
    label, split = (np.load(encoded / f"{name}.npy") for name in ("label", "split"))
    mean_rmse = np.sqrt(np.mean((label[split == 2] - label[split == 0].mean()) ** 2))
    by_model = metrics.set_index("model")
    assert by_model.loc["global_mean", "rmse"] == pytest.approx(mean_rmse, abs=1e-5)
    # the damped biases beat it, and every trained star model beats the biases
    assert by_model.loc["bias", "rmse"] < mean_rmse
    models = rated[rated["kind"] == "model"]
    assert len(models) == 4 and (models["rmse"] < by_model.loc["bias", "rmse"]).all(), models
    by_run = metrics.set_index(["model", "seed"])
    for model, objective in RUNS:
        name = f"{model} ({objective})"
        metric = "rmse" if objective == "stars" else "ndcg@10"
        # seeds change the initialisation, batch order and negatives: the numbers differ
        assert by_run.loc[(name, 42), metric] != by_run.loc[(name, 43), metric]
        for seed in (42, 43):
            folder = project / "results/ml-latest-small" / model / objective / f"seed{seed}"
            record = json.loads((folder / "metrics.json").read_text())
            # the record holds the numbers metrics.tsv shows for this run
            row = by_run.loc[(name, seed)]
            at_10 = next(entry for entry in record["ranking"] if entry["k"] == 10)
            assert at_10["ndcg"] == pytest.approx(row["ndcg@10"], abs=1e-6)
            if objective == "stars":
                assert record["rmse"] == pytest.approx(row["rmse"], abs=1e-6)
                assert record["mae"] == pytest.approx(row["mae"], abs=1e-6)
            assert record["checksum"] == meta["checksum"] and record["seed"] == seed
            assert record["objective"] == objective and record["exclude"] == "train+valid"
            history = pd.read_csv(folder / "history.tsv", sep="\t")
            assert 1 <= len(history) <= (3 if objective == "stars" else 2)
            monitored = history.set_index("epoch").loc[record["best_epoch"], record["monitor"]]
            assert record["best_valid"] == pytest.approx(monitored, abs=1e-6)
            assert_curves_drawn(project / "results/curves" / f"{model}-{objective}-seed{seed}.png")
    for objective in ("stars", "ranking"):
        folder = project / "results/ml-latest-small/deepfm" / objective
        profile = (folder / "profile.txt").read_text()
        assert "aten::" in profile and f"deepfm ({objective})" in profile
        assert "batch 256" in profile
        assert json.loads((folder / "trace.json").read_text())["traceEvents"]
    users = pd.read_csv(project / "results/ml-latest-small/users.tsv", sep="\t")
    assert len(users) == 610 and set(users["origin"]) == {"synthetic"}
    for log in (
        "download/ml-latest-small",
        "encode/ml-latest-small",
        "train_fm/ml-latest-small/stars/seed42",
        "train_deepfm/ml-latest-small/ranking/seed43",
    ):
        assert (project / "logs" / f"{log}.log").stat().st_size > 0
    for bench in (
        "evaluate/ml-latest-small/fm/stars/seed42",
        "baselines/ml-latest-small",
        "recommend/ml-latest-small/deepfm/ranking",
        "profile/ml-latest-small/deepfm/stars",
    ):
        assert (project / "benchmarks" / f"{bench}.tsv").read_text().startswith("s\t"), bench


def test_the_report_shows_models_baselines_and_provenance(project):
    page = (project / "results" / "report.html").read_text()
    metrics = pd.read_csv(project / "results" / "metrics.tsv", sep="\t")
    for _, row in metrics.dropna(subset="rmse").iterrows():  # every per-seed row
        for metric in ("rmse", "mae"):
            assert any(text in page for text in four_decimals(row[metric])), (metric, row)
    for name, metric in (("fm (stars)", "rmse"), ("deepfm (ranking)", "ndcg@10")):
        values = metrics[metrics["model"] == name][metric]  # mean ± std over the seeds
        pairs = product(four_decimals(values.mean()), four_decimals(values.std()))
        assert any(f"{mean} ± {std}" in page for mean, std in pairs), name
    # metrics, ranking, a curve per model and objective
    assert page.count("data:image/png;base64,") == 2 + len(RUNS)
    baselines = metrics.set_index("model")
    for name in ("popularity", "itemknn", "ease"):
        assert f"{baselines.loc[name, 'ndcg@10']:.4f}" in page, name
    assert "Protocol: a random 80%/10%/10% split" in page and "train or valid" in page
    topk = pd.read_csv(project / "results/ml-latest-small/deepfm/ranking/topk.tsv", sep="\t")
    assert topk.groupby("user").size().eq(10).all() and topk["predicted_stars"].isna().all()
    assert html.escape(topk["title"].iloc[0]) in page  # the first example user's top movie
    assert 'src="http' not in page  # self-contained
    meta = json.loads((project / "results/ml-latest-small/encoded/meta.json").read_text())
    assert meta["checksum"] in page and "torch" in page and "snakemake" in page
    assert "aten::" in page  # the profiles' operators
    config = yaml.safe_load((project / "config" / "config.yaml").read_text())
    assert f"dropout: {config['deepfm']['stars']['dropout']}" in page  # the config used
    for model, objective in RUNS:  # each model's fields, in the encoding's order
        cells = re.findall(
            rf'<td class="text">{model} \({objective}\)</td><td class="text">([^<]*)<', page
        )
        fields = set(config[model][objective]["fields"])
        assert any(set(cell.split(", ")) == fields for cell in cells), (model, objective)


def test_the_star_sections_choose_l2_on_their_first_seed(project):
    """Each star section lists two l2 values: seed 42 trains both and keeps the better on
    valid, seed 43 trains once with that value and needs seed 42's model to know it.
    DeepFM's l2_rows (FAST) is below the train split: it chose on a sample of users."""
    results = project / "results" / "ml-latest-small"
    l2_rows = {"fm": None, "deepfm": FAST["deepfm"]["stars"]["l2_rows"]}
    train_rows = len(open_encoded(results / "encoded").rows("train"))
    for model, rows in l2_rows.items():
        first = read_checkpoint(results / model / "stars/seed42/model.pt", torch.device("cpu"))
        later = read_checkpoint(results / model / "stars/seed43/model.pt", torch.device("cpu"))
        scores = first["l2_scores"]
        assert set(scores) == {0.011, 0.1}
        assert first["train_config"]["l2"] == min(scores, key=scores.get)
        assert later["train_config"]["l2"] == first["train_config"]["l2"]
        assert "l2_scores" not in later
        record = json.loads((results / model / "stars/seed42/metrics.json").read_text())
        assert record["l2"] == first["train_config"]["l2"]
        assert record["l2_scores"] == {str(value): score for value, score in scores.items()}
        choice = f"{model} (stars): {record['l2']}, by seed 42's valid RMSE {scores[0.011]:.4f}"
        page = (project / "results/report.html").read_text()
        assert choice in page
        if rows is None:
            assert "l2_users" not in first and "l2_users" not in record
            continue
        assert rows < train_rows  # so the choice trained on a sample, then on every row
        sample, every = record["l2_users"]
        assert first["l2_users"] == [sample, every] and 0 < sample < every == 610
        assert f"at 0.1 (on the {sample:,} of {every:,} users of a seeded sample" in page
    for objective, trainings in (("stars", 2), ("ranking", 1)):
        target = f"results/ml-latest-small/fm/{objective}/seed43/model.pt"
        jobs = scheduled_jobs(snakemake(project, "-n", "--forceall", target).stdout)
        assert jobs["train_fm"] == trainings, (objective, jobs)


def test_the_star_trainings_start_first(project):
    """The two jobs after encode (two cores) are the star sections' first-seed trainings,
    which choose their l2 and are the longest jobs at scale (their rule priority)."""
    log = sorted((project / ".snakemake" / "log").glob("*.snakemake.log"))[0].read_text()
    # each job with wildcards: (rule, wildcards), in the order the run started them
    jobs = re.findall(r"^(?:local)?rule (\w+):\n(?:    .*\n)*?    wildcards: (.*)$", log, re.M)
    after = jobs[[rule for rule, _ in jobs].index("encode") + 1 :]
    assert sorted(after[:2]) == [
        (f"train_{model}", "dataset=ml-latest-small, objective=stars, seed=42")
        for model in ("deepfm", "fm")
    ]
    assert sum(rule.startswith("train_") for rule, _ in after[2:]) == 6  # the rest after


def test_a_second_run_has_nothing_to_do(project):
    assert "Nothing to be done" in snakemake(project, "-n").stdout


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (  # a DeepFM stars setting: its trainings and what reads them
            {"deepfm": {"stars": {"dropout": 0.15}}},
            {"train_deepfm": 2, "evaluate": 2, "profile": 1, "report": 1},
        ),
        (  # a model's fields pick among the encoded arrays: no new encoding
            {"fm": {"stars": {"fields": ["user", "item", "genres"]}}},
            {"train_fm": 2, "evaluate": 2, "report": 1},
        ),
        (  # the ranking protocol: every ranked score, not the trainings
            {"ranking": {"exclude": "train"}},
            {"evaluate": 8, "baselines": 1, "recommend": 1, "report": 1},
        ),
        (  # the split: everything from the encoding on
            {"split": {"method": "temporal"}},
            {
                "encode": 1,
                "train_fm": 4,
                "train_deepfm": 4,
                "evaluate": 8,
                "baselines": 1,
                "profile": 2,
                "recommend": 1,
                "report": 1,
            },
        ),
    ],
)
def test_a_config_change_reruns_only_what_it_feeds(project, change, expected):
    config = project / "config" / "config.yaml"
    shipped = config.read_text()
    edit_config(project, change)
    try:
        changed = yaml.safe_load(config.read_text()) != yaml.safe_load(shipped)
        jobs = scheduled_jobs(snakemake(project, "-n").stdout)
    finally:
        config.write_text(shipped)
    assert changed, f"{change} is what config/config.yaml ships: it changes nothing"
    assert jobs == {**expected, "all": 1}
    assert "Nothing to be done" in snakemake(project, "-n").stdout


def test_snakemake_report_archive(project):
    snakemake(project, "--report", "results/snakemake-report.zip")
    names = zipfile.ZipFile(project / "results" / "snakemake-report.zip").namelist()
    assert any(n.endswith("fm-stars-seed42.png") for n in names)  # learning curves
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
    [  # a key, a type and a bound; every case: test_config.py, through deepfm_rec.config
        (
            {"fm": {"stars": {"embed_dimm": 8}}},
            "config key 'fm.stars.embed_dimm': no such key in section 'fm.stars'; did you "
            "mean 'embed_dim'?",
        ),
        (
            {"deepfm": {"ranking": {"dropout": "high"}}},
            "config key 'deepfm.ranking.dropout': 'high' is not of type 'number'",
        ),
        (
            {"seed": 2**64 + 1},
            "config key 'seed': 18446744073709551617 is greater than the maximum of 4294967295",
        ),
    ],
)
def test_config_errors_fail_before_any_job_in_one_line_naming_the_key(tmp_path, change, message):
    """Not Snakemake's validate, which prints the whole schema and config (1,760 lines):
    config.smk's check, deepfm_rec.config's message."""
    project = copy_project(tmp_path)
    edit_config(project, change)
    result = snakemake(project, "-n", check=False)
    assert result.returncode != 0
    [line] = error_messages(result.stdout)
    assert line.startswith(message), result.stdout[-2000:]
    assert len(result.stdout.splitlines()) < 10, result.stdout[-2000:]
    assert not (project / "results").exists()


def test_a_misspelt_key_on_the_command_line_is_one_line_with_the_nearest_name(tmp_path):
    project = copy_project(tmp_path)
    result = snakemake(project, "-n", "--config", "datset=ml-1m", check=False)
    assert result.returncode != 0 and len(result.stdout.splitlines()) < 10, result.stdout
    assert error_messages(result.stdout) == [
        "config key 'datset': no such key at the top level; did you mean 'dataset'?"
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            bytes(range(128, 256)),
            "config/config.yaml: not UTF-8 text (byte 0x80 at offset 0); a config is a YAML file",
        ),
        (b"", "config/config.yaml: empty; write {} for the shipped settings"),
        (
            b"- dataset: ml-1m\n",
            "config/config.yaml: a YAML list, not a mapping of config keys to values",
        ),
    ],
)
def test_a_config_file_of_bytes_nothing_or_a_list_is_one_line(tmp_path, content, message):
    project = copy_project(tmp_path)
    (project / "config" / "config.yaml").write_bytes(content)
    result = snakemake(project, "-n", check=False)
    assert result.returncode != 0 and len(result.stdout.splitlines()) < 10, result.stdout
    assert error_messages(result.stdout) == [message]
    assert not (project / "results").exists()


def test_an_empty_mapping_is_the_shipped_study(tmp_path):
    project = copy_project(tmp_path)
    (project / "config" / "config.yaml").write_text("{}\n")
    assert "Job stats:" in snakemake(project, "-n").stdout


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
