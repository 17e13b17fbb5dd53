"""The hand-run benchmarks, run end to end as real subprocesses on a small synthetic
dataset: they must finish and print complete, consistent tables. Their speed figures
are not judged here (see the README's Speed section)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def run(script: str, *args: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True, text=True, timeout=600, cwd=BENCHMARKS.parent,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.splitlines()


def table(lines: list[str], header: str) -> list[list[str]]:
    """The rows (split on spaces) under the line that starts with `header`."""
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    return [line.split() for line in lines[start + 1 :] if line.startswith(("fm ", "deepfm "))]


def number(text: str) -> float:
    return float(text.replace(",", "").rstrip("x"))


@pytest.fixture(scope="module")
def train_speed(tmp_path_factory) -> tuple[Path, list[str]]:
    folder = tmp_path_factory.mktemp("benchmarks")
    args = ["--ratings", "30000", "--folder", str(folder), "--batches", "512", "4096"]
    lines = run("train_speed.py", *args, "--repeats", "3", "--seconds", "0.05", "--epoch")
    return folder / "synthetic-30000" / "encoded", lines


def test_train_speed_prints_every_case_with_its_ratio_and_phases(train_speed):
    encoded, lines = train_speed
    assert (encoded / "meta.json").exists()
    rows = table(lines, "model ")
    cases = [(row[0], " ".join(row[1:-8]), int(row[-8])) for row in rows]
    expected = [
        (name, path, batch)
        for name in ("fm", "deepfm")
        for path, batch in [
            ("per-sample DataLoader, 0 workers", 1024),
            ("per-sample DataLoader, 4 workers", 1024),
            ("fast (cpu)", 512),
            ("fast (cpu)", 4096),
        ]
    ]
    assert cases == expected
    for name in ("fm", "deepfm"):
        mine = [row for row in rows if row[0] == name]
        assert mine[0][-5] == "1.0x"  # the 0-worker reference is the base
        base = number(mine[0][-7])
        for row in mine:
            rate, (low, high), ratio = number(row[-7]), row[-6].split("-"), number(row[-5])
            assert 0 < number(low) <= rate <= number(high)  # the median of the blocks
            assert ratio == pytest.approx(rate / base, abs=0.051)  # printed to 0.1
            for ms in row[-4:]:  # gather, forward, backward, step: ms to 0.01, not judged
                assert re.fullmatch(r"\d+\.\d\d", ms), row
    # the epoch's time is not judged (30,000 ratings can take less than the printed 0.01 s);
    # what it covered is: every train row once, in ceil(rows / 1024) steps
    n_train = json.loads((encoded / "meta.json").read_text())["splits"]["train"]
    epoch = next(line for line in lines if line.startswith("one FM epoch at batch 1024"))
    assert f"({n_train:,} rows in {-(-n_train // 1024):,} steps," in epoch


def test_recommend_speed_times_both_models_on_the_encoded_data(train_speed):
    encoded, _ = train_speed
    lines = run("recommend_speed.py", "--encoded", str(encoded), "--users", "40")
    meta = json.loads((encoded / "meta.json").read_text())
    sizes = {f["name"]: f["vocab_size"] for f in meta["fields"] if "vocab_size" in f}
    header = f"{sizes['user'] - 1:,} users × {sizes['item'] - 1:,} movies, device cpu"
    assert any(line.startswith(header) for line in lines), lines
    rows = table(lines, "model ")
    assert [row[0] for row in rows] == ["fm", "deepfm"]
    for _, timed, rate, total in rows:  # the rates and times are not judged
        assert int(timed) == 40
        assert re.fullmatch(r"[\d,]+", rate) and re.fullmatch(r"[\d,]+", total), (rate, total)
