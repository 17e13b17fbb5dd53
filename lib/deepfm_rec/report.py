"""The study's one self-contained HTML page: metrics, curves, profile, config, provenance."""

from __future__ import annotations

import base64
import datetime as dt
import html
import importlib.metadata
import json
import platform
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from deepfm_rec.data.encoding import open_encoded
from deepfm_rec.plots import plot_metrics, plot_ranking
from deepfm_rec.recommend import known_favourites, user_code

METRIC_COLUMNS = [
    "model",
    "kind",
    "mse",
    "rmse",
    "mae",
    "rows",
    "seed",
    "best_epoch",
    "valid_mae",
]
RANKING_METRICS = ("hr", "precision", "recall", "ndcg")
PACKAGES = ("deepfm-rec", "torch", "numpy", "pandas", "snakemake", "matplotlib")

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 70rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; }
table { border-collapse: collapse; margin: .5rem 0 1rem; }
th, td { border: 1px solid #ccc; padding: .25rem .6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
tr.baseline td { color: #555; }
pre { background: #f6f6f6; padding: .6rem; overflow-x: auto; font-size: 12px; }
img { max-width: 100%; }
.summary { font-size: 1.1rem; background: #eef5ff; padding: .6rem 1rem; border-radius: 6px; }
"""


def read_records(model_metrics: list[str | Path], baselines_json: str | Path) -> list[dict]:
    """The metrics.json records of every model and seed, then the baselines' records."""
    records = [json.loads(Path(p).read_text()) for p in model_metrics]
    return records + json.loads(Path(baselines_json).read_text())


def metrics_table(records: list[dict], k: int) -> pd.DataFrame:
    """One row per model and seed, then the baselines: METRIC_COLUMNS, then the ranking
    metrics at `k` (hr@k, precision@k, recall@k, ndcg@k; empty where not ranked)."""
    table = pd.DataFrame(records).reindex(columns=METRIC_COLUMNS)
    for name in RANKING_METRICS:
        table[f"{name}@{k}"] = [
            next((r[name] for r in record.get("ranking", []) if r["k"] == k), np.nan)
            for record in records
        ]
    return table.astype({"seed": "Int64", "best_epoch": "Int64", "rows": "Int64"})


def ranking_curves(records: list[dict]) -> pd.DataFrame:
    """Mean over seeds of every ranking metric at every K: columns model, k, hr, ..."""
    rows = [{"model": r["model"], **row} for r in records for row in r.get("ranking", [])]
    frame = pd.DataFrame(rows)
    return frame.groupby(["model", "k"], sort=False).mean(numeric_only=True).reset_index()


def summarize(table: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Mean and std over seeds of each metric, one row per model.

    Columns: model, kind, seeds, and <metric>_mean, <metric>_std for each metric. A
    metric a row does not have (a rating baseline's NDCG) stays empty; a single run's
    std is 0.
    """
    grouped = table.groupby(["model", "kind"], sort=False)
    summary = grouped[metrics].agg(["mean", "std"])
    summary.columns = [f"{metric}_{stat}" for metric, stat in summary.columns]
    for metric in metrics:
        known = summary[f"{metric}_mean"].notna()
        summary.loc[known, f"{metric}_std"] = summary.loc[known, f"{metric}_std"].fillna(0.0)
    summary = summary.reset_index()
    summary.insert(2, "seeds", grouped.size().to_numpy())
    return summary


def _image(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _table(frame: pd.DataFrame, row_class: pd.Series | None = None) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for i, (_, row) in enumerate(frame.iterrows()):
        cells = "".join(
            f"<td>{v:.4f}</td>" if isinstance(v, float) else f"<td>{html.escape(str(v))}</td>"
            for v in row.fillna("")
        )
        cls = f' class="{row_class.iloc[i]}"' if row_class is not None else ""
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def provenance() -> dict[str, str]:
    """Package versions, Python, platform and the git commit of the working directory."""
    info = {"python": platform.python_version(), "platform": platform.platform()}
    for name in PACKAGES:
        try:
            info[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            info[name] = "not installed"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        info["git commit"] = commit + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        info["git commit"] = "none (not a git checkout)"
    return info


def _mean_std(summary: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """The summary rows that have these metrics, each metric one `mean ± std` column."""
    summary = summary[summary[[f"{m}_mean" for m in metrics]].notna().any(axis=1)]
    shown = summary[["model", "seeds"]].copy()
    for metric in metrics:
        mean, std = summary[f"{metric}_mean"], summary[f"{metric}_std"]
        shown[metric] = [
            "" if pd.isna(m) else f"{m:.4f} ± {s:.4f}" if n > 1 else f"{m:.4f}"
            for m, s, n in zip(mean, std, summary["seeds"], strict=True)
        ]
    return shown


def _examples(encoded: Path, topk: Path, users: int, likes: int = 5) -> str:
    """A few users' recommendations beside the movies they rated highest in train."""
    enc = open_encoded(Path(encoded))
    lists = pd.read_csv(topk, sep="\t", keep_default_na=False)
    parts = []
    for user in lists["user"].drop_duplicates().head(users):
        known, _ = known_favourites(enc, user_code(enc, int(user)), likes)
        liked = "".join(
            f"<li>{html.escape(t)} ({r:g}★)</li>"
            for t, r in zip(known["title"], known["stars"], strict=True)
        )
        top = lists[lists["user"] == user][["rank", "title", "genres", "predicted_stars", "score"]]
        parts.append(
            f"<h4>user {user}</h4><div style='display:flex;gap:2rem'>"
            f"<div>{_table(top)}</div>"
            f"<div><b>rated highest in train</b><ul>{liked}</ul></div></div>"
        )
    return "".join(parts)


def write_report(
    out: Path,
    *,
    table_out: Path,
    plot_out: Path,
    model_metrics: list[Path],
    baselines: Path,
    encoded: Path,
    histories: list[Path],
    curves: list[Path],
    profiles: list[Path],
    topk: Path,
    ranking_plot_out: Path,
    k: int,
    threshold: float,
    examples: int,
    config: dict,
) -> None:
    """Write the metrics table (TSV), its plot and the HTML report (every image embedded).

    Args:
        out: the HTML page.
        table_out, plot_out: results/metrics.tsv (one row per model and seed, then the
            baselines; deepfm_rec.evaluate.METRIC_COLUMNS) and its PNG (mean ± std).
        model_metrics: the metrics.json of every model and seed.
        baselines: the baselines' JSON.
        encoded: the encoded folder (its meta.json describes the data).
        histories: the history.tsv of every model and seed, laid out as
            results/<dataset>/<model>/seed<seed>/history.tsv.
        curves: the curves.png to show, one per model (<model>/seed<seed>/curves.png).
        profiles: the profile.txt of the profiled models (<model>/profile.txt).
        topk: a topk.tsv of recommendations (deepfm_rec.recommend), for the examples.
        ranking_plot_out: the PNG of NDCG@K and recall@K against K.
        k, threshold, examples: the K of the ranking table, the least stars that make a
            test rating relevant, the number of example users.
        config: the workflow config used.
    """
    meta = json.loads((Path(encoded) / "meta.json").read_text())
    records = read_records(model_metrics, baselines)
    table = metrics_table(records, k)
    table.to_csv(table_out, sep="\t", index=False, float_format="%.6f")
    ranking = [f"{name}@{k}" for name in RANKING_METRICS]
    summary = summarize(table, ["mse", "rmse", "mae", *ranking])
    plot_metrics(summary[summary["rmse_mean"].notna()], Path(plot_out))
    plot_ranking(ranking_curves(records), Path(ranking_plot_out))
    by_name = summary.set_index("model")
    headline = ""
    if {"deepfm", "bias"} <= set(by_name.index):
        d, b = by_name.loc["deepfm", "rmse_mean"], by_name.loc["bias", "rmse_mean"]
        verdict = "beats" if d < b else "does not beat"
        seeds = int(by_name.loc["deepfm", "seeds"])
        headline = (
            f'<p class="summary">DeepFM test RMSE <b>{d:.4f}</b> (mean of {seeds} seed'
            f"{'s' if seeds > 1 else ''}) {verdict} the tuned bias baseline's <b>{b:.4f}</b> "
            f"stars, on {int(table['rows'].iloc[0])} test ratings of "
            f"{html.escape(meta['dataset'])}."
        )
        if "truth" in meta:  # a synthetic dataset knows the best possible RMSE
            headline += (
                f" The noise floor (the RMSE of the true expected ratings) is "
                f"<b>{meta['truth']['bayes_rmse']:.4f}</b>: DeepFM is "
                f"{d - meta['truth']['bayes_rmse']:.4f} stars above it."
            )
        headline += "</p>"
    sections = [
        f"<h1>deepfm-rec: {html.escape(meta['dataset'])}</h1>",
        headline,
        "<h2>Test metrics (stars)</h2>",
        "<p>Whole test split; predictions clipped to the rating scale "
        f"[{meta['rating_min']}, {meta['rating_max']}]; data split with seed {meta['seed']}; "
        "models trained with each seed below, mean ± std over seeds.</p>",
        _table(_mean_std(summary, ["mse", "rmse", "mae"])),
        _image(plot_out, "test RMSE and MAE per model"),
        f"<details><summary>per-seed rows ({len(table)})</summary>"
        f"{_table(table.drop(columns=['kind']), table['kind'])}</details>",
        "<h2>Ranking</h2>",
        f"<p>For each test user: the movies rated ≥ {threshold:g} stars in test are relevant; "
        "every movie the user did not rate in train is a candidate; models rank candidates "
        "by their unclipped prediction (score; predicted_stars is it clipped to the scale), "
        "the popularity baseline by train ratings. Mean ± std over seeds.</p>",
        _table(_mean_std(summary, ranking)),
        _image(ranking_plot_out, "NDCG@K and recall@K against K"),
        f"<h3>Examples: DeepFM's top {k} beside what the user liked</h3>",
        _examples(Path(encoded), Path(topk), examples),
        "<h2>Learning curves</h2>",
    ]
    for png in map(Path, curves):
        name = png.parent.parent.name
        runs = "".join(
            f"<p>{html.escape(path.parent.name)}: {len(h)} epochs</p>{_table(h)}"
            for path in map(Path, histories)
            if path.parent.parent.name == name
            for h in [pd.read_csv(path, sep="\t")]
        )
        sections += [
            f"<h3>{html.escape(name)}</h3>",
            _image(png, f"{name} learning curves"),
            f"<details><summary>history of every seed</summary>{runs}</details>",
        ]
    sections.append("<h2>Profile of one training step</h2>")
    for text in map(Path, profiles):
        sections += [
            f"<h3>{html.escape(text.parent.name)}</h3>",
            f"<pre>{html.escape(Path(text).read_text())}</pre>",
        ]
    splits = ", ".join(f"{k} {v}" for k, v in meta["splits"].items())
    fields = ", ".join(f"{f['name']} ({f['kind']})" for f in meta["fields"])
    users = " and ".join(meta["users_origin"]) or "none (no demographic fields)"
    data = {
        "dataset": meta["dataset"],
        "source": meta["source"],
        f"checksum ({meta['checksum_kind']})": meta["checksum"],
        "ratings": meta["rows"],
        "splits": splits,
        "fields": fields,
        "user demographics": users,
        "train mean": f"{meta['train_mean']:.4f}",
        "seed": meta["seed"],
    }
    if "truth" in meta:
        data["ground truth (synthetic)"] = ", ".join(f"{k} {v}" for k, v in meta["truth"].items())
    info = {**provenance(), "written": dt.datetime.now().isoformat(timespec="seconds")}
    sections += [
        "<h2>Data</h2>",
        _table(pd.DataFrame({"": list(data), "value": [str(v) for v in data.values()]})),
        "<h2>Config</h2>",
        f"<pre>{html.escape(yaml.safe_dump(config, sort_keys=False))}</pre>",
        "<h2>Provenance</h2>",
        _table(pd.DataFrame({"": list(info), "value": list(info.values())})),
    ]
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>deepfm-rec report: {html.escape(meta['dataset'])}</title>"
        f"<style>{STYLE}</style></head><body>\n" + "\n".join(sections) + "\n</body></html>\n"
    )
    Path(out).write_text(page, encoding="utf-8")
