"""Figures of the study, saved as PNG (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def plot_curves(history: pd.DataFrame, best: int, path: Path, title: str) -> None:
    """The learning curves of a history.tsv, the kept (`best`) epoch marked: train and
    valid MSE and MAE (stars) of a star model; train loss and valid NDCG and recall of a
    ranking model."""
    if "train_mse" in history:
        panels = [("MSE (stars²)", ["train_mse", "valid_mse"]),
                  ("MAE (stars)", ["train_mae", "valid_mae"])]  # fmt: skip
    else:
        panels = [("train loss", ["train_loss"]), ("valid", ["valid_ndcg", "valid_recall"])]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), constrained_layout=True)
    for ax, (label, columns) in zip(axes, panels, strict=True):
        for column in columns:
            name = column.replace("_", " ").replace("valid ndcg", "valid NDCG@K")
            ax.plot(history["epoch"], history[column], "o-", ms=3, label=name.split(" ", 1)[0]
                    if label.startswith(("MSE", "MAE")) else name)  # fmt: skip
        ax.axvline(best, color="grey", ls="--", lw=1, label=f"kept epoch {best}")
        ax.set(xlabel="epoch", ylabel=label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_metrics(summary: pd.DataFrame, path: Path) -> None:
    """Test RMSE and MAE (stars) of every model and baseline: bars of the mean over seeds,
    whiskers of one std."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 0.5 * len(summary) + 1.2), constrained_layout=True)
    colours = ["tab:blue" if k == "model" else "tab:grey" for k in summary["kind"]]
    for ax, metric in zip(axes, ("rmse", "mae"), strict=True):
        mean, std = summary[f"{metric}_mean"], summary[f"{metric}_std"]
        ax.barh(summary["model"], mean, xerr=std, color=colours, capsize=3)
        for y, value in enumerate(mean):
            ax.text(value, y, f" {value:.4f}", va="bottom", fontsize=8)
        ax.set(xlabel=f"test {metric.upper()} (stars)", xlim=(0, mean.max() * 1.2))
        ax.invert_yaxis()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_ranking(curves: pd.DataFrame, path: Path) -> None:
    """NDCG@K and recall@K against K (log scale) for each model and the popularity
    baseline, means over seeds."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), constrained_layout=True)
    for ax, metric in zip(axes, ("ndcg", "recall"), strict=True):
        for model, rows in curves.groupby("model", sort=False):
            ax.plot(rows["k"], rows[metric], "o-", ms=3, label=model)
        ax.set(
            xscale="log", xlabel="K", ylabel=f"{metric.upper() if metric == 'ndcg' else metric}@K"
        )
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.savefig(path, dpi=110)
    plt.close(fig)
