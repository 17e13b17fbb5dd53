"""The test-metrics figure: differences to the bias baseline, on an axis zoomed on them."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from deepfm_rec.plots import metric_differences, metrics_figure, plot_metrics

# metrics.tsv-like rows: two seeds per model, one row per baseline (stars)
RUNS = pd.DataFrame(
    [
        ("fm", "model", 0.8740, 0.6711),
        ("fm", "model", 0.8774, 0.6759),
        ("deepfm", "model", 0.8624, 0.6622),
        ("deepfm", "model", 0.8626, 0.6660),
        ("global_mean", "baseline", 1.0542, 0.8401),
        ("bias", "baseline", 0.8716, 0.6713),
    ],
    columns=["model", "kind", "rmse", "mae"],
)


@pytest.fixture
def summary() -> pd.DataFrame:
    """What plot_metrics takes (deepfm_rec.report.summarize's rows): mean and std over seeds."""
    grouped = RUNS.groupby(["model", "kind"], sort=False)
    summary = grouped.agg(
        seeds=("rmse", "size"),
        rmse_mean=("rmse", "mean"),
        rmse_std=("rmse", "std"),
        mae_mean=("mae", "mean"),
        mae_std=("mae", "std"),
    )
    return summary.fillna(0.0).reset_index()  # a single run's std is 0


def test_differences_are_each_mean_minus_the_bias_baselines(summary):
    diffs = metric_differences(summary).set_index("model")
    for model, rows in RUNS.groupby("model"):
        for metric in ("rmse", "mae"):
            bias = RUNS.loc[RUNS["model"] == "bias", metric].item()
            mean = sum(rows[metric]) / len(rows)
            assert diffs.loc[model, f"{metric}_diff"] == pytest.approx(mean - bias, abs=1e-12)
            assert diffs.loc[model, f"{metric}_percent"] == pytest.approx(
                100 * (mean - bias) / bias
            )
    assert diffs.loc["bias", "rmse_diff"] == 0
    assert diffs.loc["deepfm", "rmse_std"] == pytest.approx(RUNS["rmse"][2:4].std())
    with pytest.raises(ValueError, match="no 'bias' row"):
        metric_differences(summary[summary["model"] != "bias"])


def test_the_axis_is_zoomed_on_the_models_and_cuts_the_global_mean(summary):
    fig = metrics_figure(summary)
    try:
        rmse = fig.axes[0]
        diffs = metric_differences(summary).set_index("model")
        left, right = rmse.get_xlim()
        for model in ("fm", "deepfm", "bias"):  # every model, whisker and the zero line
            d, s = diffs.loc[model, "rmse_diff"], diffs.loc[model, "rmse_std"]
            assert left < d - s and d + s < right
        assert right - left < 0.05  # 0.01-star differences fill the axis
        assert diffs.loc["global_mean", "rmse_diff"] > right  # 0.18 stars: cut at the edge
        texts = [t.get_text() for t in rmse.texts]
        d, s = diffs.loc["deepfm", "rmse_diff"], diffs.loc["deepfm", "rmse_std"]
        p = diffs.loc["deepfm", "rmse_percent"]
        assert f"\u2212{-d:.4f} ± {s:.4f} stars (\u2212{-p:.2f}%)" in texts
        assert f"+{diffs.loc['global_mean', 'rmse_diff']:.4f} stars" in " ".join(texts)
        labels = [t.get_text() for t in rmse.get_yticklabels()]
        assert labels == [f"{m}  {v:.4f}" for m, v in diffs["rmse_mean"].items()]
    finally:
        plt.close(fig)


def test_plot_metrics_writes_a_png(summary, tmp_path):
    """The PNG decodes to the figure's shape (two panels, RMSE over MAE), each panel with
    its coloured bars drawn."""
    plot_metrics(summary, tmp_path / "metrics.png")
    with Image.open(tmp_path / "metrics.png") as image:
        pixels = np.asarray(image.convert("RGB")).astype(int)
    fig = metrics_figure(summary)
    inches = fig.get_size_inches()
    plt.close(fig)
    height, width, _ = pixels.shape
    assert width / height == pytest.approx(inches[0] / inches[1], rel=0.01)
    coloured = pixels.max(axis=2) - pixels.min(axis=2) > 100  # bars, not grey axes or text
    for panel in (coloured[: height // 2], coloured[height // 2 :]):
        assert panel.mean() > 0.01
