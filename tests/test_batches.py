"""Batches: ragged expansion, and the streamed path against the resident one."""

from __future__ import annotations

import numpy as np
import torch

from deepfm_rec.data.batches import BatchMaker, gather_bags, make_bags


def test_gather_bags_expands_ragged_rows():
    values = torch.tensor([5, 6, 7, 8, 9], dtype=torch.int32)
    offsets = torch.tensor([0, 0, 2, 2, 5])  # bags: [], [5, 6], [], [7, 8, 9]
    flat, starts = gather_bags(values, offsets, torch.tensor([3, 0, 1, 3]))
    assert flat.tolist() == [7, 8, 9, 5, 6, 7, 8, 9]
    assert starts.tolist() == [0, 3, 3, 5]


def test_make_bags_gathers_each_distinct_bag_once():
    values = torch.tensor([5, 6, 7, 8, 9], dtype=torch.int32)
    offsets = torch.tensor([0, 0, 2, 2, 5])  # bags: [], [5, 6], [], [7, 8, 9]
    bags = make_bags(values, offsets, torch.tensor([3, 1, 3, 0, 1]))
    assert bags.values.tolist() == [5, 6, 7, 8, 9]  # bags 0, 1, 3, once each
    assert bags.starts.tolist() == [0, 0, 2] and bags.lengths.tolist() == [0, 2, 3]
    assert bags.inverse.tolist() == [2, 1, 2, 0, 1] and bags.leave is None


def row_bag(bags, row: int) -> list[int]:
    """The codes of a batch row's bag."""
    j = int(bags.inverse[row])
    start = int(bags.starts[j])
    return bags.values[start : start + int(bags.lengths[j])].tolist()


def test_a_batch_holds_its_rows_fields(encoded_small):
    a = encoded_small.arrays
    rows = np.array([5, 99, 12345, 100000, 6])
    fields = ["user", "item", "age", "genres", "history"]
    batch = BatchMaker(encoded_small, fields=fields).batch(rows)
    assert batch.categorical[:, 0].tolist() == a["user"][rows].tolist()
    assert batch.categorical[:, 1].tolist() == a["item"][rows].tolist()
    assert batch.dense[:, 0].tolist() == a["age"][rows].tolist()
    assert batch.label.tolist() == a["label"][rows].tolist()
    genres, history = batch.bags
    assert genres.leave is None and history.leave.tolist() == a["history.leave"][rows].tolist()
    for field, bags in (("genres", genres), ("history", history)):
        offsets, values = a[f"{field}.offsets"], a[f"{field}.values"]
        for i, row in enumerate(rows):
            b = a[f"{field}.bag"][row]
            assert row_bag(bags, i) == values[offsets[b] : offsets[b + 1]].tolist()


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
        for x, y in [(r.categorical, s.categorical), (r.dense, s.dense), (r.label, s.label)]:
            assert torch.equal(x, y)
        for rb, sb in zip(r.bags, s.bags, strict=True):
            for name in ("values", "starts", "lengths", "inverse", "leave"):
                x, y = getattr(rb, name), getattr(sb, name)
                assert (x is None and y is None) or torch.equal(x, y), name
    assert count == len(rows)
