"""RowAdam against torch.optim.SparseAdam, whose maths it keeps."""

from __future__ import annotations

import copy

import pytest
import torch

from deepfm_rec.optim import RowAdam


def test_row_adam_matches_sparse_adam():
    torch.manual_seed(0)
    table = torch.nn.EmbeddingBag(50, 6, mode="mean", sparse=True)
    twin = copy.deepcopy(table)
    ours = RowAdam(table.parameters(), lr=0.01)
    theirs = torch.optim.SparseAdam(twin.parameters(), lr=0.01)
    never_used = torch.arange(40, 50)
    before = table.weight.detach()[never_used].clone()
    for step in range(6):
        # bags with repeated codes, within a bag and across bags, and an empty bag
        codes = torch.randint(0, 40, (30,))
        offsets = torch.tensor([0, 4, 4, 11, 20])
        target = torch.randn(5, 6)
        for model, optimizer in ((table, ours), (twin, theirs)):
            optimizer.zero_grad()
            loss = (model(codes, offsets) - target).pow(2).sum()
            loss.backward()
            optimizer.step()
        torch.testing.assert_close(table.weight, twin.weight, msg=f"step {step}")
    assert torch.equal(table.weight.detach()[never_used], before)  # lazy: untouched rows stay


def test_row_adam_rejects_dense_gradients():
    weight = torch.nn.Parameter(torch.ones(3, 2))
    weight.grad = torch.ones(3, 2)
    with pytest.raises(ValueError, match="sparse gradients"):
        RowAdam([weight]).step()
