"""The default study on generated data of a given size: each rule's time and memory.

Run by hand (tests/test_benchmarks.py runs it once on small data and judges no figure):

    .venv/bin/python benchmarks/study_scale.py --ratings 1000000 --seeds 42
    .venv/bin/python benchmarks/study_scale.py --ratings 10000000 --seeds 42   # about an hour

It copies the workflow into --folder (default benchmarks/data/study-<ratings>), sets the
shipped config/config.yaml to `dataset: synthetic` of --ratings ratings (MovieLens-shaped
users and movies, `source: null`) with the given seeds, runs `snakemake --cores
--cores` there to the report, and prints one table, last: each rule's jobs, their wall
time (summed, and the longest) and the largest peak RSS, from Snakemake's `benchmark:`
files (rules without one, the download and the report, are in the total only), the
whole run's wall time, and the test metrics of every model and baseline (mean over the
seeds) beside the generator's noise floor. After the study (outside its wall time) it
trains the reference the star models must not lose to: the project's FM with fields
`[user, item]` alone, as the shipped `fm.stars` section trains (its l2 choice included),
on the study's encoded folder and seeds, in `reference/`; its row is "fm [user, item]
(stars)". A rerun in the same folder reruns what changed, so delete the folder to time a
run from scratch.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

from deepfm_rec.config import SCHEMA, load_config, study_path, train_settings
from deepfm_rec.evaluate import write_model_metrics
from deepfm_rec.train import train_model

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ("Snakefile", "workflow", "scripts", "config")


def prepare(folder: Path, ratings: int, seeds: list[int], threads: int) -> None:
    """The workflow's files in `folder`, its config set to the synthetic dataset."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW:
        source, dest = ROOT / name, folder / name
        if source.is_dir():
            shutil.copytree(source, dest, dirs_exist_ok=True)
        else:
            shutil.copy2(source, dest)
    path = folder / "config" / "config.yaml"
    config = load_config(path, folder / SCHEMA)
    config.update(dataset="synthetic", source=None, seeds=seeds, threads=threads)
    config["synthetic"]["n_ratings"] = ratings
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def rule_table(folder: Path) -> pd.DataFrame:
    """Per rule (benchmarks/{rule}/…tsv): jobs, summed and longest wall seconds, and the
    largest peak RSS (MB)."""
    rows = []
    for path in sorted((folder / "benchmarks").rglob("*.tsv")):
        rule = path.relative_to(folder / "benchmarks").parts[0]
        record = pd.read_csv(path, sep="\t").iloc[-1]  # the last run of the job
        rows.append({"rule": rule, "s": float(record["s"]), "rss": float(record["max_rss"])})
    jobs = pd.DataFrame(rows, columns=["rule", "s", "rss"])
    return jobs.groupby("rule", sort=False).agg(
        jobs=("s", "size"), seconds=("s", "sum"), longest=("s", "max"), peak_rss_mb=("rss", "max")
    )


def reference(folder: Path, encoded: Path, config: dict, threads: int) -> pd.DataFrame:
    """The project's FM with fields [user, item] alone, trained and evaluated on the
    study's `encoded` folder as the study trains fm.stars (one l2 choice, on its first
    seed), in folder/reference: metrics.tsv's columns, a row per seed, under the model
    "fm [user, item] (stars)"."""
    settings = train_settings(config, "fm", "stars") | {"fields": ["user", "item"]}
    ranking = config["ranking"]
    records = []
    for seed in config["seeds"]:
        out = folder / "reference" / f"seed{seed}"
        out.mkdir(parents=True, exist_ok=True)
        if not (out / "metrics.json").exists():
            first = folder / "reference" / f"seed{config['seeds'][0]}" / "model.pt"
            train_model(
                encoded,
                "fm",
                settings,
                seed=seed,
                device=config["device"],
                threads=threads,
                memory_budget=config["memory_budget_gb"] * 1e9,
                checkpoint=out / "model.pt",
                history=out / "history.tsv",
                chosen=None if seed == config["seeds"][0] else first,
            )
            write_model_metrics(
                encoded,
                out / "model.pt",
                out / "metrics.json",
                ks=[ranking["k"]],
                threshold=ranking["threshold"],
                exclude=ranking["exclude"],
                device=config["device"],
                threads=threads,
                memory_budget=config["memory_budget_gb"] * 1e9,
            )
        record = json.loads((out / "metrics.json").read_text())
        (at_k,) = record["ranking"]
        records.append(
            {
                "model": "fm [user, item] (stars)",
                "rmse": record["rmse"],
                "mae": record["mae"],
                **{f"{name}@{ranking['k']}": at_k[name] for name in ("ndcg", "hr")},
            }
        )
    return pd.DataFrame(records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ratings", type=int, default=1_000_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42])
    parser.add_argument("--cores", type=int, default=2, help="snakemake --cores")
    parser.add_argument("--threads", type=int, default=1, help="config key threads")
    parser.add_argument("--folder", type=Path, help="default benchmarks/data/study-<ratings>")
    args = parser.parse_args()
    folder = args.folder or ROOT / "benchmarks" / "data" / f"study-{args.ratings}"
    prepare(folder, args.ratings, args.seeds, args.threads)
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    start = time.perf_counter()
    done = subprocess.run([snakemake, "--cores", str(args.cores)], cwd=folder)
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"the study failed (exit {done.returncode}); logs in {folder / 'logs'}")

    rules = rule_table(folder)
    metrics = pd.read_csv(folder / study_path("metrics_table"), sep="\t")
    print(
        f"\nthe default study on {args.ratings:,} synthetic ratings, seeds {args.seeds}, "
        f"snakemake --cores {args.cores}, threads {args.threads}: {folder}"
    )
    print(f"{'rule':<16} {'jobs':>4} {'seconds':>9} {'longest':>9} {'peak RSS MB':>12}")
    for row in rules.itertuples():
        print(
            f"{row.Index:<16} {row.jobs:>4} {row.seconds:>9.1f} {row.longest:>9.1f} "
            f"{row.peak_rss_mb:>12,.0f}"
        )
    print(
        f"{'total (wall)':<16} {len(rules) and rules['jobs'].sum():>4} {wall:>9.1f} "
        f"{'':>9} {rules['peak_rss_mb'].max():>12,.0f}"
    )
    config = load_config(folder / "config" / "config.yaml", folder / SCHEMA)
    k = config["ranking"]["k"]
    encoded = folder / study_path("encoded", dataset="synthetic")
    metrics = pd.concat([metrics, reference(folder, encoded, config, args.cores)])
    mean = metrics.groupby("model", sort=False)[["rmse", "mae", f"ndcg@{k}", f"hr@{k}"]].mean()
    truth = json.loads((encoded / "meta.json").read_text())
    print(
        f"\ntest metrics, mean over the seeds; the generator's noise floor (RMSE of the true "
        f"expected ratings): {truth['truth']['bayes_rmse']:.4f}"
    )
    print(mean.to_string(float_format=lambda v: f"{v:.4f}", na_rep="-"))


if __name__ == "__main__":
    main()
