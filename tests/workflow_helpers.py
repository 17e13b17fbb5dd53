"""Run the real Snakemake workflow in a scratch copy of the project."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
# Small hand-written datasets, one folder per upstream layout
FIXTURES = ROOT / "tests" / "fixtures"
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
# Seconds before a study run (a snakemake, a podman run, a benchmark) counts as hung and
# fails its test instead of holding CI. Generous: inside the suite the cores are shared,
# and CI's machine ran the cluster's study in over 600 s where this one takes about 380.
HUNG = 1800
# Small but real: the embedded ml-latest-small, a few epochs, a small profiled batch; on
# the CPU, so that two runs of it (a rerun, a cluster's run) are bit-identical. DeepFM's
# star section chooses its l2 on a sample of users (l2_rows below the 80k train rows), as
# a large dataset's would.
FAST = {
    "device": "cpu",
    "seeds": [42, 43],
    "fm": {"stars": {"max_epochs": 3}, "ranking": {"max_epochs": 2, "embed_dim": 16}},
    "deepfm": {
        "stars": {"max_epochs": 3, "l2_rows": 40000},
        "ranking": {"max_epochs": 2, "embed_dim": 16},
    },
    "profile": {"batch_size": 256, "warmup": 1},
}
# The model column of a study's results/metrics.tsv, as the shipped config has it.
STUDY_ROWS = [
    *("fm (stars)", "fm (ranking)", "deepfm (stars)", "deepfm (ranking)"),
    *("global_mean", "bias", "popularity", "itemknn", "ease"),
]
# A study of one seed on a few ratings (the fixture datasets), its profiled batch small.
TINY = {**FAST, "seeds": [7], "profile": {"batch_size": 32, "warmup": 1}}
# TINY on the ml-100k layout's fixture (50 ratings): conftest's tiny_study. It runs the
# protocol the other studies do not: a temporal split, candidates that exclude train only.
TINY_100K = {
    **TINY,
    "dataset": "ml-100k",
    "source": str(FIXTURES / "ml-100k"),
    "split": {"method": "temporal"},
    "ranking": {"exclude": "train"},
}


def require_or_skip(condition: object, reason: str, strict: str) -> None:
    """Skip the test with `reason` unless `condition`; fail instead when the environment
    variable `strict` is 1 (as CI sets it), so that CI cannot pass by skipping."""
    if condition:
        return
    if os.environ.get(strict) == "1":
        pytest.fail(f"{reason} ({strict}=1)")
    pytest.skip(reason)


@contextmanager
def full_disk(folder: Path, size: str = "1m") -> Iterator[Path]:
    """`folder` (made here) on a tmpfs of `size` for the block: a disk that fills up.
    Mounting needs root: the test skips without it, unless DEEPFM_REQUIRE_MOUNT=1."""
    folder.mkdir(parents=True, exist_ok=True)
    mount = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)]
    mounted = subprocess.run(mount, capture_output=True, text=True)
    require_or_skip(
        mounted.returncode == 0, f"cannot mount a tmpfs: {mounted.stderr}", "DEEPFM_REQUIRE_MOUNT"
    )
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def copy_project(dest: Path) -> Path:
    """The files a user's clone runs the workflow from, copied into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "profiles", "workflow", "scripts", "config"):
        source = ROOT / name
        if source.is_symlink():
            (dest / name).symlink_to(source.readlink())
        elif source.is_dir():
            shutil.copytree(source, dest / name)
        else:
            shutil.copy2(source, dest / name)
    shutil.copytree(ROOT / "resources" / "embedded", dest / "resources" / "embedded")
    return dest


def merge(target: dict, update: dict) -> None:
    """Merge `update` (nested dicts) into `target`, in place."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = value


def edit_config(project: Path, changes: dict) -> None:
    """Merge `changes` (nested dicts) into the project's config/config.yaml."""
    path = project / "config" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    merge(config, changes)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def snakemake(project: Path, *args: str, check: bool = True, timeout: int = HUNG):
    """Run snakemake in `project`; returns the CompletedProcess (stdout and stderr joined)."""
    result = subprocess.run(
        [SNAKEMAKE, "--cores", "2", *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    result.stdout += result.stderr
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-5000:]}")
    return result


def error_messages(output: str) -> list[str]:
    """The error messages in snakemake's output: a rule's DataError line ("DataError: ..."),
    and the message line after Snakemake's "WorkflowError in file ..." for an error the
    Snakefile raised while parsing."""
    lines = output.splitlines()
    parsing = [i + 1 for i, line in enumerate(lines[:-1]) if line.startswith("WorkflowError in")]
    return [line for line in lines if line.startswith("DataError: ")] + [lines[i] for i in parsing]


def scheduled_jobs(output: str) -> dict[str, int]:
    """The 'Job stats' table of a snakemake (dry) run: rule -> count."""
    if "Nothing to be done" in output:
        return {}
    table = output.split("Job stats:", 1)[1]
    jobs = {}
    for line in table.splitlines()[3:]:
        match = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not match or match.group(1) == "total":
            break
        jobs[match.group(1)] = int(match.group(2))
    return jobs


def four_decimals(value: float, slack: float = 1e-6) -> set[str]:
    """What the report may show, to 4 decimals, for a value read back from metrics.tsv.

    The TSV rounds to 6 decimals and the page rounds the unrounded value, so a TSV value
    (or a mean or std of TSV values) is within `slack` of the page's and may round either
    way: 0.662150 in the TSV can be 0.6621 on the page."""
    return {f"{value - slack:.4f}", f"{value + slack:.4f}"}
