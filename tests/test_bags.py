"""Pooling from the bags' sums (BagSums) against pooling every row's bag in full."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepfm_rec.data.batches import BatchMaker
from deepfm_rec.models import attach_bags
from deepfm_rec.train import CODES_PER_ROW, Optimizers, refresh_steps
from settings_helpers import shipped, shipped_model

FIELDS = ["user", "item", "genres", "history", "raters"]
MULTI = ["genres", "history", "raters"]  # in the model's field order


def exact_vectors(model, encoded, batch) -> torch.Tensor:
    """(B, Fm, 1 + D) each row's bags pooled in full from the bag table, with a loop over
    the rows: the reference (sqrt pooling, the row's own pair left out)."""
    table, starts = model.embedding.bag_table, model.embedding.code_starts
    out = []
    for r in range(len(batch)):
        fields = []
        for j, name in enumerate(MULTI):
            values = np.asarray(encoded.arrays[f"{name}.values"])
            offsets = np.asarray(encoded.arrays[f"{name}.offsets"])
            b = int(batch.bag[r, j])
            codes = list(values[offsets[b] : offsets[b + 1]])
            left = int(batch.leave[r, j])
            if left:
                codes.remove(left)
            rows = table[torch.tensor(codes, dtype=torch.int64) + starts[j]]
            fields.append(rows.sum(dim=0) / max(len(codes), 1) ** 0.5)
        out.append(torch.stack(fields))
    return torch.stack(out)


def model_and_batches(encoded, n: int):
    torch.manual_seed(0)
    model = shipped_model("fm", encoded.meta, fields=FIELDS, embed_dim=4, pooling="sqrt")
    attach_bags(model, encoded).train()
    with torch.no_grad():
        model.embedding.bag_table.normal_()  # rows of order 1: differences show
    model.embedding.resum()
    maker = BatchMaker(encoded, fields=FIELDS)
    train = encoded.rows("train")
    return model, [maker.batch(train[i * 64 : (i + 1) * 64]) for i in range(n)]


def test_pooled_vectors_equal_the_rows_bags_pooled_in_full(encoded_tiny):
    model, batches = model_and_batches(encoded_tiny, 2)
    for batch in batches:
        assert (batch.leave[:, 1:] > 0).any()  # train rows leave their own pair out
        pooled = model.embedding(batch)[:, 2:5]  # (B, Fm, 1 + D): user, item first
        torch.testing.assert_close(pooled, exact_vectors(model, encoded_tiny, batch))
    # valid rows leave nothing out; scored in evaluation, the same pooling
    valid = BatchMaker(encoded_tiny, fields=FIELDS).batch(encoded_tiny.rows("valid")[:50])
    assert not valid.leave.any()
    with torch.no_grad():
        pooled = model.eval().embedding(valid)[:, 2:5]
        torch.testing.assert_close(pooled, exact_vectors(model, encoded_tiny, valid))


def test_delayed_gradient_equals_the_exact_gradients_summed_over_the_window(encoded_tiny):
    model, batches = model_and_batches(encoded_tiny, 3)
    table = model.embedding.bag_table
    weights = [torch.randn(64, 3, 5) for _ in batches]  # one linear loss per step
    exact = torch.zeros_like(table)
    for batch, w in zip(batches, weights, strict=True):
        (grad,) = torch.autograd.grad((exact_vectors(model, encoded_tiny, batch) * w).sum(), table)
        exact += grad
    for batch, w in zip(batches, weights, strict=True):
        (model.embedding(batch)[:, 2:5] * w).sum().backward()
    assert table.grad is None  # the steps only accumulate
    model.embedding.bags.push(table)
    torch.testing.assert_close(table.grad, exact)
    assert not model.embedding.bags.grad_sums.any()  # the next window starts from zero


def test_bag_table_steps_every_bag_refresh_steps_and_the_sums_follow(encoded_tiny):
    model, batches = model_and_batches(encoded_tiny, 4)
    config, _ = shipped("fm", "stars", lr=0.01, bag_refresh=2)
    optimizer = Optimizers(model, config, sparse=False)
    table = model.embedding.bag_table
    bags = model.embedding.bags
    assert optimizer.bag_optimizer.lr == pytest.approx(0.01 * 2**0.5)
    before = table.detach().clone()
    for step, batch in enumerate(batches, start=1):
        optimizer.zero_grad()
        model(batch).sum().backward()
        optimizer.step()
        moved = not torch.equal(table.detach(), before)
        assert moved == (step % 2 == 0)  # only at each refresh
        before = table.detach().clone()
        # the sums a step reads are every bag's sum of the current table
        ends = bags.offsets.tolist()
        expected = torch.stack(
            [table[bags.values[a:b]].sum(dim=0) for a, b in zip(ends, ends[1:], strict=False)]
        )
        # summed in another order: float32 rounding of sums of up to ~300 rows of order 1
        torch.testing.assert_close(bags.sums, expected.detach(), rtol=1e-5, atol=1e-4)


def test_bag_refresh_by_default_grows_with_the_bags_codes_per_batch(encoded_tiny):
    model, _ = model_and_batches(encoded_tiny, 0)
    codes = sum(len(encoded_tiny.arrays[f"{m}.values"]) for m in MULTI)
    assert len(model.embedding.bags.values) == codes
    assert Optimizers(model, shipped("fm", "stars", batch_size=64)[0], sparse=False).refresh == -(
        -codes // (CODES_PER_ROW * 64)
    )
    assert codes > CODES_PER_ROW * 64  # so that the test above is not just 1
    batch_1024, _ = shipped("fm", "stars", batch_size=1024, bag_refresh=None)
    assert refresh_steps(batch_1024, CODES_PER_ROW * 1024) == 1
    assert refresh_steps(batch_1024, CODES_PER_ROW * 1024 + 1) == 2
    assert refresh_steps(batch_1024, 16_000_000) == 63  # 10M ratings' bags
    assert refresh_steps(shipped("fm", "stars", bag_refresh=3)[0], 10**9) == 3  # as set
    with pytest.raises(ValueError, match="bag_refresh must be at least 1, not 0"):
        refresh_steps(shipped("fm", "stars", bag_refresh=0)[0], 1)
