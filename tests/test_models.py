"""FM and DeepFM against brute-force references and on real batches."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from deepfm_rec.data.batches import Batch, BatchMaker
from deepfm_rec.models import attach_bags, build_model
from deepfm_rec.models.layers import Dropout, FactorizationMachine, FieldEmbedding
from settings_helpers import shipped_model


def brute_force_pairs(v: torch.Tensor) -> torch.Tensor:
    """sum over field pairs i<j of <v_i, v_j>, with explicit loops."""
    b, f, _ = v.shape
    out = torch.zeros(b, dtype=v.dtype)
    for row in range(b):
        for i, j in itertools.combinations(range(f), 2):
            out[row] += torch.dot(v[row, i], v[row, j])
    return out


def test_fm_term_matches_brute_force():
    torch.manual_seed(0)
    for fields, dim in [(2, 1), (5, 4), (9, 16)]:
        v = torch.randn(7, fields, dim, dtype=torch.float64)
        torch.testing.assert_close(FactorizationMachine()(v), brute_force_pairs(v))


# one bag field: bag 0 empty, bag 1 [1, 3], bag 2 [2]
RAGGED = [(np.array([1, 3, 2], np.int32), np.array([0, 0, 2, 3]))]


def small_batch(leave: list[int] | None = None) -> Batch:
    """Three rows: two categorical fields, one bag field (bags [1, 3], [], [2] of RAGGED;
    `leave` codes left out of them), one dense field."""
    return Batch(
        categorical=torch.tensor([[1, 2], [0, 1], [2, 2]], dtype=torch.int32),  # (B=3, Fc=2)
        dense=torch.tensor([[0.5], [-1.0], [2.0]]),  # (B, Fd=1)
        bag=torch.tensor([[1], [0], [2]], dtype=torch.int32),  # (B, Fm=1)
        leave=None if leave is None else torch.tensor(leave, dtype=torch.int32)[:, None],
        label=torch.tensor([4.0, 3.0, 2.5]),
    )


def attached(layer: FieldEmbedding) -> FieldEmbedding:
    layer.attach(RAGGED)
    return layer


def test_field_embedding_vectors():
    torch.manual_seed(0)
    layer = attached(
        FieldEmbedding([3, 4], [5], 1, dim=4, init_std=1.0, sparse=False, pooling="mean")
    )
    batch = small_batch()
    v = layer(batch)
    assert v.shape == (3, 4, 4)  # (B, Fc + Fm + Fd, D)
    table = layer.table.weight  # rows: field a's 3 codes, then field b's 4
    torch.testing.assert_close(v[0, 0], table[1])
    torch.testing.assert_close(v[0, 1], table[3 + 2])  # second field's codes are offset by 3
    torch.testing.assert_close(v[2, 1], table[3 + 2])
    bag_table = layer.bag_table  # g's 5 codes
    torch.testing.assert_close(v[0, 2], (bag_table[1] + bag_table[3]) / 2)  # mean of the bag
    torch.testing.assert_close(v[1, 2], torch.zeros(4))  # an empty bag gives zeros
    torch.testing.assert_close(v[2, 2], bag_table[2])
    torch.testing.assert_close(v[1, 3], -1.0 * layer.dense[0])  # value times a vector


def test_bags_pool_by_sqrt_and_leave_a_code_out():
    torch.manual_seed(0)
    layer = attached(
        FieldEmbedding([3, 4], [5], 1, dim=4, init_std=1.0, sparse=False, pooling="sqrt")
    )
    bag_table = layer.bag_table
    v = layer(small_batch())
    torch.testing.assert_close(v[0, 2], (bag_table[1] + bag_table[3]) / 2**0.5)  # SVD++
    # row 0 leaves code 3 out of its bag [1, 3]; row 2 its only code; row 1 nothing
    v = layer(small_batch(leave=[3, 0, 2]))
    torch.testing.assert_close(v[0, 2], bag_table[1])  # [1]: count 1
    torch.testing.assert_close(v[1, 2], torch.zeros(4))
    torch.testing.assert_close(v[2, 2], torch.zeros(4))  # nothing left: the empty bag
    mean = FieldEmbedding([3, 4], [5], 1, dim=4, init_std=1.0, sparse=False, pooling="mean")
    mean.load_state_dict(layer.state_dict())
    attached(mean)
    torch.testing.assert_close(mean(small_batch(leave=[3, 0, 2]))[0, 2], bag_table[1])


def test_fm_prediction_is_bias_plus_weights_plus_pairs():
    torch.manual_seed(0)
    model = build_model(
        "fm",
        {
            "fields": [
                {"name": "a", "kind": "categorical", "vocab_size": 3},
                {"name": "b", "kind": "categorical", "vocab_size": 4},
                {"name": "g", "kind": "multi", "vocab_size": 5},
                {"name": "x", "kind": "dense"},
            ],
            "train_mean": 3.5,
        },
        fields=None,
        objective="stars",
        embed_dim=4,
        init_std=0.3,
        sparse=False,
        pooling="mean",
    )
    attached(model.embedding)
    batch = small_batch()
    wv = model.embedding(batch)
    w, v = wv[..., :1], wv[..., 1:]
    expected = 3.5 + w.sum(dim=(1, 2)) + brute_force_pairs(v.double()).float()
    torch.testing.assert_close(model(batch), expected)


def test_deepfm_shapes_and_row_independence(encoded_tiny):
    torch.manual_seed(0)
    model = shipped_model(
        "deepfm", encoded_tiny.meta, fields=None, embed_dim=8, mlp=[16, 8], dropout=0.5
    )
    model = attach_bags(model, encoded_tiny).eval()
    maker = BatchMaker(encoded_tiny)
    rows = torch.arange(64)
    batch = maker.batch(rows)
    prediction, field_rows = model.score(batch)
    num_fields = len(encoded_tiny.meta["fields"])
    assert prediction.shape == (64,) and field_rows.shape == (64, num_fields, 1 + 8)
    # a row's prediction depends on that row only: alone or in any batch, the same
    alone = torch.cat([model(maker.batch(rows[i : i + 1])) for i in range(0, 64, 9)])
    torch.testing.assert_close(alone, prediction[::9])
    shuffled = torch.randperm(64)
    torch.testing.assert_close(model(maker.batch(rows[shuffled])), prediction[shuffled])


def test_initial_prediction_is_near_the_train_mean(encoded_tiny):
    torch.manual_seed(0)
    model = attach_bags(
        shipped_model("fm", encoded_tiny.meta, fields=None, embed_dim=8), encoded_tiny
    ).eval()
    prediction = model(BatchMaker(encoded_tiny).batch(torch.arange(100)))
    # init_std 0.01: the untrained model is within a few hundredths of a star of the mean
    assert (prediction - encoded_tiny.meta["train_mean"]).abs().max() < 0.1


def test_deepfm_field_dropout_drops_whole_field_vectors_of_the_mlp_input_only(encoded_tiny):
    torch.manual_seed(0)
    model = shipped_model(
        "deepfm",
        encoded_tiny.meta,
        fields=None,
        embed_dim=8,
        mlp=[16],
        dropout=0.0,  # the MLP is deterministic: only the field dropout draws
        field_dropout=0.5,
    )
    attach_bags(model, encoded_tiny)
    batch = BatchMaker(encoded_tiny).batch(torch.arange(256))
    seen = []
    model.mlp.register_forward_pre_hook(lambda _, inputs: seen.append(inputs[0]))
    model.train()
    prediction, field_rows = model.score(batch)
    v = field_rows[..., 1:]  # (B, F, D): what the FM term sees, every field
    mlp_input = seen[-1].view(v.shape)  # (B, F, D)
    kept = (mlp_input != 0).any(dim=2)  # (B, F): the fields the MLP saw
    nonzero = (v != 0).any(dim=2)  # (an empty bag's vector is zero either way)
    torch.testing.assert_close(mlp_input[kept], 2 * v[kept])  # scaled by 1 / (1 - 0.5)
    assert (mlp_input[~kept] == 0).all()
    assert 0.4 < kept[nonzero].float().mean() < 0.6  # about half of the vectors dropped
    fm = super(type(model), model).score(batch)[0]
    torch.testing.assert_close(prediction, fm + model.mlp(seen[-1]))  # the FM term is whole
    # in evaluation the MLP sees every field, unscaled
    model.eval()
    model.score(batch)
    torch.testing.assert_close(seen[-1], v.flatten(start_dim=1))


def test_dropout_keeps_each_element_with_its_rounded_chance_and_scales_to_an_unbiased_mean():
    torch.manual_seed(0)
    drop = Dropout(0.3)  # keeps 179 of 256 byte values: p acts as 77/256
    x = torch.ones(1000, 1000, requires_grad=True)
    out = drop(x)
    kept = out != 0
    assert abs(kept.float().mean().item() - 179 / 256) < 0.002  # 1e6 draws: σ ≈ 0.0005
    assert torch.allclose(out[kept], torch.tensor(256 / 179))
    assert abs(out.mean().item() - 1) < 0.003  # inverted dropout: the mean is kept
    out.sum().backward()
    assert torch.equal(x.grad, out.detach())  # the gradient goes through the kept elements
    # rows of a byte-packed mask are not copies of each other (each byte its own draw)
    assert not torch.equal(kept[0], kept[1])
    drop.eval()
    assert drop(x) is x
    assert Dropout(0.0).train()(x) is x
    with pytest.raises(ValueError, match="dropout must be in"):
        Dropout(1.0)
