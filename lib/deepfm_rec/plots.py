"""Figures of the study, saved as PNG (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def plot_curves(history: pd.DataFrame, best: int, path: Path, title: str) -> None:
    """The learning curves of a history.tsv, the kept (`best`) epoch marked: train and
    valid MSE and MAE (stars) of a star model; train loss and valid NDCG and recall of a
    ranking model."""
    if "train_mse" in history:
        panels = [
            ("MSE (stars²)", ["train_mse", "valid_mse"]),
            ("MAE (stars)", ["train_mae", "valid_mae"]),
        ]
    else:
        panels = [("train loss", ["train_loss"]), ("valid", ["valid_ndcg", "valid_recall"])]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), constrained_layout=True)
    for ax, (label, columns) in zip(axes, panels, strict=True):
        for column in columns:
            name = column.replace("_", " ").replace("valid ndcg", "valid NDCG@K")
            ax.plot(
                history["epoch"],
                history[column],
                "o-",
                ms=3,
                label=name.split(" ", 1)[0] if label.startswith(("MSE", "MAE")) else name,
            )
        ax.axvline(best, color="grey", ls="--", lw=1, label=f"kept epoch {best}")
        ax.set(xlabel="epoch", ylabel=label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def metric_differences(
    summary: pd.DataFrame, reference: str = "bias", metrics: tuple[str, ...] = ("rmse", "mae")
) -> pd.DataFrame:
    """Each row's mean test metric minus the `reference` row's, in stars and in percent of it.

    Args:
        summary: deepfm_rec.report.summarize's rows (model, kind, seeds, <metric>_mean,
            <metric>_std), each with these metrics; one of them is `reference`.
        reference: the model all others are compared with (the tuned bias baseline).
        metrics: error metrics in stars.

    Returns:
        model, kind, seeds and, for each metric, <metric>_mean and <metric>_std (stars, over
        seeds), <metric>_diff (mean minus the reference's mean, stars; < 0 is better) and
        <metric>_percent (the difference in percent of the reference's mean).
    """
    rows = summary.set_index("model")
    if reference not in rows.index:
        raise ValueError(f"no {reference!r} row to compare with: {list(rows.index)}")
    out = summary[["model", "kind", "seeds"]].copy()
    for metric in metrics:
        mean, base = summary[f"{metric}_mean"], rows.loc[reference, f"{metric}_mean"]
        out[f"{metric}_mean"] = mean
        out[f"{metric}_std"] = summary[f"{metric}_std"].fillna(0.0)
        out[f"{metric}_diff"] = mean - base
        out[f"{metric}_percent"] = 100 * (mean - base) / base
    return out


def _signed(value: float, digits: int) -> str:
    return f"{value:+.{digits}f}".replace("-", "\u2212")  # a real minus, as on the axes


def metrics_figure(summary: pd.DataFrame, reference: str = "bias") -> plt.Figure:
    """The figure plot_metrics saves (see there), returned for tests to read."""
    diffs = metric_differences(summary, reference)
    n = len(diffs)
    fig, axes = plt.subplots(2, 1, figsize=(9, 2 * (0.42 * n + 1.3)), constrained_layout=True)
    colours = ["tab:blue" if k == "model" else "tab:grey" for k in diffs["kind"]]
    is_reference = (diffs["model"] == reference).to_numpy()
    zoomed = (diffs["kind"] == "model").to_numpy() | is_reference
    for ax, metric in zip(axes, ("rmse", "mae"), strict=True):
        mean, std = diffs[f"{metric}_mean"], diffs[f"{metric}_std"].to_numpy()
        diff, percent = diffs[f"{metric}_diff"].to_numpy(), diffs[f"{metric}_percent"]
        base = float(mean[is_reference].iloc[0])
        # Zoom on the models and the reference: a baseline far off (the global mean) would
        # squeeze their 0.01-star differences into a few pixels, so its bar is cut instead.
        low = min(0.0, (diff - std)[zoomed].min())
        high = max(0.0, (diff + std)[zoomed].max())
        pad = max(high - low, 0.002) * 0.12
        left, right = low - pad, high + pad
        shown = diff.clip(left, right)
        ax.barh(range(n), shown, color=colours, height=0.6)
        ax.errorbar(diff, range(n), xerr=std, fmt="none", ecolor="black", capsize=3, lw=1)
        ax.axvline(0, color="black", lw=1)
        ax.plot(0, np.flatnonzero(is_reference)[0], "D", color="black", ms=5)
        for y in range(n):
            if is_reference[y]:
                text = "reference"
            else:
                spread = f" ± {std[y]:.4f}" if std[y] > 0 else ""
                text = f"{_signed(diff[y], 4)}{spread} stars ({_signed(percent.iloc[y], 2)}%)"
            if shown[y] != diff[y]:  # cut at the edge of the axis
                edge = "\u25b6" if diff[y] > 0 else "\u25c0"
                ax.text(
                    shown[y],
                    y,
                    edge,
                    ha="right" if diff[y] > 0 else "left",
                    va="center",
                    color="white",
                    fontsize=9,
                )
                text += ", off the axis"
            # the values in a column right of the axes, so that none covers a bar
            ax.annotate(
                text, (1.02, y), xycoords=("axes fraction", "data"), va="center", fontsize=8.5
            )
        labels = [f"{m}  {v:.4f}" for m, v in zip(diffs["model"], mean, strict=True)]
        ax.set_yticks(range(n), labels)
        ax.set_ylim(n - 0.5, -0.5)
        ax.set(
            xlim=(left, right),
            xlabel=f"test {metric.upper()} minus {reference}'s (stars; < 0 is better)",
        )
        top = ax.secondary_xaxis(
            "top", functions=(lambda x, b=base: 100 * x / b, lambda q, b=base: q * b / 100)
        )
        top.set_xlabel(f"% of {reference}'s {metric.upper()} {base:.4f}")
        ax.grid(axis="x", alpha=0.3)
    return fig


def plot_metrics(summary: pd.DataFrame, path: Path, reference: str = "bias") -> None:
    """Test RMSE and MAE of every model and baseline relative to the `reference` baseline.

    One horizontal bar per row of `summary` (deepfm_rec.report.summarize, rows that have
    RMSE): its mean over seeds minus the reference's, in stars (bottom axis) and percent of
    the reference (top axis), whiskers of one std over seeds, the value written beside the
    bar, the row's own mean beside its name. The axis is zoomed on the models; a baseline
    beyond it (the global mean) is cut at the edge with its value written inside.
    """
    fig = metrics_figure(summary, reference)
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


def plot_search(table: pd.DataFrame, space: dict, metric: str, lower_is_better: bool, path: Path):
    """A search's trials (trials.trials_table, complete ones): each trial's valid metric
    and the best so far against the trial number, then each searched setting against the
    valid metric (a list-valued choice such as mlp shown as text)."""
    done = table[table["state"] == "COMPLETE"].sort_values("trial")
    best = done[metric].cummin() if lower_is_better else done[metric].cummax()
    panels = 1 + len(space)
    columns = min(panels, 4)
    rows = -(-panels // columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(3.3 * columns, 2.9 * rows), constrained_layout=True, squeeze=False
    )
    label = metric.replace("_", " ").replace("ndcg", "NDCG@K").replace("rmse", "RMSE")
    ax = axes.flat[0]
    ax.plot(done["trial"], done[metric], "o", ms=4, alpha=0.6, label="trial")
    ax.step(done["trial"], best, where="post", color="C3", label="best so far")
    ax.set(xlabel="trial", ylabel=label)
    ax.legend(fontsize=8)
    for ax, (name, spec) in zip(axes.flat[1:], space.items(), strict=False):
        values = done[name]
        listed = "choice" in spec and any(isinstance(v, list) for v in spec["choice"])
        if listed:
            values = values.map(str)
        ax.plot(values, done[metric], "o", ms=4, alpha=0.7)
        if listed:  # layer lists such as [128, 64, 32]: slanted, so that they do not overlap
            ax.tick_params(axis="x", labelrotation=30)
        if "log" in spec:
            ax.set_xscale("log")
        ax.set(xlabel=name, ylabel=label)
        ax.tick_params(axis="x", labelsize=7)
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    for ax in axes.flat[panels:]:
        ax.set_visible(False)
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
