"""Figures of the study, saved as PNG (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def plot_curves(history: pd.DataFrame, best: int, path: Path, title: str) -> None:
    """Train and valid MSE and MAE (stars) per epoch, the kept (`best`) epoch marked."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), constrained_layout=True)
    for ax, metric in zip(axes, ("mse", "mae"), strict=True):
        ax.plot(history["epoch"], history[f"train_{metric}"], "o-", ms=3, label="train")
        ax.plot(history["epoch"], history[f"valid_{metric}"], "o-", ms=3, label="valid")
        ax.axvline(best, color="grey", ls="--", lw=1, label=f"kept epoch {best}")
        ax.set(xlabel="epoch", ylabel=f"{metric.upper()} (stars{'²' if metric == 'mse' else ''})")
        ax.grid(alpha=0.3)
    axes[0].legend()
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
