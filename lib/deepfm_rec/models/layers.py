"""Layers shared by the FM and DeepFM models.

Shapes: B batch size, F fields (Fc categorical + Fd dense + Fm multi-valued),
D embedding dim, N bags of the multi-valued fields end to end, V their codes end to end,
L the codes of all bags end to end.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deepfm_rec.data.batches import Batch

POOLING = ("mean", "sqrt")


class BagSums:
    """The summed embeddings of every bag of the multi-valued fields, kept exact for the
    bag table, and the gradient that the training steps since the last refresh sent them.

    A step of a model that pooled its rows' bags in full would cost what its users' and
    movies' popularity costs (a popular movie's raters are tens of thousands of codes,
    and rows arrive in proportion to activity). Here a step reads a bag's sum from a
    table (one gather, whatever its size) and adds the gradient of the sum to an
    accumulator; `push` sends the accumulated gradient through the bags to the bag table
    in one pass (exactly: the sum is linear in its codes' rows), the bag table then takes
    an optimizer step and `refresh` sums every bag again, in one pass. Between
    refreshes the bag table does not change, so the sums a step reads are exact; what
    is delayed is the bag table's gradient (see TrainConfig.bag_refresh).

    Args:
        ragged: per multi-valued field, (values int32 (·,) codes, offsets int64 (bags+1,)).
        code_starts: int64 (Fm,) the first bag-table row of each field's codes.
        table: the bag table (V, D) the codes index.
    """

    def __init__(
        self, ragged: list[tuple[np.ndarray, np.ndarray]], code_starts: torch.Tensor, table
    ) -> None:
        device = table.device
        starts = code_starts.cpu().numpy()
        lengths = [np.diff(np.asarray(offsets)) for _, offsets in ragged]
        values = np.concatenate(
            [np.asarray(v, np.int64) + s for (v, _), s in zip(ragged, starts, strict=True)]
            or [np.zeros(0, np.int64)]
        )  # (L,) bag-table rows
        length = np.concatenate(lengths or [np.zeros(0, np.int64)])  # (N,)
        offsets = np.concatenate([[0], np.cumsum(length)])  # (N+1,)
        # the transpose: for each bag-table row, the bags that hold it (for the gradient)
        bag_of = np.repeat(np.arange(len(length)), length)  # (L,)
        order = np.argsort(values, kind="stable")
        counts = np.bincount(values, minlength=len(table))
        self.values = torch.from_numpy(values).to(device)
        self.offsets = torch.from_numpy(offsets).to(device)
        self.lengths = torch.from_numpy(length).to(device)  # (N,)
        self.holders = torch.from_numpy(bag_of[order]).to(device)  # (L,)
        self.holder_offsets = torch.from_numpy(np.concatenate([[0], np.cumsum(counts)])).to(
            device
        )  # (V+1,)
        self.bag_starts = torch.from_numpy(
            np.concatenate([[0], np.cumsum([len(n) for n in lengths])])[:-1]
        ).to(device)  # (Fm,) the first bag of each field
        self.sums = self.sum_bags(table.detach())  # (N, D)
        self.grad_sums = torch.zeros_like(self.sums)  # (N, D)
        self.grad_table = torch.zeros_like(table)  # (V, D): rows left out of bags

    def sum_bags(self, table: torch.Tensor) -> torch.Tensor:
        """(N, D) each bag's summed rows of `table` (V, D), one pass over the L codes."""
        return F.embedding_bag(
            self.values, table, self.offsets, mode="sum", include_last_offset=True
        )

    @torch.no_grad()
    def refresh(self, table: torch.Tensor) -> None:
        """Sum every bag again (after the bag table changed)."""
        self.sums = self.sum_bags(table)

    @torch.no_grad()
    def push(self, table: nn.Parameter) -> None:
        """Set the bag table's gradient: the accumulated gradients of the sums sent through
        the bags (each row gets the gradients of the bags that hold it), plus those of the
        rows the steps read directly; the accumulators start again from zero."""
        through_bags = F.embedding_bag(
            self.holders,
            self.grad_sums,
            self.holder_offsets,
            mode="sum",
            include_last_offset=True,
        )
        table.grad = through_bags.add_(self.grad_table)
        self.grad_sums.zero_()
        self.grad_table.zero_()

    def gather(self, source: torch.Tensor, sink: torch.Tensor, index: torch.Tensor):
        """source[index] (index (B, Fm) -> (B, Fm, D)); in a training step, its gradient
        is added to sink[index] when the step's backward runs."""
        rows = source[index]
        if torch.is_grad_enabled():
            rows.requires_grad_()
            flat = index.reshape(-1)

            def accumulate(grad: torch.Tensor) -> None:
                sink.index_add_(0, flat, grad.reshape(len(flat), -1))

            rows.register_hook(accumulate)
        return rows


class FieldEmbedding(nn.Module):
    """One D-dim vector per field and row.

    A categorical field's vector is its code's embedding (one table for all categorical
    fields, codes offset per field). A multi-valued field's is its codes' embeddings (a
    bag table of their own) pooled: their mean, or their sum over the square root of
    their count (SVD++'s |N(u)|^-1/2); an empty bag gives zeros. The sums come from
    BagSums (`attach`), so a row costs the same whatever its bag's size. A row's
    left-out code (its own pair in an implicit-feedback bag) is taken out of the row's
    bag before pooling. A dense field's vector is its value times a learned vector.

    Args:
        categorical: vocabulary sizes of the categorical fields (code 0 = unknown).
        multi: vocabulary sizes of the multi-valued fields.
        n_dense: number of dense fields.
        dim: D.
        init_std: std of the normal initialisation.
        sparse: the categorical table produces sparse gradients (rows the batch used only).
        pooling: "mean" or "sqrt", how a bag's embeddings are pooled.
    """

    def __init__(
        self,
        categorical: list[int],
        multi: list[int],
        n_dense: int,
        dim: int,
        init_std: float,
        *,
        sparse: bool,
        pooling: str,
    ) -> None:
        super().__init__()
        if pooling not in POOLING:
            raise ValueError(f"pooling must be one of {', '.join(POOLING)}, not {pooling!r}")

        def starts(sizes: list[int]) -> torch.Tensor:
            return torch.tensor([0, *sizes[:-1]], dtype=torch.int64).cumsum(0)

        self.register_buffer("offsets", starts(categorical), persistent=False)
        self.register_buffer("code_starts", starts(multi), persistent=False)
        self.pooling = pooling
        self.table = nn.Embedding(sum(categorical), dim, sparse=sparse)
        self.bag_table = nn.Parameter(torch.empty(sum(multi), dim))
        self.dense = nn.Parameter(torch.empty(n_dense, dim))
        for weight in (self.table.weight, self.bag_table, self.dense):
            nn.init.normal_(weight, std=init_std)
        self.num_fields = len(categorical) + len(multi) + n_dense
        self.n_multi = len(multi)
        self.bags: BagSums | None = None

    def attach(self, ragged: list[tuple[np.ndarray, np.ndarray]]) -> None:
        """Give the layer its multi-valued fields' bags (values, offsets per field, as the
        encoded folder has them) and sum them; call again after the weights are loaded."""
        self.bags = BagSums(ragged, self.code_starts, self.bag_table) if ragged else None

    def resum(self) -> None:
        """Sum the attached bags again, after the weights changed (load_state_dict)."""
        if self.bags is not None:
            self.bags.refresh(self.bag_table)

    def forward(self, batch: Batch) -> torch.Tensor:
        """Field vectors, float32 (B, F, D)."""
        vectors = [self.table(batch.categorical + self.offsets)]  # (B, Fc, D)
        if self.n_multi:
            bags = self.bags
            if bags is None:
                raise RuntimeError(
                    "the model's bags are not attached: deepfm_rec.models.attach_bags(model, "
                    "encoded) first"
                )
            index = batch.bag + bags.bag_starts  # (B, Fm) bags end to end
            total = bags.gather(bags.sums, bags.grad_sums, index)  # (B, Fm, D)
            count = bags.lengths[index].to(total.dtype)  # (B, Fm)
            if batch.leave is not None:
                left_out = (batch.leave > 0).to(total.dtype)  # (B, Fm)
                codes = batch.leave + self.code_starts
                removed = bags.gather(self.bag_table.detach(), bags.grad_table, codes)
                total = total - removed * left_out[..., None]
                count = count - left_out
            count = count.clamp(min=1)
            scale = count.reciprocal() if self.pooling == "mean" else count.rsqrt()
            vectors.append(total * scale[..., None])  # (B, Fm, D)
        vectors.append(batch.dense.unsqueeze(2) * self.dense)  # (B, Fd, D)
        return torch.cat(vectors, dim=1)  # (B, F, D)


class FactorizationMachine(nn.Module):
    """Rendle's pairwise term: sum over field pairs i<j of <v_i, v_j>, in O(F·D)."""

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        """v: (B, F, D) field vectors -> (B,) the second-order term."""
        # products, not pow(2): pow's backward costs several full-size ops more
        total = v.sum(dim=1)  # (B, D)
        return 0.5 * ((total * total).sum(dim=1) - (v * v).sum(dim=(1, 2)))  # (B,)


class Dropout(nn.Module):
    """Inverted dropout (nn.Dropout's maths) whose mask comes from random bytes: each
    element is kept when its byte is below round((1 - p) · 256), and scaled by 256 over
    that, so p is rounded to a multiple of 1/256 (0.3 acts as 0.3008). torch's CPU
    `bernoulli_` draws one number per element, about 10 ns each (3.5 ms of DeepFM's 16 ms
    step at batch 1024, 2 threads); one 64-bit draw here gives 8 bytes.

    Args:
        p: the probability that an element is zeroed, in [0, 1).
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout must be in [0, 1), not {p}")
        self.keep = round((1 - p) * 256)  # of the 256 byte values, those that keep

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.keep == 256:
            return x
        words = torch.empty((x.numel() + 7) // 8, dtype=torch.int64, device=x.device)
        random = words.random_(-(2**63), 2**63 - 1).view(torch.uint8)[: x.numel()]
        return x * ((random < self.keep).view_as(x) * (256 / self.keep))


class MultiLayerPerceptron(nn.Module):
    """Linear-ReLU-Dropout blocks, then a linear output of size 1."""

    def __init__(self, input_dim: int, hidden: list[int], dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for size in hidden:
            layers += [nn.Linear(input_dim, size), nn.ReLU(inplace=True), Dropout(dropout)]
            input_dim = size
        layers.append(nn.Linear(input_dim, 1))
        self.mlp = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, input_dim) -> (B,)."""
        return self.mlp(x).squeeze(1)
