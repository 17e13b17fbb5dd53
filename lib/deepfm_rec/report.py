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

import pandas as pd
import yaml

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


def write_report(
    out: Path,
    *,
    metrics: Path,
    metrics_plot: Path,
    encoded: Path,
    histories: dict[str, Path],
    curves: dict[str, Path],
    profiles: dict[str, Path],
    config: dict,
) -> None:
    """Write the HTML report to `out`, every image embedded.

    Args:
        metrics: results/metrics.tsv (deepfm_rec.evaluate.METRIC_COLUMNS).
        metrics_plot: PNG of the test metrics.
        histories, curves, profiles: per model name, history.tsv, curves.png, profile.txt.
        encoded: the encoded folder (its meta.json describes the data).
        config: the workflow config used.
    """
    meta = json.loads((Path(encoded) / "meta.json").read_text())
    table = pd.read_csv(metrics, sep="\t", dtype={"seed": "Int64", "best_epoch": "Int64"})
    by_name = table.set_index("model")
    summary = ""
    if {"deepfm", "bias"} <= set(by_name.index):
        d, b = by_name.loc["deepfm", "rmse"], by_name.loc["bias", "rmse"]
        verdict = "beats" if d < b else "does not beat"
        summary = (
            f'<p class="summary">DeepFM test RMSE <b>{d:.4f}</b> {verdict} the tuned bias '
            f"baseline's <b>{b:.4f}</b> stars, on {int(by_name.loc['deepfm', 'rows'])} test "
            f"ratings of {html.escape(meta['dataset'])}."
        )
        if "truth" in meta:  # a synthetic dataset knows the best possible RMSE
            summary += (
                f" The noise floor (the RMSE of the true expected ratings) is "
                f"<b>{meta['truth']['bayes_rmse']:.4f}</b>: DeepFM is "
                f"{d - meta['truth']['bayes_rmse']:.4f} stars above it."
            )
        summary += "</p>"
    sections = [
        f"<h1>deepfm-rec: {html.escape(meta['dataset'])}</h1>",
        summary,
        "<h2>Test metrics (stars)</h2>",
        "<p>Whole test split; predictions clipped to the rating scale "
        f"[{meta['rating_min']}, {meta['rating_max']}]; seed {meta['seed']}.</p>",
        _table(table.drop(columns=["kind"]), table["kind"]),
        _image(metrics_plot, "test RMSE and MAE per model"),
        "<h2>Learning curves</h2>",
    ]
    for name, png in curves.items():
        history = pd.read_csv(histories[name], sep="\t")
        sections += [
            f"<h3>{html.escape(name)}</h3>",
            _image(png, f"{name} learning curves"),
            f"<details><summary>{len(history)} epochs</summary>{_table(history)}</details>",
        ]
    sections.append("<h2>Profile of one training step</h2>")
    for name, text in profiles.items():
        sections += [
            f"<h3>{html.escape(name)}</h3>",
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
