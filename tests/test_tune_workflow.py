"""The search as workflow jobs (workflow/rules/tune.smk): workers sharing one Optuna study
in a journal file, on the embedded ml-latest-small. The tests run in order on one project:
two workers, then more trials with a worker killed, then a fresh one-worker study whose
best settings are retrained."""

from __future__ import annotations

import html
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml

from deepfm_rec.report import search_section
from deepfm_rec.trials import load_study
from deepfm_rec.tuning import search
from workflow_helpers import HUNG, SNAKEMAKE, copy_project, snakemake

pytestmark = pytest.mark.workflow

TUNE_DIR = Path("results/ml-latest-small/tune/fm/stars")
BASE = {
    "seeds": [42],
    "device": "cpu",
    "fm": {"stars": {"max_epochs": 1}},
    "tune": {"sections": ["fm.stars"], "trials": 4, "workers": 2, "stale_after": 4},
}


def configure(project: Path, **tune) -> list[str]:
    """The snakemake arguments of BASE with `tune` overrides (config/tune.yaml)."""
    config = {**BASE, "tune": {**BASE["tune"], **tune}}
    (project / "config" / "tune.yaml").write_text(yaml.safe_dump(config))
    return ["--configfile", "config/config.yaml", "config/tune.yaml"]


def trials_of(project: Path) -> pd.DataFrame:
    return pd.read_csv(project / TUNE_DIR / "trials.tsv", sep="\t")


def study_of(project: Path) -> optuna.Study:
    definition = yaml.safe_load((project / TUNE_DIR / "study.yaml").read_text())
    return load_study(project / TUNE_DIR / "journal.log", definition, 0)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """Two workers, four trials."""
    project = copy_project(tmp_path_factory.mktemp("tune"))
    snakemake(project, "tune", *configure(project))
    return project


def test_two_workers_share_one_study_of_the_requested_trials(project):
    table = trials_of(project)
    assert len(table) == 4 and (table["state"] == "COMPLETE").all()
    assert sorted(table["trial"]) == [0, 1, 2, 3]  # no trial number twice
    assert set(table["worker"]) == {0, 1}
    ran = [json.loads((project / TUNE_DIR / f"worker{w}.json").read_text()) for w in (0, 1)]
    assert sorted(ran[0]["trials"] + ran[1]["trials"]) == [0, 1, 2, 3]
    assert table.loc[table["trial"] == 0, "lr"].item() == 0.0008  # the section's own first
    assert table["valid_rmse"].between(0.5, 1.5).all()
    assert (table["valid_rmse"] == table["valid_rmse_seed42"]).all()  # one seed per trial
    best = yaml.safe_load((project / TUNE_DIR / "best.yaml").read_text())
    winner = table.sort_values("valid_rmse").iloc[0]
    assert best == {"fm": {"stars": {n: winner[n].item() for n in ("lr", "l2", "embed_dim")}}}
    # the report's section on it: the counts, the timing caveat, the snippet, the plot
    page = search_section(project / TUNE_DIR / "trials.tsv")
    assert "4 complete trials by 2 worker(s)" in page and "the trials table is the record" in page
    assert html.escape((project / TUNE_DIR / "best.yaml").read_text()) in page
    assert page.count("data:image/png;base64,") == 1


def test_a_killed_worker_fails_its_trial_and_the_other_finishes_the_budget(project):
    """Raising trials reruns the workers on the same study; worker 1 is killed (-9) in
    the middle of a trial, worker 0 marks that trial failed and runs the budget out."""
    args = configure(project, trials=7)
    run = subprocess.Popen(
        [SNAKEMAKE, "--cores", "2", "tune", *args],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    victim, deadline = None, time.monotonic() + 300
    while victim is None and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.2)
        running = study_of(project).get_trials(states=(optuna.trial.TrialState.RUNNING,))
        # a trial's attributes land one write at a time: wait for its process's too
        owned = [t for t in running if t.user_attrs.get("worker") == 1 and "host" in t.user_attrs]
        if owned:
            victim = owned[0]
    assert victim is not None, "worker 1 never ran a trial"
    os.kill(int(victim.user_attrs["host"].rsplit(":", 1)[1]), signal.SIGKILL)
    output = run.communicate(timeout=HUNG)[0]
    assert run.returncode != 0, output  # worker 1's job failed; worker 0's finished
    trials = study_of(project).get_trials()
    states = {t.number: t.state.name for t in trials}
    assert states[victim.number] == "FAIL"
    assert list(states.values()).count("COMPLETE") == 7
    assert "RUNNING" not in states.values()
    # the rerun has nothing left to train: worker 1 finds the budget spent
    snakemake(project, "tune", *args)
    table = trials_of(project)
    assert sorted(table["trial"]) == list(range(8))
    assert table.set_index("trial").loc[victim.number, "state"] == "FAIL"
    assert json.loads((project / TUNE_DIR / "worker1.json").read_text())["trials"] == []


def test_one_worker_is_deterministic_and_its_best_settings_retrain_to_its_score(project):
    """A new sampler seed is a new study. With one worker its trials are those of the
    in-process search (deepfm-rec tune) of the same seed; best.yaml, given after the
    config, retrains the section to the best trial's valid RMSE."""
    args = configure(project, trials=3, workers=1, seed=5)
    snakemake(project, "tune", *args)
    table = trials_of(project)
    assert len(table) == 3 and set(table["worker"]) == {0}
    definition = yaml.safe_load((project / TUNE_DIR / "study.yaml").read_text())
    here = search(
        project / "results/ml-latest-small/encoded",
        "fm",
        definition["settings"],
        definition["space"],
        trials=3,
        seed=5,
        seeds=[42],
        memory_budget=8e9,
    ).sort_values("trial", ignore_index=True)
    columns = ["trial", "lr", "l2", "embed_dim", "valid_rmse", "kept_epochs"]
    pd.testing.assert_frame_equal(
        table[columns].astype({"kept_epochs": str}), here[columns], check_exact=False, rtol=1e-6
    )
    best = project / TUNE_DIR / "best.yaml"
    snakemake(
        project,
        "results/ml-latest-small/fm/stars/seed42/history.tsv",
        *args,
        str(best.relative_to(project)),
    )
    history = pd.read_csv(project / "results/ml-latest-small/fm/stars/seed42/history.tsv", sep="\t")
    winner = table.sort_values("valid_rmse").iloc[0]
    kept = int(winner["kept_epochs"])
    assert (history.set_index("epoch").loc[kept, "valid_mse"] ** 0.5) == pytest.approx(
        winner["valid_rmse"], rel=1e-6
    )


def test_a_range_the_section_refuses_fails_before_any_job(tmp_path):
    project = copy_project(tmp_path)
    configure(project)
    config = yaml.safe_load((project / "config" / "tune.yaml").read_text())
    config["tune"]["space"] = {"l2": {"log": [0.0, 0.1]}}
    (project / "config" / "tune.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(
        project, "-n", "tune", "--configfile", "config/config.yaml", "config/tune.yaml", check=False
    )
    assert result.returncode != 0
    assert "config key 'tune.space.l2': a log range starts above 0, not at 0.0" in result.stdout
