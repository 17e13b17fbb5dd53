"""Batches gathered by vectorised indexing over the encoded arrays, no per-sample Python.

Shapes: B batch size, Fc categorical fields, Fd dense fields, Fm multi-valued fields,
L the values of the rows' bags end to end (gather_bags).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from deepfm_rec.data.encoding import CATEGORICAL, DENSE, MULTI, Encoded, model_fields


@dataclass
class Batch:
    """One batch of rows, on one device.

    categorical: int32 (B, Fc) codes.
    dense: float32 (B, Fd) standardised values.
    bag: int32 (B, Fm) each multi-valued field's bag of the row (the models pool a bag
        from the sums of every bag, deepfm_rec.models.layers.BagSums).
    leave: int32 (B, Fm) or None: a code of the row's bag that the row leaves out (its own
        pair in an implicit-feedback bag; 0: nothing left out).
    label: float32 (B,) stars.
    """

    categorical: torch.Tensor
    dense: torch.Tensor
    bag: torch.Tensor
    leave: torch.Tensor | None
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
        bags: integer (B,) the bag of each row.

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
    """Gathers batches of a model's fields from the encoded arrays, a few index ops each.

    When the per-row arrays fit in `memory_budget` bytes (default: no bound; the study's
    is config key memory_budget_gb) they are copied to the device once (resident) and
    every batch is gathered there. Otherwise the rows of each epoch are streamed from the
    memmaps in chunks of `chunk_rows` (read in row order for locality), the next chunk
    loading in a background thread while the current one trains. Both paths give the
    same batches. A batch holds the rows' bag indices, not the bags' values: the models
    pool bags from sums of every bag (BagSums).

    Args:
        fields: the names of the fields to gather (default all), as the model's `fields`.
    """

    def __init__(
        self,
        encoded: Encoded,
        device: torch.device | str = "cpu",
        memory_budget: float = math.inf,
        chunk_rows: int = 1 << 20,
        fields: list[str] | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.meta = encoded.meta
        self.arrays = encoded.arrays
        chosen = model_fields(encoded.meta, fields)
        self.names = {
            kind: [f["name"] for f in chosen if f["kind"] == kind]
            for kind in (CATEGORICAL, DENSE, MULTI)
        }
        n = encoded.meta["rows"]
        # a packed row: categorical codes, bag indices, left-out codes (None: a field
        # without, whose column is 0), dense values, label
        self.int_columns = [
            *self.names[CATEGORICAL],
            *(f"{m}.bag" for m in self.names[MULTI]),
            *(
                f"{f['name']}.leave" if f.get("leave") else None
                for f in chosen
                if f["kind"] == MULTI
            ),
        ]
        self.width = len(self.int_columns) + len(self.names[DENSE]) + 1
        self.resident = n * 4 * self.width <= memory_budget
        self.chunk_rows = chunk_rows
        self.table = self.load(np.arange(n)) if self.resident else None

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        """`array` on this device; a copy if it is read-only (as the memmaps are)."""
        tensor = torch.from_numpy(array if array.flags.writeable else np.array(array))
        if self.device.type == "cuda":
            return tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor

    def load(self, rows: np.ndarray) -> torch.Tensor:
        """The packed rows of `rows` (int64, any order), gathered from the memmaps.

        A packed row is one int32 record: the categorical codes, the multi-valued fields'
        bag indices and left-out codes, then the dense values and the label as float32
        bits. A batch is then one gather of whole records (one cache miss per row, not one
        per array).
        """
        order = np.argsort(rows, kind="stable")
        sorted_rows = rows[order]
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        packed = np.empty((len(rows), self.width), np.int32)
        for j, name in enumerate(self.int_columns):  # < 2**31: no more bags or codes than rows
            packed[:, j] = 0 if name is None else self.arrays[name][sorted_rows][inverse]
        floats = packed.view(np.float32)
        for j, name in enumerate([*self.names[DENSE], "label"], start=len(self.int_columns)):
            floats[:, j] = self.arrays[name][sorted_rows][inverse]
        return self._tensor(packed)

    def gather(self, table: torch.Tensor, positions: torch.Tensor) -> Batch:
        """The batch of the given positions (int64, on this device) in a packed table."""
        packed = table[positions]  # (B, width)
        fc, fm = len(self.names[CATEGORICAL]), len(self.names[MULTI])
        return Batch(
            categorical=packed[:, :fc],
            dense=packed[:, fc + 2 * fm : -1].view(torch.float32),
            bag=packed[:, fc : fc + fm],
            leave=packed[:, fc + fm : fc + 2 * fm],
            label=packed[:, -1].view(torch.float32),
        )

    def batch(self, rows: np.ndarray | torch.Tensor) -> Batch:
        """The batch of the given rows (row indices of the encoded arrays)."""
        if self.table is not None:
            return self.gather(self.table, torch.as_tensor(rows, device=self.device))
        rows = np.asarray(torch.as_tensor(rows).cpu(), dtype=np.int64)
        return self.gather(self.load(rows), torch.arange(len(rows), device=self.device))

    def batches(
        self, rows: np.ndarray, batch_size: int, generator: torch.Generator | None = None
    ) -> Iterator[Batch]:
        """Yield batches over `rows`, shuffled with `generator` when one is given."""
        order = torch.as_tensor(np.asarray(rows), dtype=torch.int64)
        if generator is not None:
            order = order[torch.randperm(len(order), generator=generator)]
        if self.table is not None:
            order = order.to(self.device)
            for start in range(0, len(order), batch_size):
                yield self.gather(self.table, order[start : start + batch_size])
            return
        chunk = max(batch_size, self.chunk_rows // batch_size * batch_size)
        pieces = [order[s : s + chunk].numpy() for s in range(0, len(order), chunk)]
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(self.load, pieces[0]) if pieces else None
            for i in range(len(pieces)):
                table = pending.result()
                if i + 1 < len(pieces):
                    pending = pool.submit(self.load, pieces[i + 1])  # prefetch the next chunk
                positions = torch.arange(len(pieces[i]), device=self.device)
                for start in range(0, len(positions), batch_size):
                    yield self.gather(table, positions[start : start + batch_size])
