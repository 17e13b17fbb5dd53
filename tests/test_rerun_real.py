"""What reruns after a change, on real runs of a study (no dry runs).

A copy of the session's tiny study (the ml-100k layout's fixture: which jobs rerun does
not depend on the data's size); then a DeepFM stars setting changes, then FM is forced.
Each time only the changed rule and what depends on it (as Snakemake's `--forcerun` dry
run lists it) run, and no other output is touched.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from workflow_helpers import ROOT, TINY_100K, edit_config, scheduled_jobs, snakemake

pytestmark = pytest.mark.workflow

# the session's tiny study's settings (on the CPU: a retrained model is bit-identical)
SEEDS = len(TINY_100K["seeds"])
SEED = TINY_100K["seeds"][0]
DATASET = TINY_100K["dataset"]
DATA = f"results/{DATASET}"


def executed(output: str) -> dict[str, int]:
    """rule -> jobs that a real run's log says it started."""
    ran: dict[str, int] = {}
    for rule in re.findall(r"^(?:local)?rule (\w+):$", output, re.M):
        ran[rule] = ran.get(rule, 0) + 1
    return ran


def stamps(project: Path) -> dict[str, int]:
    """Every output file (resources and results) -> its mtime in ns."""
    files = [*(project / "resources" / DATASET).rglob("*"), *(project / "results").rglob("*")]
    return {str(p.relative_to(project)): p.stat().st_mtime_ns for p in files if p.is_file()}


def metrics(project: Path) -> pd.DataFrame:
    """One row per model and seed."""
    return pd.read_csv(project / "results" / "metrics.tsv", sep="\t").set_index(["model", "seed"])


def run(project: Path, *args: str) -> dict[str, int]:
    """A real run; checks that what ran is what Snakemake planned, returns it."""
    output = snakemake(project, *args).stdout
    ran = executed(output)
    assert ran == scheduled_jobs(output), output[-3000:]
    return ran


def downstream_of(project: Path, rule: str) -> dict[str, int]:
    """rule -> jobs of `rule` and of everything that depends on it (Snakemake's dry run)."""
    plan = snakemake(project, "-n", "--forcerun", rule)
    return scheduled_jobs(plan.stdout)


def touched(before: dict[str, int], after: dict[str, int]) -> set[str]:
    return {path for path, stamp in after.items() if before.get(path) != stamp}


def assert_untouched(before: dict[str, int], changed: set[str], *folders: str) -> None:
    kept = {path for path in before if path.startswith(folders)}
    assert kept and not changed & kept, sorted(changed & kept)


@pytest.fixture(scope="module")
def project(tiny_study, tmp_path_factory) -> Path:
    """A copy of the session's tiny study (its outputs, their times and Snakemake's
    records): nothing to do until a test changes something. The tests change its
    config/config.yaml in place (a --configfile would reorder the settings, and Snakemake
    takes reordered params for changed ones). Its config is written as the tiny study's
    was, not copied: another worker may be running snakemake in that one."""
    project = tmp_path_factory.mktemp("rerun") / "project"
    skip = {tiny_study: ["config"], tiny_study / ".snakemake": ["log"]}
    shutil.copytree(
        tiny_study, project, symlinks=True, ignore=lambda folder, _: skip.get(Path(folder), [])
    )
    shutil.copytree(ROOT / "config", project / "config")
    edit_config(project, TINY_100K)
    assert run(project) == {}
    return project


def test_a_deepfm_setting_reruns_train_deepfm_and_its_dependents_only(project):
    before, scores = stamps(project), metrics(project)
    shipped = yaml.safe_load((project / "config" / "config.yaml").read_text())
    stars = {"dropout": 0.15}
    assert stars["dropout"] != shipped["deepfm"]["stars"]["dropout"]  # else nothing reruns
    edit_config(project, {"deepfm": {"stars": stars}})
    ran = run(project)
    # the stars DeepFM of each seed and what reads it: not the ranking DeepFM
    assert ran == {"train_deepfm": SEEDS, "evaluate": SEEDS, "profile": 1, "report": 1, "all": 1}
    changed = touched(before, stamps(project))
    assert {f"{DATA}/deepfm/stars/seed{SEED}/model.pt", "results/report.html"} <= changed
    assert_untouched(
        before,
        changed,
        f"{DATA}/fm/",
        f"{DATA}/deepfm/ranking/",
        f"{DATA}/encoded/",
        f"{DATA}/users",
        f"{DATA}/baselines",
        "resources/",
    )
    after = metrics(project)
    unchanged = [name for name in after.index.levels[0] if name != "deepfm (stars)"]
    pd.testing.assert_frame_equal(after.loc[unchanged], scores.loc[unchanged])  # did not move
    assert (after.loc["deepfm (stars)", "rmse"] != scores.loc["deepfm (stars)", "rmse"]).all()
    again = snakemake(project, "-n").stdout
    assert "Nothing to be done" in again


def test_forcing_train_fm_reruns_fm_and_its_dependents_only(project):
    before, scores = stamps(project), metrics(project)
    expected = downstream_of(project, "train_fm")
    ran = run(project, "--forcerun", "train_fm")
    assert ran == expected  # both objectives of every seed, and what reads them
    assert ran["train_fm"] == 2 * SEEDS and ran["evaluate"] == 2 * SEEDS and ran["report"] == 1
    # profile is not among them: profile.models is [deepfm]
    forbidden = {"download", "synthesize_users", "encode", "baselines", "train_deepfm", "profile"}
    assert not forbidden & set(ran), ran
    changed = touched(before, stamps(project))
    fm = f"{DATA}/fm"
    assert {f"{fm}/stars/seed{SEED}/model.pt", f"{fm}/ranking/seed{SEED}/metrics.json"} <= changed
    assert_untouched(
        before,
        changed,
        f"{DATA}/deepfm/",
        f"{DATA}/encoded/",
        f"{DATA}/users",
        f"{DATA}/baselines",
        "resources/",
    )
    # the same config and seeds on the CPU: the retrained FMs score exactly as before
    pd.testing.assert_frame_equal(metrics(project), scores, check_exact=True)
