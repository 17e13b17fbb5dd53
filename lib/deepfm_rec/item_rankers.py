"""The ranking baselines over the binary train matrix: popularity, ItemKNN and EASE.

X is the binary train interaction matrix, users × movies by code: X[u, i] = 1 when user u
rated movie i in train (any number of stars), 0 otherwise; user and item code 0 are left
out. Each is a CandidateRanker of deepfm_rec.topk (column c is item code c + 1), like the
models' ranker. Popularity ranks by X's column sums; ItemKNN and EASE score a user's
candidates from their row of X, and both are tuned
the same way: one hyperparameter chosen by NDCG@k on the valid split (`tune`).

- ItemKNN: cosine similarities between the columns of X, each movie keeping its
  `neighbours` most similar movies (Sarwar et al., WWW 2001; Deshpande & Karypis, TOIS
  2004). Only the neighbour lists are kept (N × neighbours), never a dense N × N matrix.
- EASE: the closed-form linear item-item model of Steck (WWW 2019), B = I − P·diag(1/diag P),
  P = (XᵀX + λI)⁻¹, diag(B) = 0; a user's scores are X_u B.

Memory: EASE's model is a dense N × N matrix (ml-32m's 84k movies: 28 GB in float32),
so EASE models the N most-rated movies for the largest N whose working set fits
`memory_budget` and ranks the other candidates after them by popularity (`items_used`,
`items_total` in its params say which). ItemKNN builds its lists from N × b blocks of
similarities, b chosen to fit the budget, so it always models every movie.

Shapes: U users (a chunk of them), N modelled movies, C candidate movies (every item code
but 0), n neighbours, R users with train ratings (EASE's dual form).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from loguru import logger

from deepfm_rec.data.batches import gather_bags
from deepfm_rec.data.encoding import Encoded, open_encoded
from deepfm_rec.metrics import Relevant, relevant_items
from deepfm_rec.topk import CandidateRanker, rank_and_score, rated_items, train_counts

DEFAULT_LAMBDAS = (10.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0)
DEFAULT_NEIGHBOURS = (20, 50, 100, 200)
# a grid value's valid NDCG is over at most this many valid users (fit_item_rankers):
# every user of ml-1m and smaller, a seventh of ml-10m's (where scoring the valid users
# took most of the baselines job: about 3 minutes per grid value on one thread)
TUNING_USERS = 10_000


def popularity_order(counts: np.ndarray) -> np.ndarray:
    """int64 (C,) the candidate columns by their number of train ratings `counts` (C,),
    most rated first, ties by code."""
    return np.lexsort((np.arange(len(counts)), -counts))


class PopularityRanker(CandidateRanker):
    """The popularity baseline: candidates by number of train ratings, ties by item code.

    `top_k` reports each listed movie's number of train ratings.
    """

    def __init__(
        self, encoded: Encoded, device: torch.device | str = "cpu", pairs_per_batch=None
    ) -> None:
        super().__init__(encoded, device, pairs_per_batch)
        counts = self.train_counts()  # (C,)
        order = popularity_order(counts)
        position = np.empty(self.n_candidates, dtype=np.float32)
        position[order] = np.arange(self.n_candidates)  # exact in float32 below 2^24
        self.score_row = torch.from_numpy(-position).to(self.device)  # distinct: no ties
        self.counts = torch.from_numpy(np.concatenate([[0], counts])).to(self.device)

    def scores(self, users: torch.Tensor) -> torch.Tensor:
        return self.score_row.expand(len(users), -1).clone()  # (U, C)

    def report(self, items: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return self.counts[items].to(torch.float32)


def most_rated(counts: np.ndarray, n: int) -> np.ndarray:
    """int64 (n,) the columns of the n most-rated movies (ties by code), ascending."""
    return np.sort(popularity_order(counts)[:n]).astype(np.int64)


class ItemRanker(CandidateRanker):
    """A CandidateRanker whose scores are a function of the user's row of X over N modelled
    movies; the candidates it does not model rank after every modelled one, by popularity.

    Subclasses define `model_scores`. `top_k` treats -inf as "no candidate", so an
    unmodelled candidate gets a finite score below the chunk's lowest modelled score:
    lowest − 1 − its popularity rank among the unmodelled movies.

    Args:
        encoded: the encoded folder.
        columns: int64 (N,) the candidate columns modelled, ascending; None: all C.
        device, pairs_per_batch, floats_per_pair: as CandidateRanker.
    """

    def __init__(
        self,
        encoded: Encoded,
        columns: np.ndarray | None,
        device: torch.device | str,
        pairs_per_batch: int | None,
        floats_per_pair: int,
    ) -> None:
        super().__init__(encoded, device, pairs_per_batch, floats_per_pair)
        if columns is None:
            columns = np.arange(self.n_candidates, dtype=np.int64)
        self.columns = torch.from_numpy(columns).to(self.device)
        self.n_modelled = len(columns)
        # X's rows (user-major) and columns (item-major) over the modelled movies, as CSRs
        # of column indices 0..N-1; rows of code 0 and movies not modelled are left out
        indptr, items = rated_items(encoded, ["train"])
        index = np.full(self.n_items, -1, dtype=np.int64)
        index[columns + 1] = np.arange(len(columns))
        user = np.repeat(np.arange(self.n_users), np.diff(indptr))
        item = index[items]
        user, item = user[item >= 0], item[item >= 0]  # sorted by user, then item
        self.user_indptr = self._indptr(user, self.n_users)
        self.user_items = torch.from_numpy(item).to(self.device)
        by_item = np.lexsort((user, item))
        self.item_indptr = self._indptr(item[by_item], self.n_modelled)
        self.item_users = torch.from_numpy(user[by_item]).to(self.device)
        self.item_counts = torch.from_numpy(np.bincount(item, minlength=self.n_modelled)).to(
            self.device
        )
        # popularity rank of each candidate among the unmodelled ones (modelled: unused)
        modelled = np.zeros(self.n_candidates, dtype=bool)
        modelled[columns] = True
        order = popularity_order(self.train_counts())
        order = order[~modelled[order]]
        rank = np.zeros(self.n_candidates, dtype=np.float32)
        rank[order] = np.arange(len(order))  # exact in float32 below 2^24
        self.fallback = torch.from_numpy(rank).to(self.device)

    def _indptr(self, owner: np.ndarray, n: int) -> torch.Tensor:
        indptr = np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=n))])
        return torch.from_numpy(indptr.astype(np.int64)).to(self.device)

    def coverage(self) -> dict:
        """How much of the catalogue the model covers, for the params of its record."""
        return {"items_used": self.n_modelled, "items_total": self.n_candidates}

    def _entries(
        self, indices: torch.Tensor, indptr: torch.Tensor, codes: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(positions, values): the lists of `codes` in a CSR, as the position in `codes`
        and the value of each entry."""
        values, _ = gather_bags(indices, indptr, codes)
        lengths = indptr[codes + 1] - indptr[codes]
        positions = torch.repeat_interleave(
            torch.arange(len(codes), device=self.device), lengths, output_size=len(values)
        )
        return positions, values

    def user_rows(self, users: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """(U, N) the rows of X of users (int64 codes, on the device)."""
        rows, items = self._entries(self.user_items, self.user_indptr, users)
        x = torch.zeros(len(users), self.n_modelled, dtype=dtype, device=self.device)
        x[rows, items] = 1
        return x

    def item_columns(self, start: int, stop: int) -> torch.Tensor:
        """(users, stop - start) dense columns start..stop-1 of X, all user codes."""
        codes = torch.arange(start, stop, device=self.device)
        cols, users = self._entries(self.item_users, self.item_indptr, codes)
        x = torch.zeros(self.n_users, stop - start, device=self.device)
        x[users, cols] = 1
        return x

    def transposed(self) -> torch.Tensor:
        """Xᵀ as a sparse COO (N, users) float32 (for XᵀX's columns a COO was faster than a
        CSR: 2.3 s against 3.9 s at 1M ratings)."""
        items = torch.repeat_interleave(
            torch.arange(self.n_modelled, device=self.device), self.item_counts
        )
        return torch.sparse_coo_tensor(
            torch.stack([items, self.item_users]),
            torch.ones(len(items), device=self.device),
            (self.n_modelled, self.n_users),
            is_coalesced=True,  # sorted by item, then user, no duplicates
            check_invariants=False,  # built sorted and in range above
        )

    def gram_columns(self, start: int, stop: int, xt: torch.Tensor) -> torch.Tensor:
        """(N, stop - start) float32 columns of XᵀX: co-rating counts, exact below 2^24."""
        return torch.sparse.mm(xt, self.item_columns(start, stop))

    def model_scores(self, x: torch.Tensor) -> torch.Tensor:
        """float32 (U, N) scores of the modelled movies from the users' rows x (U, N)."""
        raise NotImplementedError

    def scores(self, users: torch.Tensor) -> torch.Tensor:
        model = self.model_scores(self.user_rows(users))  # (U, N)
        if self.n_modelled == self.n_candidates:
            return model
        floor = model.min() - 1 if model.numel() else torch.zeros((), device=self.device)
        scores = (floor - self.fallback).expand(len(users), -1).clone()  # (U, C)
        scores[:, self.columns] = model
        return scores


class ItemKNN(ItemRanker):
    """Item-based nearest neighbours with cosine similarity over the binary train matrix.

    sim(i, j) = |users of i ∩ users of j| / sqrt(|users of i| · |users of j|), the cosine
    of columns i and j of X; an item is never its own neighbour. Each movie keeps the
    `neighbours` most similar other movies, ties broken by the lower item code (binary
    data has many: every movie rated by one user has the same similarity to the others).

    truncate chooses whose lists are kept (similarity is symmetric, so both come from one
    pass over the similarities):
    - "target" (default; Sarwar et al. 2001, RecBole's ItemKNN): the top-n is kept per
      column of the item-item matrix W: score(u, j) = Σ_{i ∈ X_u, i ∈ N(j)} sim(i, j), the
      rated movies among the candidate j's n nearest neighbours.
    - "source" (Deshpande & Karypis 2004): per row: score(u, j) = Σ_{i ∈ X_u, j ∈ N(i)}
      sim(i, j), each rated movie votes for its own n nearest neighbours.

    The similarities are computed in blocks of b movies, (N, b) at a time with b the most
    that fit `memory_budget`; the lists for up to `max_neighbours` are kept (N, n_max),
    sorted, so that `neighbours` can be lowered to any n ≤ n_max without refitting.

    Args:
        encoded: the encoded folder; every movie with a code is modelled.
        neighbours: n, the neighbours each movie keeps.
        max_neighbours: the longest lists to keep (default `neighbours`).
        truncate: "target" or "source", see above.
        memory_budget: bytes for one block of similarities (and its inputs).
        device, pairs_per_batch: as CandidateRanker.
    """

    def __init__(
        self,
        encoded: Encoded,
        neighbours: int = 100,
        *,
        memory_budget: float,
        max_neighbours: int | None = None,
        truncate: str = "target",
        device: torch.device | str = "cpu",
        pairs_per_batch: int | None = None,
    ) -> None:
        if truncate not in ("target", "source"):
            raise ValueError(f"truncate must be 'target' or 'source', not {truncate!r}")
        if neighbours < 1:
            raise ValueError(f"neighbours must be at least 1, not {neighbours}")
        super().__init__(encoded, None, device, pairs_per_batch, floats_per_pair=2)
        self.truncate = truncate
        n = self.n_modelled
        n_max = min(max(neighbours, max_neighbours or 0), max(n - 1, 0))
        # a block holds its dense X columns (users, b) and similarities (N, b) in float32,
        # then their transposed copy (b, N) beside the sort keys (b, N) in int64
        per_column = 4 * self.n_users + 12 * n
        self.block = int(min(max(memory_budget // per_column, 1), max(n, 1)))
        start_time = time.perf_counter()
        xt = self.transposed()
        norm = self.item_counts.to(torch.float32).clamp_min(1).sqrt()  # (N,)
        tie = n - 1 - torch.arange(n, device=self.device)  # (N,) ties: the lower code first
        sims = torch.zeros(n, n_max, device=self.device)
        items = torch.zeros(n, n_max, dtype=torch.int64, device=self.device)
        for start in range(0, n, self.block):  # blocks of movies, not one at a time
            stop = min(start + self.block, n)
            rows = torch.arange(stop - start, device=self.device)
            s = self.gram_columns(start, stop, xt)  # (N, b) co-rating counts
            s /= norm[:, None] * norm[start:stop]  # cosine, ≥ 0
            # One int64 key per pair orders by similarity, then by code (the bits of a
            # float32 ≥ 0, read as an int32, ascend with it), so a movie's list does not
            # depend on its length: topk alone breaks the many ties arbitrarily.
            s = s.T.contiguous()  # (b, N): a row per movie of the block
            key = s.view(torch.int32).to(torch.int64)  # (b, N)
            del s
            key <<= 32
            key += tie
            key[rows, rows + start] = torch.iinfo(torch.int64).min  # never its own neighbour
            top, _ = torch.topk(key, n_max, dim=1)  # (b, n_max) sorted
            items[start:stop] = n - 1 - (top & 0xFFFFFFFF)
            sims[start:stop] = (top >> 32).to(torch.int32).view(torch.float32)
        self.neighbour_sims, self.neighbour_items = sims, items  # (N, n_max)
        self.fit_seconds = time.perf_counter() - start_time
        self.neighbours = neighbours

    @property
    def neighbours(self) -> int:
        return self._neighbours

    @neighbours.setter
    def neighbours(self, n: int) -> None:
        n_max = self.neighbour_items.shape[1]
        complete = n_max == max(self.n_modelled - 1, 0)  # every other movie is listed
        if n < 1 or (n > n_max and not complete):
            raise ValueError(f"neighbours must be in 1..{n_max} (the lists kept), not {n}")
        self._neighbours = n
        kept = min(n, n_max)
        target = torch.arange(self.n_modelled, device=self.device).repeat_interleave(kept)
        source = self.neighbour_items[:, :kept].reshape(-1)
        # M[j, i] = sim(i, j) for i in N(j), as (rows, columns) of a sparse (N, N)
        pairs = (target, source) if self.truncate == "target" else (source, target)
        weights_t = torch.sparse_coo_tensor(
            torch.stack(pairs),
            self.neighbour_sims[:, :kept].reshape(-1),
            (self.n_modelled, self.n_modelled),
            check_invariants=False,  # indices in range by construction
        )  # Wᵀ: score = X_u W = (Wᵀ X_uᵀ)ᵀ
        # as a CSR: its product with a dense matrix is an order of magnitude faster than a
        # COO's on the CPU (a chunk of scores at 1M ratings: 0.4 s against 4.8 s)
        with warnings.catch_warnings():  # torch calls its CSR support beta
            warnings.filterwarnings("ignore", "Sparse CSR tensor support", UserWarning)
            self.weights_t = weights_t.to_sparse_csr()

    def weights(self) -> torch.Tensor:
        """float32 (N, N) the dense item-item matrix W (score = X_u W), for small data."""
        return self.weights_t.to_dense().T

    def model_scores(self, x: torch.Tensor) -> torch.Tensor:
        return (self.weights_t @ x.T).T  # (U, N)


def ease_working_set(n_items: np.ndarray, n_users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(primal, dual) bytes of EASE's dense matrices for N modelled movies rated by R users.

    Primal (float32): XᵀX (N × N) and P, factorised and inverted "in place", which on the
    CPU still takes one N × N temporary (cholesky_ex, measured): 12 N². Dual
    (float64): the R × R Gram matrix and its eigenvectors, the dense X (R × N) and
    Z = VᵀX: 16 (R² + R N).
    """
    n_items = np.asarray(n_items, dtype=np.float64)
    n_users = np.asarray(n_users, dtype=np.float64)
    return 12 * n_items**2, 16 * (n_users**2 + n_users * n_items)


class EASE(ItemRanker):
    """EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019).

    B = argmin ||X − XB||² + λ||B||² subject to diag(B) = 0, in closed form
    B = I − P·diag(1/diag P), P = (XᵀX + λI)⁻¹; a user's scores are X_u B =
    X_u − (X_u P)·diag(1/diag P). P is computed one of two ways, whichever the shape favours:

    - primal (R > N / 2): XᵀX + λI is factorised (Cholesky) and inverted in place, in
      float32 (for 9k movies 7x faster than a float64 inverse, and P within 1e-6 of it,
      relative), once per λ; XᵀX is computed once.
    - dual (R ≤ N / 2, e.g. ml-latest-small: 610 users, 9k movies): with the eigenvectors V
      and eigenvalues s of the R × R Gram matrix XXᵀ and Z = VᵀX (float64), the Woodbury
      identity gives P = I/λ − Zᵀ diag(1/(λ(s + λ))) Z without an N × N matrix, for any λ
      from one eigendecomposition; X_u P is two thin products.

    Only the N most-rated movies are modelled, N the largest whose working set
    (ease_working_set) fits `memory_budget` in one of the two forms (the dual where both
    fit and R ≤ N / 2); the other candidates rank after them by
    popularity (see ItemRanker). `lam` can be changed without refitting the dual.

    Args:
        encoded: the encoded folder.
        lam: λ, the L2 penalty.
        memory_budget: bytes for EASE's dense matrices.
        solver: "auto" (the shape decides, as above), "primal" or "dual".
        device, pairs_per_batch: as CandidateRanker.
    """

    def __init__(
        self,
        encoded: Encoded,
        lam: float = 200.0,
        *,
        memory_budget: float,
        solver: str = "auto",
        device: torch.device | str = "cpu",
        pairs_per_batch: int | None = None,
    ) -> None:
        if solver not in ("auto", "primal", "dual"):
            raise ValueError(f"solver must be 'auto', 'primal' or 'dual', not {solver!r}")
        counts = train_counts(encoded)
        n_total = len(counts)
        # users with a train rating among the n most-rated movies, for n = 1..C
        order = popularity_order(counts)
        position = np.empty(n_total, dtype=np.int64)
        position[order] = np.arange(n_total)
        indptr, items = rated_items(encoded, ["train"])
        first = np.minimum.reduceat(position[items - 1], indptr[:-1][np.diff(indptr) > 0])
        users_within = np.cumsum(np.bincount(first, minlength=n_total))  # (C,)
        n_items = np.arange(1, n_total + 1)
        primal, dual = ease_working_set(n_items, users_within)
        # the dual where it is faster (R ≤ N / 2) and fits, else the primal where it fits
        can_dual = (dual <= memory_budget) & (
            (solver == "dual") | ((solver == "auto") & (2 * users_within <= n_items))
        )
        can_primal = (primal <= memory_budget) & (solver != "dual")
        fits = np.flatnonzero(can_dual | can_primal)
        if len(fits) == 0:
            raise ValueError(
                f"memory_budget {memory_budget:.3g} bytes is too small for EASE on one movie"
            )
        n = int(fits[-1]) + 1
        super().__init__(encoded, most_rated(counts, n), device, pairs_per_batch, 3)
        self.dual = bool(can_dual[n - 1])
        start_time = time.perf_counter()
        if self.dual:
            active = torch.nonzero(self.user_indptr[1:] > self.user_indptr[:-1]).squeeze(1)
            x = self.user_rows(active, torch.float64)  # (R, N)
            gram = x @ x.T  # (R, R)
            threads = torch.get_num_threads()
            if self.device.type == "cpu" and len(active) <= 4096:
                # MKL's threaded eigh of ml-latest-small's 610 × 610 took 3-7 s on 2 busy
                # cores, 0.15 s on one
                torch.set_num_threads(1)
            try:
                s, v = torch.linalg.eigh(gram)
            finally:
                torch.set_num_threads(threads)
            del gram
            self.s = s.clamp_min(0)  # XXᵀ is PSD: round-off below 0 is 0
            self.z = v.T @ x  # (R, N)
            del x, v
        else:  # XᵀX, kept for every λ: recomputing it costs as much as the factorisation
            self.gram = torch.empty(n, n, device=self.device)
            xt = self.transposed()
            # blocks of movies as wide as the budget beside the working set allows, each
            # its dense X columns (users, b) and their product (N, b) in float32: at 10M
            # ratings one block of every movie took 42 s, blocks of 39 about 300 s
            spare = memory_budget - primal[n - 1]
            step = int(min(max(spare // (4 * (self.n_users + n)), 1), n))
            for start in range(0, n, step):
                stop = min(start + step, n)
                self.gram[:, start:stop] = self.gram_columns(start, stop, xt)
        self.fit_seconds = time.perf_counter() - start_time
        self.solve_seconds = 0.0
        self._lam = None
        self.lam = lam

    @property
    def lam(self) -> float:
        return self._lam

    @lam.setter
    def lam(self, lam: float) -> None:
        if not lam > 0:
            raise ValueError(f"lam must be positive, not {lam}")
        if lam == self._lam:
            return
        start_time = time.perf_counter()
        if self.dual:
            self.c = -1.0 / (lam * (self.s + lam))  # (R,)
            self.diag_p = 1.0 / lam + (self.z * self.z).T @ self.c  # (N,)
        else:
            self.p = None  # free the last λ's P before building the next
            a = self.gram.clone()
            a.diagonal().add_(lam)
            info = torch.empty((), dtype=torch.int32, device=self.device)
            torch.linalg.cholesky_ex(a, out=(a, info))  # L, in place
            if int(info):
                raise ValueError(f"EASE: XᵀX + {lam}·I is not positive definite in float32")
            torch.cholesky_inverse(a, out=a)  # P, in place
            self.p, self.diag_p = a, a.diagonal().clone()
        self._lam = lam
        self.solve_seconds = time.perf_counter() - start_time
        logger.debug("EASE λ={} solved in {:.2f}s", lam, self.solve_seconds)

    def model_scores(self, x: torch.Tensor) -> torch.Tensor:
        if self.dual:
            x = x.double()
            xp = x / self.lam + ((x @ self.z.T) * self.c) @ self.z  # (U, N) X_u P
        else:  # a user's row is sparse: as a sparse matrix, a few rows of P summed
            xp = torch.sparse.mm(x.to_sparse(), self.p)  # (U, N)
        return (x - xp / self.diag_p).to(torch.float32)

    def weights(self) -> torch.Tensor:
        """float64 (N, N) the dense B (score = X_u B), for small data."""
        if self.dual:
            p = torch.eye(self.n_modelled, dtype=torch.float64, device=self.device) / self.lam
            p += (self.z.T * self.c) @ self.z
        else:
            p = self.p.double()
        b = -p / self.diag_p.to(p.dtype)
        b.fill_diagonal_(0)
        return b


def tune(
    ranker: CandidateRanker,
    name: str,
    grid: Sequence[float],
    relevant: Relevant,
    k: int,
) -> tuple[float, list[dict]]:
    """Set the ranker's attribute `name` to the grid value of best NDCG@k on `relevant`
    (the valid split's relevant movies; train's movies excluded), the first on ties.

    Returns:
        (the chosen value, one {name: value, "valid_ndcg": NDCG@k} per grid value).
    """
    table = []
    for value in grid:  # each fit is vectorised; the grid is a handful of values
        setattr(ranker, name, value)
        ndcg = float(rank_and_score(ranker, relevant, (k,), "train")["ndcg"].iloc[0])
        table.append({name: value, "valid_ndcg": ndcg})
        logger.info("{} {}={}: valid NDCG@{} {:.4f}", type(ranker).__name__, name, value, k, ndcg)
    best = max(range(len(grid)), key=lambda j: (table[j]["valid_ndcg"], -j))
    setattr(ranker, name, grid[best])
    return grid[best], table


def fit_item_rankers(
    encoded: str | Path | Encoded,
    *,
    ks: Sequence[int],
    threshold: float,
    memory_budget: float,
    k: int,
    exclude: str,
    neighbours: Sequence[int] = DEFAULT_NEIGHBOURS,
    lambdas: Sequence[float] = DEFAULT_LAMBDAS,
    tuning_users: int = TUNING_USERS,
    device: str = "cpu",
    threads: int | None = None,
) -> list[dict]:
    """Fit ItemKNN and EASE on train, tune each on valid, and score them on test.

    Tuning: ItemKNN's neighbours over `neighbours`, EASE's λ over `lambdas`, each by
    NDCG@k over the valid users (at most `tuning_users` of them, a sample seeded 0;
    relevant: valid ratings ≥ threshold stars; candidates: movies not rated in train).
    Test: the ranking metrics at `ks` of the chosen model over every test user,
    candidates the movies not rated in `exclude` (see deepfm_rec.topk.exclusion_splits).

    Returns:
        One record per ranker, in the form of write_baselines' popularity record:
        {"model": "itemknn" | "ease", "kind": "baseline", "ranking": [{k, users, hr,
        precision, recall, ndcg}, ...], "params": {the chosen value, "tuning": [{value,
        valid_ndcg}, ...], "tuned_on": "valid ndcg@k", "items_used", "items_total",
        "fit_seconds", ...}}.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    if not isinstance(encoded, Encoded):
        encoded = open_encoded(Path(encoded))
    every = relevant_items(encoded, "valid", threshold)
    valid = every.sample(tuning_users, 0)
    test = relevant_items(encoded, "test", threshold)

    def record(model: str, ranker: ItemRanker, name: str, grid: list, start: float) -> dict:
        """Tune `ranker` (fitted since `start`) on valid, score it on test, describe it."""
        fitted = time.perf_counter()
        chosen, table = tune(ranker, name, grid, valid, k)
        tuned = time.perf_counter()
        ranking = rank_and_score(ranker, test, tuple(ks), exclude).to_dict("records")
        label = "lambda" if name == "lam" else name  # EASE's attribute; λ in the record
        params = {
            label: chosen,
            "tuning": [{label: row[name], "valid_ndcg": row["valid_ndcg"]} for row in table],
            "tuned_on": f"valid ndcg@{k}"
            + (
                f" over {len(valid):,} of its {len(every):,} users"
                if len(valid) < len(every)
                else ""
            ),
            **ranker.coverage(),
            "fit_seconds": round(fitted - start, 2),
            "tune_seconds": round(tuned - fitted, 2),
        }
        logger.info(
            "{}: {}={} chosen on valid; {} of {} movies modelled; test {}",
            model,
            label,
            chosen,
            params["items_used"],
            params["items_total"],
            next((row for row in ranking if row["k"] == k), ranking[-1]),
        )
        return {"model": model, "kind": "baseline", "ranking": ranking, "params": params}

    start = time.perf_counter()
    knn = ItemKNN(encoded, max(neighbours), memory_budget=memory_budget, device=device)
    records = [record("itemknn", knn, "neighbours", list(neighbours), start)]
    records[-1]["params"].update(similarity="cosine", truncate=knn.truncate, block=knn.block)
    del knn
    start = time.perf_counter()
    ease = EASE(encoded, float(lambdas[0]), memory_budget=memory_budget, device=device)
    records.append(record("ease", ease, "lam", [float(v) for v in lambdas], start))
    records[-1]["params"]["solver"] = "dual" if ease.dual else "primal"
    return records
