"""The hand-run benchmarks, run end to end as real subprocesses on a small synthetic
dataset: they must finish and print complete, consistent tables. Their speed figures
are not judged here (see the README's Speed section)."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from deepfm_rec.config import first_l2
from deepfm_rec.train import split_settings, train
from workflow_helpers import HUNG, STUDY_ROWS

ROOT = Path(__file__).parents[1]
BENCHMARKS = ROOT / "benchmarks"

pytestmark = pytest.mark.slow  # each runs a benchmark script as a subprocess
CONFIG = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def run(script: str, *args: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=HUNG,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.splitlines()


def table(lines: list[str], header: str, first=("fm ", "deepfm ")) -> list[list[str]]:
    """The rows (split on spaces) under the line that starts with `header`."""
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    return [line.split() for line in lines[start + 1 :] if line.startswith(first)]


def number(text: str) -> float:
    return float(text.replace(",", "").rstrip("x"))


def sizes(encoded: Path) -> dict[str, int]:
    meta = json.loads((encoded / "meta.json").read_text())
    return {f["name"]: f["vocab_size"] for f in meta["fields"] if "vocab_size" in f}


@pytest.fixture(scope="module")
def train_speed(tmp_path_factory) -> tuple[Path, list[str]]:
    folder = tmp_path_factory.mktemp("benchmarks")
    args = ["--ratings", "30000", "--folder", str(folder), "--batches", "512", "4096"]
    # one thread: on a shared machine two threads per op wait for each other (3-4x slower)
    args += ["--repeats", "3", "--seconds", "0.05", "--epoch", "--threads", "1"]
    lines = run("train_speed.py", *args)
    return folder / "synthetic-30000" / "encoded", lines


def test_train_speed_prints_every_case_with_its_phases(train_speed):
    encoded, lines = train_speed
    assert (encoded / "meta.json").exists()
    rows = table(lines, "model ")
    cases = [(row[0], " ".join(row[1:-7]), int(row[-7])) for row in rows]
    candidates = sizes(encoded)["item"] - 1  # every movie: the most negatives a batch has
    expected = []
    for name in ("fm", "deepfm"):
        ranking = CONFIG[name]["ranking"]
        negatives = ranking["negatives"] if 0 < ranking["negatives"] < candidates else candidates
        expected += [
            (name, path, batch)
            for path, batch in [
                ("config stars", CONFIG[name]["stars"]["batch_size"]),
                (f"config ranking, {negatives} negatives", ranking["batch_size"]),
                ("seed fields, sparse_adam", 512),
                ("seed fields, sparse_adam", 4096),
                ("seed fields, adam", 1024),
            ]
        ]
    assert cases == expected
    for row in rows:
        rate, (low, high) = number(row[-6]), row[-5].split("-")
        assert 0 < number(low) <= rate <= number(high)  # the median of the blocks
        for ms in row[-4:]:  # gather, forward, backward, step: ms to 0.01, not judged
            assert re.fullmatch(r"\d+\.\d\d", ms), row
    for name in ("fm", "deepfm"):  # each config case says which settings it ran
        for objective in ("stars", "ranking"):
            section = CONFIG[name][objective]
            said = next(line for line in lines if line.startswith(f"config {objective} {name}: "))
            assert f"fields {','.join(section['fields'])}, {section['optimizer']}, " in said
            assert f"bag_refresh {section['bag_refresh'] or ''}" in said  # null: by size
        ranking = CONFIG[name]["ranking"]
        said = next(line for line in lines if line.startswith(f"config ranking {name}: "))
        assert f"{ranking['negatives']} {ranking['sampler']} negatives per batch" in said
    # the epoch's time is not judged (30,000 ratings can take less than the printed 0.01 s);
    # what it covered is: every train row once, in ceil(rows / 1024) steps
    n_train = json.loads((encoded / "meta.json").read_text())["splits"]["train"]
    epoch = next(line for line in lines if line.startswith("one FM epoch at batch 1024"))
    assert f"({n_train:,} rows in {-(-n_train // 1024):,} steps," in epoch


@pytest.mark.parametrize("users", ["40", "0"])
def test_recommend_speed_times_four_models_on_the_encoded_data(train_speed, users):
    encoded, _ = train_speed
    lines = run("recommend_speed.py", "--encoded", str(encoded), "--users", users, "--threads", "1")
    n_users, n_items = sizes(encoded)["user"] - 1, sizes(encoded)["item"] - 1
    header = f"{n_users:,} users × {n_items:,} movies, device cpu"
    assert any(line.startswith(header) for line in lines), lines
    rows = table(lines, "model ")
    assert [row[:2] for row in rows] == [
        ["fm", "stars"],
        ["deepfm", "stars"],
        ["fm", "ranking"],
        ["deepfm", "ranking"],
    ]
    for _, _, timed, rate, total in rows:  # the rates and times are not judged
        assert number(timed) == (int(users) or n_users)  # 0: every user
        assert re.fullmatch(r"[\d,]+", rate) and re.fullmatch(r"[\d,]+\.\d\d", total), rows


def test_batch_lr_trains_each_setting_of_the_stars_section(train_speed):
    encoded, _ = train_speed
    args = ["--encoded", str(encoded), "--batches", "4096", "--max-epochs", "2"]
    lines = run("batch_lr.py", *args)
    stars = CONFIG["fm"]["stars"]
    assert lines[0].startswith(
        f"fm stars on ml-10m, seed {CONFIG['seeds'][0]}, config batch "
        f"{stars['batch_size']}, lr {stars['lr']}"
    )
    assert f"fields {','.join(stars['fields'])}" in lines[0]
    rows = table(lines, " batch", first=" ")
    lrs = sorted({stars["lr"], stars["lr"] * math.sqrt(4096 / stars["batch_size"])})
    assert [(int(row[0]), float(row[1])) for row in rows] == [
        (4096, pytest.approx(lr, rel=1e-3)) for lr in lrs
    ]
    n_train = json.loads((encoded / "meta.json").read_text())["splits"]["train"]
    for _, _, steps, epochs, best, rmse, seconds in rows:  # RMSE and time not judged
        assert int(steps) == -(-n_train // 4096)
        assert int(epochs) <= 2 and 1 <= int(best) <= int(epochs)
        assert re.fullmatch(r"\d+\.\d{4}", rmse) and re.fullmatch(r"\d+\.\d", seconds)


def test_encode_scale_prints_every_step(tmp_path):
    lines = run("encode_scale.py", "--ratings", "30000", "--folder", str(tmp_path))
    meta = json.loads((tmp_path / "encoded" / "meta.json").read_text())
    assert meta["rows"] == 30000
    users = sizes(tmp_path / "encoded")["user"] - 1  # with a code: rated in train
    assert re.fullmatch(r"30,000 ratings, [\d,]+ users", lines[0]), lines[0]
    assert number(lines[0].split()[2]) >= users
    steps = [line[:22].strip() for line in lines[2:7]]  # the step column
    assert steps == ["generate", "parse", "users", "encode", "parse + users + encode"]
    assert re.fullmatch(r"budget 60 s, 3 GB: (within|EXCEEDED)", lines[7]), lines[7]


def test_fields_ablation_trains_each_settings_variant_and_checks_its_keys(train_speed, tmp_path):
    encoded, _ = train_speed
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["fm"]["stars"]["max_epochs"] = 2
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    base = ["--config", str(tmp_path / "config.yaml"), "--encoded", str(encoded), "--seeds", "1"]
    lines = run("fields_ablation.py", *base, "--settings", "{embed_dim: 8}", "{lr: 0.01}")
    row = re.compile(r".+: valid \d\.\d{4} test \d\.\d{4} kept ")
    printed = [line for line in lines if row.match(line)]
    assert [line.split(": valid")[0] for line in printed] == [
        "as configured",
        "{embed_dim: 8}",
        "{lr: 0.01}",
    ]
    for line in printed:  # one seed: one kept epoch of at most max_epochs
        assert line.split(" kept ")[1] in ("1", "2")
    # a row is its settings' training: the trainer's own valid RMSE at its kept epoch
    for line, changed in zip(printed[:2], [{}, {"embed_dim": 8}], strict=True):
        settings = first_l2({"objective": "stars", **config["fm"]["stars"]}) | changed
        train_config, hparams = split_settings(settings)
        _, history, kept = train(encoded, "fm", hparams, train_config, seed=1, device="cpu")
        valid = math.sqrt(history.set_index("epoch").loc[kept, "valid_mse"])
        assert line.split(": valid ")[1].startswith(f"{valid:.4f} ") and line.endswith(f" {kept}")
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "fields_ablation.py"), *base, "--settings", "{lrr: 1}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 2 and "lrr not a key of fm.stars" in done.stderr


@pytest.mark.workflow  # the study through snakemake
def test_study_scale_runs_the_default_study_on_synthetic_data(tmp_path):
    folder = tmp_path / "study"
    lines = run("study_scale.py", "--ratings", "5000", "--seeds", "7", "--folder", str(folder))
    config = yaml.safe_load((folder / "config" / "config.yaml").read_text())
    assert (config["dataset"], config["source"], config["seeds"]) == ("synthetic", None, [7])
    assert config["synthetic"]["n_ratings"] == 5000
    # the synthetic layout, download to report (the other layouts: test_datasets.py)
    meta = json.loads((folder / "results/synthetic/encoded/meta.json").read_text())
    assert meta["rows"] == 5000 and meta["users_origin"] == ["synthetic"]
    metrics = pd.read_csv(folder / "results" / "metrics.tsv", sep="\t")
    assert (metrics["rows"].dropna() == meta["splits"]["test"]).all()
    assert list(metrics["model"]) == STUDY_ROWS
    page = (folder / "results" / "report.html").read_text()
    title = "deepfm-rec: synthetic"
    assert title in page and "synthetic" in page.replace(title, "")  # the users' origin
    assert meta["truth"]["bayes_rmse"] > 0
    assert "noise floor" in page and f"{meta['truth']['bayes_rmse']:.4f}" in page
    assert f"{metrics.set_index('model').loc['deepfm (stars)', 'rmse']:.4f}" in page
    start = next(i for i, line in enumerate(lines) if line.startswith("rule "))
    rows = {line.split()[0]: line.split() for line in lines[start + 1 :] if line.strip()}
    objectives = len(CONFIG["objectives"])
    expected = {
        "encode": 1,
        "train_fm": objectives,
        "train_deepfm": objectives,
        "evaluate": 2 * objectives,
        "baselines": 1,
        "recommend": 1,
        "profile": len(CONFIG["profile"]["models"]) * objectives,
    }
    for rule, jobs in expected.items():
        _, count, seconds, longest, rss = rows[rule]
        assert int(count) == jobs, rule
        assert 0 <= number(longest) <= number(seconds) and number(rss) > 0, rule
    total = next(line for line in lines if line.startswith("total (wall)")).split()
    assert int(total[2]) == sum(expected.values())
    floor = next(line for line in lines if line.startswith("test metrics, mean over the seeds"))
    assert re.search(r"noise floor .*: \d\.\d{4}$", floor)
    models = [line.split("  ")[0].strip() for line in lines[lines.index(floor) + 2 :]]
    for name in (
        "fm (stars)",
        "deepfm (stars)",
        "fm (ranking)",
        "deepfm (ranking)",
        "bias",
        "popularity",
        "ease",
    ):
        assert name in models, (name, models)
    # the reference the star models must not lose to: fm.stars with [user, item] alone
    reference = json.loads((folder / "reference/seed7/metrics.json").read_text())
    assert (reference["fields"], reference["seed"]) == (["user", "item"], 7)
    assert reference["l2"] in CONFIG["fm"]["stars"]["l2"] and "l2_scores" in reference
    name = "fm [user, item] (stars)"
    row = next(line for line in lines[lines.index(floor) + 2 :] if line.startswith(name))
    assert f"{reference['rmse']:.4f}" == row.split()[4]
