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

from deepfm_rec.config import TITLES
from deepfm_rec.data.catalogue import known_favourites, user_code
from deepfm_rec.data.encoding import open_encoded
from deepfm_rec.plots import plot_curves, plot_metrics, plot_ranking
from deepfm_rec.search_space import metric_name, ranked

METRIC_COLUMNS = [
    "model",
    "objective",
    "kind",
    "mse",
    "rmse",
    "mae",
    "rows",
    "seed",
    "best_epoch",
    "monitor",
    "best_valid",
    "l2",
]
RANKING_METRICS = ("ndcg", "hr", "recall", "precision", "coverage", "popularity")
# the rating baseline every star model is compared with, in the headline and the plot
REFERENCE = "bias"
PACKAGES = ("deepfm-rec", "torch", "numpy", "pandas", "snakemake", "matplotlib")

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 70rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; }
table { border-collapse: collapse; margin: .5rem 0 1rem; }
th, td { border: 1px solid #ccc; padding: .25rem .6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
td.text, th.text { text-align: left; }
tr.baseline td { color: #555; }
pre { background: #f6f6f6; padding: .6rem; overflow-x: auto; font-size: 12px; }
img { max-width: 100%; }
.summary { font-size: 1.1rem; background: #eef5ff; padding: .6rem 1rem; border-radius: 6px; }
"""


def display_name(record: dict) -> str:
    """A model's name with its objective ("deepfm (ranking)"); a baseline's name."""
    objective = record.get("objective")
    return f"{record['model']} ({objective})" if record["kind"] == "model" else record["model"]


def read_records(model_metrics: list[str | Path], baselines_json: str | Path) -> list[dict]:
    """The metrics.json records of every model and seed, then the baselines' records."""
    records = [json.loads(Path(p).read_text()) for p in model_metrics]
    return records + json.loads(Path(baselines_json).read_text())


def metrics_table(records: list[dict], k: int) -> pd.DataFrame:
    """One row per model, objective and seed, then the baselines: METRIC_COLUMNS (model
    named with its objective), then the ranking metrics at `k` (ndcg@k, hr@k, ...; empty
    where not ranked)."""
    table = pd.DataFrame(records).reindex(columns=METRIC_COLUMNS)
    table["model"] = [display_name(r) for r in records]
    for name in RANKING_METRICS:
        table[f"{name}@{k}"] = [
            next((r[name] for r in record.get("ranking", []) if r["k"] == k), np.nan)
            for record in records
        ]
    return table.astype({"seed": "Int64", "best_epoch": "Int64", "rows": "Int64"})


def ranking_curves(records: list[dict]) -> pd.DataFrame:
    """Mean over seeds of every ranking metric at every K: columns model, k, ndcg, ..."""
    rows = [{"model": display_name(r), **row} for r in records for row in r.get("ranking", [])]
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


TEXT_CELL = ' class="text"'


def _table(frame: pd.DataFrame, row_class: pd.Series | None = None) -> str:
    """An HTML table: numbers to 4 decimals, right-aligned; text left-aligned."""
    text = [not pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns]
    head = "".join(
        f"<th{TEXT_CELL if is_text else ''}>{html.escape(str(c))}</th>"
        for c, is_text in zip(frame.columns, text, strict=True)
    )
    body = []
    for i, (_, row) in enumerate(frame.iterrows()):
        cells = "".join(
            f"<td>{v:.4f}</td>"
            if isinstance(v, float)
            else f"<td{TEXT_CELL if is_text else ''}>{html.escape(str(v))}</td>"
            for v, is_text in zip(row.fillna(""), text, strict=True)
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
    columns = ["rank", "title", "genres", "predicted_stars", "score"]
    if (lists["predicted_stars"] == "").all():  # a ranking model: its score is no rating
        columns.remove("predicted_stars")
    parts = []
    for user in lists["user"].drop_duplicates().head(users):
        known, _ = known_favourites(enc, user_code(enc, int(user)), likes)
        liked = "".join(
            f"<li>{html.escape(t)} ({r:g}★)</li>"
            for t, r in zip(known["title"], known["stars"], strict=True)
        )
        top = lists[lists["user"] == user][columns]
        parts.append(
            f"<h4>user {user}</h4><div style='display:flex;gap:2rem'>"
            f"<div>{_table(top)}</div>"
            f"<div><b>rated highest in train</b><ul>{liked}</ul></div></div>"
        )
    return "".join(parts)


def _protocol(meta: dict, threshold: float, exclude: str, users: int) -> str:
    """The evaluation protocol in one sentence."""
    shares = {name: count / meta["rows"] for name, count in meta["splits"].items()}
    split = (
        f"a random {shares['train']:.0%}/{shares['valid']:.0%}/{shares['test']:.0%} split of "
        f"the ratings (seed {meta['seed']})"
        if meta["split_method"] == "random"
        else f"a temporal split (each user's latest {shares['test']:.0%} of ratings are test, "
        f"the {shares['valid']:.0%} before them valid)"
    )
    candidates = " or ".join(exclude.split("+"))
    return (
        f"Protocol: {split}; for each of the {users} test users with a test rating of at "
        f"least {threshold:g} stars, every movie with a code that they did not rate in "
        f"{candidates} is a candidate (full ranking, no sampled candidates), and their "
        f"test ratings of at least {threshold:g} stars are relevant; every model and "
        "baseline ranks the same candidates for the same users."
    )


def _model_fields(records: list[dict], meta: dict) -> str:
    """A table of each trained model's fields, and what the less obvious ones mean."""
    seen = {}
    for record in records:
        if record["kind"] == "model":
            seen.setdefault(display_name(record), record["fields"])
    table = pd.DataFrame({"model": list(seen), "fields": [", ".join(f) for f in seen.values()]})
    choices = [
        f"{html.escape(display_name(r))}: {r['l2']}, by seed {r['seed']}'s valid "
        f"{'RMSE' if r['objective'] == 'stars' else 'NDCG'} "
        + ", ".join(f"{score:.4f} at {value}" for value, score in r["l2_scores"].items())
        + (
            f" (on the {r['l2_users'][0]:,} of {r['l2_users'][1]:,} users of a seeded sample, "
            f"then trained on all)"
            if "l2_users" in r
            else ""
        )
        for r in records
        if "l2_scores" in r
    ]
    chosen = (
        f"<p><b>l2</b>, chosen on valid where a section lists several (the section's other "
        f"seeds train with it): {'; '.join(choices)}.</p>"
        if choices
        else ""
    )
    implicit = (
        "the train split only (nothing of valid or test is in any bag)"
        if meta["implicit"] == "train"
        else "every rated pair of every split, the stars unseen (the Netflix-prize convention)"
    )
    return _table(table) + (
        "<p><b>history</b>: the movies the user rated; <b>raters</b>: the users who rated the "
        f"movie; both built from {implicit}; a train row's own pair is left out of its "
        "bags. <b>tags</b>: the tags the user gave this movie (MovieLens joins them on the "
        "rating's user and movie: they are written by the person whose rating is "
        "predicted, at about the time of it, so a star model that uses them sees part of "
        "its answer). <b>release_year</b>: from the title; <b>rating_year</b>, "
        "<b>movie_age</b>: the rating's year, and the movie's age then (years).</p>" + chosen
    )


def _headline(
    summary: pd.DataFrame, table: pd.DataFrame, records: list[dict], meta: dict, k: int, model: str
) -> str:
    """The study's result in two sentences: ranking and stars, `model` (the recommender's:
    fm, deepfm) against the baselines, every name taken from the records."""
    by_name = summary.set_index("model")
    title = TITLES[model]
    featured = {
        r["objective"]: display_name(r)
        for r in records
        if r["kind"] == "model" and r["model"] == model
    }
    rankers = [display_name(r) for r in records if r["kind"] == "baseline" and r.get("ranking")]
    parts = []
    ranker = featured.get("ranking")
    if ranker in by_name.index:
        ndcg = by_name.loc[ranker, f"ndcg@{k}_mean"]
        seeds = int(by_name.loc[ranker, "seeds"])
        others = [
            f"{name} {by_name.loc[name, f'ndcg@{k}_mean']:.4f}"
            for name in rankers
            if name in by_name.index and pd.notna(by_name.loc[name, f"ndcg@{k}_mean"])
        ]
        parts.append(
            f"Ranking: {title} trained for ranking reaches test NDCG@{k} <b>{ndcg:.4f}</b> "
            f"(mean of {seeds} seed{'s' if seeds > 1 else ''}), against " + ", ".join(others) + "."
        )
    stars = featured.get("stars")
    if {stars, REFERENCE} <= set(by_name.index):
        d, b = by_name.loc[stars, "rmse_mean"], by_name.loc[REFERENCE, "rmse_mean"]
        verdict = "beats" if d < b else "does not beat"
        rows = int(table["rows"].dropna().iloc[0])
        sentence = (
            f"Stars: {title} trained on stars has test RMSE <b>{d:.4f}</b>, which {verdict} "
            f"the tuned {REFERENCE} baseline's <b>{b:.4f}</b>, on {rows} test ratings of "
            f"{html.escape(meta['dataset'])}."
        )
        if "truth" in meta:  # a synthetic dataset knows the best possible RMSE
            sentence += (
                f" The noise floor (the RMSE of the true expected ratings) is "
                f"<b>{meta['truth']['bayes_rmse']:.4f}</b>: {title} is "
                f"{d - meta['truth']['bayes_rmse']:.4f} stars above it."
            )
        parts.append(sentence)
    return f'<p class="summary">{" ".join(parts)}</p>' if parts else ""


def _baseline_notes(records: list[dict]) -> str:
    """How ItemKNN and EASE were tuned (the valid NDCG of each grid value) and how many
    movies they model, one line each."""
    notes = []
    for record in records:
        params = record.get("params", {})
        if record["kind"] != "baseline" or "tuning" not in params:
            continue
        name = "neighbours" if "neighbours" in params else "lambda"
        grid = ", ".join(f"{t[name]:g} ({t['valid_ndcg']:.4f})" for t in params["tuning"])
        scope = (
            f"all {params['items_total']} movies"
            if params["items_used"] == params["items_total"]
            else f"the {params['items_used']} most-rated of {params['items_total']} movies "
            "(the memory budget), the others after them by popularity"
        )
        notes.append(
            f"<b>{html.escape(record['model'])}</b>: {name} {params[name]:g}, chosen by "
            f"{html.escape(params['tuned_on'])} among {grid}; models {scope}."
        )
    return f"<p>{'<br>'.join(notes)}</p>" if notes else ""


def search_section(trials: Path) -> str:
    """A search's section: its trials and workers, the plot, the best settings and the
    five best trials."""
    trials = Path(trials)
    table = pd.read_csv(trials, sep="\t")
    model, objective = trials.parent.parent.name, trials.parent.name
    metric = metric_name(objective)
    done = ranked(table, objective)
    best = done.head(5)
    failed = int((table["state"] == "FAIL").sum())
    workers = table["worker"].nunique()
    order = (
        "With one worker and the config's seeds the search is deterministic on the CPU."
        if workers == 1
        else f"With {workers} workers, which trial drew what depended on when each asked: "
        "the trials table is the record, not a rerun."
    )
    return (
        f"<h3>{html.escape(model)} ({html.escape(objective)})</h3>"
        f"<p>{len(done)} complete trials by {workers} worker(s) sharing one Optuna study"
        f"{f', {failed} failed (a worker stopped; run again by another)' if failed else ''}; "
        f"each scored by its {metric.replace('_', ' ')} on the validation split (the test "
        f"split is never read). {order} {html.escape(str(trials))} holds every trial.</p>"
        + _image(trials.with_name("search.png"), f"{model} {objective} search")
        + "<p>The best settings (paste them into config/config.yaml, or pass the file "
        "after the config with --configfile):</p>"
        + f"<pre>{html.escape(trials.with_name('best.yaml').read_text())}</pre>"
        + _table(best.drop(columns=["state", "host", "job"], errors="ignore"))
    )


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
    searches: list[Path],
    k: int,
    threshold: float,
    exclude: str,
    examples: int,
    config: dict,
) -> None:
    """Write the metrics table (TSV), its plots and the HTML report (every image embedded).

    Args:
        out: the HTML page.
        table_out, plot_out: results/metrics.tsv (one row per model, objective and seed,
            then the baselines; METRIC_COLUMNS and the ranking metrics at k) and the PNG
            of the star models' test RMSE and MAE.
        model_metrics: the metrics.json of every model, objective and seed.
        baselines: the baselines' JSON.
        encoded: the encoded folder (its meta.json describes the data).
        histories: the history.tsv of every model, objective and seed, laid out as
            results/<dataset>/<model>/<objective>/seed<seed>/history.tsv.
        curves: the PNG to draw each history's learning curves in, in the order of
            `histories` (the kept epoch from the metrics.json beside it); the first of
            each model and objective is shown (the first seed's).
        profiles: the profile.txt of the profiled models (<model>/<objective>/profile.txt).
        topk: the recommender's topk.tsv (deepfm_rec.recommend), for the examples.
        ranking_plot_out: the PNG of NDCG@K and recall@K against K.
        searches: the trials.tsv of each hyperparameter search that has run (snakemake
            tune), beside its best.yaml and search.png; none: no tuning section.
        k, threshold, exclude, examples: the K of the ranking table, the least stars that
            make a test rating relevant, the splits whose movies are no test candidates,
            the number of example users.
        config: the workflow config used.
    """
    meta = json.loads((Path(encoded) / "meta.json").read_text())
    records = read_records(model_metrics, baselines)
    table = metrics_table(records, k)
    table.to_csv(table_out, sep="\t", index=False, float_format="%.6f")
    ranking = [f"{name}@{k}" for name in RANKING_METRICS]
    summary = summarize(table, ["mse", "rmse", "mae", *ranking])
    plot_metrics(summary[summary["rmse_mean"].notna()], Path(plot_out), REFERENCE)
    plot_ranking(ranking_curves(records), Path(ranking_plot_out))
    users = next(row["users"] for r in records for row in r.get("ranking", []))
    recommender = "{model} ({objective})".format(**config["recommend"])
    sections = [
        f"<h1>deepfm-rec: {html.escape(meta['dataset'])}</h1>",
        _headline(summary, table, records, meta, k, config["recommend"]["model"]),
        f"<p>{_protocol(meta, threshold, exclude, users)}</p>",
        "<h2>Test metrics (stars)</h2>",
        "<p>The star models and the rating baselines on the whole test split; predictions "
        f"clipped to the rating scale [{meta['rating_min']}, {meta['rating_max']}]; models "
        "trained with each seed below, mean ± std over seeds. The plot shows each one's "
        "difference from the bias baseline.</p>",
        _table(_mean_std(summary, ["mse", "rmse", "mae"])),
        _image(plot_out, "test RMSE and MAE of each model minus the bias baseline's"),
        f"<details><summary>per-seed rows ({len(table)})</summary>"
        f"{_table(table.drop(columns=['kind']), table['kind'])}</details>",
        f"<h2>Ranking (top {k})</h2>",
        "<p>Every model (both objectives) and the ranking baselines, mean ± std over seeds. "
        "Models rank candidates by their score (a star model's unclipped prediction, a "
        "ranking model's logit); popularity by train ratings, ItemKNN and EASE by their "
        f"item-item scores. coverage@{k}: distinct movies in all the users' top {k} / "
        f"candidate movies; popularity@{k}: mean train ratings of the listed movies.</p>",
        _table(_mean_std(summary, ranking)),
        _baseline_notes(records),
        _image(ranking_plot_out, "NDCG@K and recall@K against K"),
        f"<h3>Examples: {html.escape(recommender)}'s top {k} beside what the user liked</h3>",
        _examples(Path(encoded), Path(topk), examples),
        "<h2>Models and their fields</h2>",
        _model_fields(records, meta),
        "<h2>Learning curves</h2>",
    ]
    runs: dict[Path, list] = {}  # results/<dataset>/<model>/<objective>: (seed, history, png)
    for path, png in zip(map(Path, histories), map(Path, curves), strict=True):
        run, history = path.parent.parent, pd.read_csv(path, sep="\t")
        kept = json.loads(path.with_name("metrics.json").read_text())["best_epoch"]
        plot_curves(history, kept, png, f"{run.parent.name} on {run.parent.parent.name}")
        runs.setdefault(run, []).append((path.parent.name, history, png))
    for run, seeds in runs.items():
        name = f"{run.parent.name} ({run.name})"
        tables = "".join(
            f"<p>{html.escape(seed)}: {len(h)} epochs</p>{_table(h)}" for seed, h, _ in seeds
        )
        sections += [
            f"<h3>{html.escape(name)}</h3>",
            _image(seeds[0][2], f"{name} learning curves"),  # the first seed's
            f"<details><summary>history of every seed</summary>{tables}</details>",
        ]
    sections.append("<h2>Profile of one training step</h2>")
    for text in map(Path, profiles):
        name = f"{text.parent.parent.name} ({text.parent.name})"
        sections += [
            f"<h3>{html.escape(name)}</h3>",
            f"<pre>{html.escape(Path(text).read_text())}</pre>",
        ]
    if searches:
        sections += ["<h2>Hyperparameter search (valid split)</h2>", *map(search_section, searches)]
    splits = ", ".join(f"{k} {v}" for k, v in meta["splits"].items())
    fields = ", ".join(f"{f['name']} ({f['kind']})" for f in meta["fields"])
    users = " and ".join(meta["users_origin"]) or "none (no demographic fields)"
    data = {
        "dataset": meta["dataset"],
        "source": meta["source"],
        f"checksum ({meta['checksum_kind']})": meta["checksum"],
        "ratings": meta["rows"],
        "splits": f"{splits} ({meta['split_method']})",
        "implicit-feedback bags": meta["implicit"],
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
