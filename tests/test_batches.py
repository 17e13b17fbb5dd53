"""Batches: ragged expansion, a batch's fields, and the streamed path against the resident one."""

from __future__ import annotations

import numpy as np
import torch

from deepfm_rec.data.batches import BatchMaker, gather_bags


def test_gather_bags_expands_ragged_rows():
    values = torch.tensor([5, 6, 7, 8, 9], dtype=torch.int32)
    offsets = torch.tensor([0, 0, 2, 2, 5])  # bags: [], [5, 6], [], [7, 8, 9]
    flat, starts = gather_bags(values, offsets, torch.tensor([3, 0, 1, 3]))
    assert flat.tolist() == [7, 8, 9, 5, 6, 7, 8, 9]
    assert starts.tolist() == [0, 3, 3, 5]


def test_a_batch_holds_its_rows_fields(encoded_small):
    a = encoded_small.arrays
    rows = np.array([5, 99, 12345, 100000, 6])
    fields = ["user", "item", "age", "genres", "history"]
    batch = BatchMaker(encoded_small, fields=fields).batch(rows)
    assert batch.categorical[:, 0].tolist() == a["user"][rows].tolist()
    assert batch.categorical[:, 1].tolist() == a["item"][rows].tolist()
    assert batch.dense[:, 0].tolist() == a["age"][rows].tolist()
    assert batch.label.tolist() == a["label"][rows].tolist()
    assert batch.bag[:, 0].tolist() == a["genres.bag"][rows].tolist()
    assert batch.bag[:, 1].tolist() == a["history.bag"][rows].tolist()
    assert not batch.leave[:, 0].any()  # genres leave nothing out
    assert batch.leave[:, 1].tolist() == a["history.leave"][rows].tolist()


def test_streaming_from_memmaps_gives_the_resident_batches(encoded_small):
    resident = BatchMaker(encoded_small)
    streamed = BatchMaker(encoded_small, memory_budget=0, chunk_rows=5000)
    assert resident.resident and not streamed.resident and streamed.table is None
    rows = encoded_small.rows("train")
    pairs = zip(
        resident.batches(rows, 1024, torch.Generator().manual_seed(3)),
        streamed.batches(rows, 1024, torch.Generator().manual_seed(3)),
        strict=True,
    )
    count = 0
    for r, s in pairs:
        count += len(r)
        for name in ("categorical", "dense", "bag", "leave", "label"):
            assert torch.equal(getattr(r, name), getattr(s, name)), name
    assert count == len(rows)
