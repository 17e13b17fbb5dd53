"""Batches gathered by vectorised indexing over the encoded arrays, no per-sample Python.

Shapes: B batch size, Fc categorical fields, Fd dense fields, Fm multi-valued fields,
L the total number of values in one multi-valued field over the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from deepfm_rec.data.encoding import CATEGORICAL, DENSE, MULTI, Encoded


@dataclass
class Batch:
    """One batch of rows, on one device.

    categorical: int32 (B, Fc) codes.
    dense: float32 (B, Fd) standardised values.
    bags: per multi-valued field, (values int32 (L,), offsets int32 (B,)) for EmbeddingBag.
    label: float32 (B,) stars.
    """

    categorical: torch.Tensor
    dense: torch.Tensor
    bags: list[tuple[torch.Tensor, torch.Tensor]]
    label: torch.Tensor

    def __len__(self) -> int:
        return self.label.shape[0]


def gather_bags(
    values: torch.Tensor, offsets: torch.Tensor, bags: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Expand ragged bags into EmbeddingBag input without a Python loop.

    Args:
        values: int32 (V,) codes of all bags.
        offsets: int64 (bags+1,) bag b is values[offsets[b]:offsets[b+1]].
        bags: int64 (B,) the bag of each row.

    Returns:
        (flat int32 (L,) codes of the rows' bags end to end, int32 (B,) start of each row).
    """
    starts = offsets[bags]
    lengths = offsets[bags + 1] - starts
    row_starts = torch.cumsum(lengths, 0) - lengths
    total = int(row_starts[-1] + lengths[-1]) if len(bags) else 0  # a CPU-GPU sync point
    position = torch.repeat_interleave(starts - row_starts, lengths, output_size=total)
    position += torch.arange(total, device=values.device)
    return values[position], row_starts.to(torch.int32)


class BatchMaker:
    """Holds the encoded arrays as tensors on one device and gathers batches from them.

    The arrays are copied once (field columns stacked, so one index op per kind);
    each batch is then a handful of gathers on the device.
    """

    def __init__(self, encoded: Encoded, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.meta = encoded.meta
        a = encoded.arrays

        def tensor(array: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.array(array)).to(self.device)  # copy: memmaps are read-only

        cat = [f["name"] for f in encoded.fields(CATEGORICAL)]
        dense = [f["name"] for f in encoded.fields(DENSE)]
        multi = [f["name"] for f in encoded.fields(MULTI)]
        n = encoded.meta["rows"]
        self.categorical = tensor(np.stack([a[name] for name in cat], axis=1))  # (N, Fc)
        self.dense = tensor(
            np.stack([a[name] for name in dense], axis=1) if dense else np.zeros((n, 0), np.float32)
        )  # (N, Fd)
        self.bag_index = tensor(
            np.stack([a[f"{name}.bag"] for name in multi], axis=1).astype(np.int64)
        )  # (N, Fm)
        self.ragged = [(tensor(a[f"{m}.values"]), tensor(a[f"{m}.offsets"])) for m in multi]
        self.label = tensor(a["label"])

    def batch(self, rows: torch.Tensor) -> Batch:
        """The batch of the given row indices (int64 tensor on this device)."""
        bag_index = self.bag_index[rows]  # (B, Fm)
        return Batch(
            categorical=self.categorical[rows],
            dense=self.dense[rows],
            bags=[
                gather_bags(values, offsets, bag_index[:, j])
                for j, (values, offsets) in enumerate(self.ragged)
            ],
            label=self.label[rows],
        )

    def batches(self, rows: np.ndarray, batch_size: int, generator: torch.Generator | None = None):
        """Yield batches over `rows`, shuffled with `generator` when one is given."""
        rows_t = torch.as_tensor(rows, dtype=torch.int64)
        if generator is not None:
            rows_t = rows_t[torch.randperm(len(rows_t), generator=generator)]
        rows_t = rows_t.to(self.device)
        for start in range(0, len(rows_t), batch_size):
            yield self.batch(rows_t[start : start + batch_size])
