"""Metrics and baselines on hand-computed cases and on the real test split."""

from __future__ import annotations

import numpy as np
import pytest

from deepfm_rec.evaluate import DAMPING_GRID, BiasBaseline, baselines
from deepfm_rec.metrics import rating_metrics


def test_rating_metrics_hand_computed():
    m = rating_metrics(np.array([3.0, 4.0, 1.5, 5.0]), np.array([4.0, 4.0, 0.5, 3.0]))
    # errors -1, 0, 1, 2: squares 1, 0, 1, 4
    assert m["mse"] == pytest.approx(1.5)
    assert m["rmse"] == pytest.approx(np.sqrt(1.5))
    assert m["mae"] == pytest.approx(1.0)
    assert m["rows"] == 4
    with pytest.raises(ValueError):
        rating_metrics(np.array([]), np.array([]))


# users 1, 2 and items 1, 2 (code 0 is "unknown"): u1 rates i1 4 and i2 2, u2 rates i1 5.
USER, ITEM, LABEL = np.array([1, 1, 2]), np.array([1, 2, 1]), np.array([4.0, 2.0, 5.0])


def test_bias_baseline_closed_form_without_damping():
    model = BiasBaseline.fit(USER, ITEM, LABEL, 3, 3, 0.0, 0.0, passes=1)
    assert model.mu == pytest.approx(11 / 3)
    # items first: i1 = mean(4 - 11/3, 5 - 11/3) = 5/6, i2 = 2 - 11/3 = -5/3
    np.testing.assert_allclose(model.item_bias, [0, 5 / 6, -5 / 3])
    # then users: u1 = mean(4 - 11/3 - 5/6, 2 - 11/3 + 5/3) = -1/4, u2 = 5 - 11/3 - 5/6 = 1/2
    np.testing.assert_allclose(model.user_bias, [0, -1 / 4, 1 / 2])
    np.testing.assert_allclose(
        model.predict(np.array([2, 0]), np.array([2, 0]), 0.5, 5.0),
        [11 / 3 + 1 / 2 - 5 / 3, 11 / 3],
    )


def test_bias_baseline_damping_shrinks_toward_zero():
    model = BiasBaseline.fit(USER, ITEM, LABEL, 3, 3, 0.0, 2.0, passes=1)
    assert model.item_bias[1] == pytest.approx((1 / 3 + 4 / 3) / (2 + 2))
    heavy = BiasBaseline.fit(USER, ITEM, LABEL, 3, 3, 1e6, 1e6)
    assert np.abs(heavy.user_bias).max() < 1e-5 and np.abs(heavy.item_bias).max() < 1e-5


def test_baselines_on_the_whole_real_test_split(encoded_small):
    result = baselines(encoded_small)
    test_rows = encoded_small.meta["splits"]["test"]
    assert result["global_mean"]["rows"] == result["bias"]["rows"] == test_rows
    label = np.asarray(encoded_small.arrays["label"])[encoded_small.rows("test")]
    mean = encoded_small.meta["train_mean"]
    assert result["global_mean"]["mse"] == pytest.approx(np.mean((label - mean) ** 2))
    params = result["bias"]["params"]
    assert params["user_damping"] in DAMPING_GRID and params["item_damping"] in DAMPING_GRID
    # the tuned bias baseline is the strong one MovieLens is known for
    assert result["bias"]["rmse"] < 0.9 < result["global_mean"]["rmse"]
