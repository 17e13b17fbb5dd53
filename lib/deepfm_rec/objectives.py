"""The two training objectives of one architecture: stars and ranking.

stars: MSE on the rating (stars), valid RMSE/MAE; early stopping on valid MAE.
ranking: implicit feedback. Positives are train ratings (of at least `positives` stars);
    each batch of positives is contrasted with movies its users did not rate in train:
    every movie (negatives 0) or `negatives` movies drawn without replacement per batch
    (uniformly, or in proportion to their train ratings) and shared by the batch's rows,
    the movies a row's user rated in train masked out for that row. Loss: softmax (the
    positive against the negatives, a sampled softmax with the log-Q correction when
    they are drawn), BPR (Rendle et al., UAI 2009) or BCE. Early stopping on valid
    NDCG@k, full ranking of the movies not rated in train.

A positive's user side has the row's own pair left out of its history (and its movie
side, the user out of its raters): a model that saw a movie in the history it predicts
would learn to recommend what is in the history, which is never a candidate.

Shapes: B batch size, S negatives, F fields, D embedding dim.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from deepfm_rec.data.batches import Batch, BatchMaker, gather_bags
from deepfm_rec.data.encoding import Encoded
from deepfm_rec.data.errors import DataError
from deepfm_rec.data.sides import Sides
from deepfm_rec.inference import predict
from deepfm_rec.metrics import ranking_metrics, relevant_items
from deepfm_rec.topk import ModelRanker, rated_items

LOSSES = ("softmax", "bpr", "bce")
SAMPLERS = ("uniform", "popularity")


def l2_penalty(field_rows: torch.Tensor) -> torch.Tensor:
    """The batch's mean squared norm of its rows' field vectors (w and v of every field)."""
    return (field_rows * field_rows).sum() / len(field_rows)


class SampledSoftmax(torch.autograd.Function):
    """The softmax loss: the mean over rows of -log softmax(positive among [positive,
    negatives]), each row's masked negatives left out, the log-Q correction subtracted.

    As `logaddexp(positive, logsumexp(negatives - log_q masked))` in autograd, in fewer
    passes over the (B, S) logits (8 instead of about 11, each as costly as the matrix
    product that made them): the forward keeps the exponentials it summed, and the
    backward scales them in place into the negatives' gradient (so a graph cannot be
    backpropagated twice through it, which training never does). A masked negative adds
    e^-60 to a sum of at least 1 (the top term), which float32 cannot hold, and gets a
    gradient of that size.

    forward(positive float32 (B,), negative float32 (B, S), rated bool (B, S), log_q
    float32 (S,) or None) -> the loss, a scalar.
    """

    @staticmethod
    def forward(ctx, positive, negative, rated, log_q):
        # a new (B, S) tensor in the first pass, the negatives' own left as they are
        if log_q is not None:
            logits = (negative - log_q).masked_fill_(rated, -math.inf)
        else:
            logits = negative.masked_fill(rated, -math.inf)
        top = torch.maximum(logits.amax(dim=1), positive)  # (B,), finite: the positive's
        # exp(logit - top), (B, S): at most 1. Below e^-60 (nothing next to the positive's
        # own term) clamped, as exp takes 30 times longer on an argument whose result is
        # subnormal or zero; e^-60 times the backward's scale stays a normal float too
        exp = logits.sub_(top[:, None]).clamp_(min=-60).exp_()
        own = (positive - top).exp()  # (B,)
        total = exp.sum(dim=1) + own  # (B,)
        ctx.save_for_backward(exp, own, total)
        return (top + total.log() - positive).mean()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        exp, own, total = ctx.saved_tensors
        scale = grad / (len(total) * total)  # (B,) d loss / d exp
        # each softmax probability times the loss's gradient; the saved buffer is reused
        return (own * scale - grad / len(total)), exp.mul_(scale[:, None]), None, None


class Stars:
    """MSE on star ratings over the train split; valid MSE and MAE. With `users` (a bool
    per user code) both are over those users' rows only (train_model's l2 choice)."""

    monitor, mode = "valid_mae", "min"
    columns = ["train_mse", "train_mae", "valid_mse", "valid_mae"]

    def __init__(self, encoded: Encoded, maker: BatchMaker, config, users=None) -> None:
        self.maker, self.config = maker, config
        self.train_rows = encoded.rows("train", users)
        self.valid_rows = encoded.rows("valid", users)
        self.valid_label = np.asarray(encoded.arrays["label"])[self.valid_rows]

    def batches(self, generator: torch.Generator) -> Iterator[Batch]:
        return self.maker.batches(self.train_rows, self.config.batch_size, generator)

    def loss(self, model, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(loss to minimise: MSE plus l2 times the rows' mean squared norms, sums of the
        batch's squared and absolute errors)."""
        prediction, field_rows = model.score(batch)  # (B,), (B, F, 1 + D)
        loss = F.mse_loss(prediction, batch.label)
        if self.config.l2:
            loss = loss + self.config.l2 * l2_penalty(field_rows)
        error = prediction.detach() - batch.label
        return loss, {"se": (error * error).sum(), "ae": error.abs().sum()}

    def train_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        n = len(self.train_rows)
        return {"train_mse": sums["se"] / n, "train_mae": sums["ae"] / n}

    def validate(self, model) -> dict[str, float]:
        error = predict(model, self.maker, self.valid_rows, self.config.batch_size * 4)
        error = error - self.valid_label
        return {"valid_mse": float(np.mean(error**2)), "valid_mae": float(np.mean(np.abs(error)))}


class NegativeSampler:
    """The negatives of a batch: movies shared by its rows, each row's user's train movies
    masked out.

    Args:
        encoded: the encoded folder (train ratings give the rated movies and popularity).
        count: negatives per batch; 0 (or at least the catalogue) is every movie.
        method: uniform, or popularity (in proportion to a movie's train ratings).
        generator: seeds the draws (on the device).
    """

    def __init__(
        self, encoded: Encoded, device: torch.device, count: int, method: str, generator
    ) -> None:
        if method not in SAMPLERS:
            raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, not {method!r}")
        self.device, self.generator, self.method = device, generator, method
        self.n_items = encoded.size("item")
        candidates = self.n_items - 1  # codes 1..V-1
        self.count = count if 0 < count < candidates else candidates
        indptr, items = rated_items(encoded, ["train"])
        self.indptr = torch.from_numpy(indptr).to(device)
        self.rated = torch.from_numpy(items).to(device)
        train_items = np.asarray(encoded.arrays["item"])[encoded.rows("train")]
        popularity = np.bincount(train_items, minlength=self.n_items)[1:].astype(np.float64)
        self.weights = torch.from_numpy(popularity).to(device)  # (V-1,)
        self.column = torch.full((self.n_items,), -1, dtype=torch.int64, device=device)
        self.all = torch.arange(1, self.n_items, device=device)

    @property
    def sampled(self) -> bool:
        return self.count < self.n_items - 1

    def __call__(self, users: torch.Tensor):
        """(items int64 (S,) distinct codes, rated bool (B, S): whether row b's user rated
        item s in train, log_q float32 (S,): the log of each item's chance to be drawn
        among the S, or None when every movie is a negative)."""
        if not self.sampled:
            items, log_q = self.all, None
        else:
            uniform = self.method == "uniform"
            weights = torch.ones_like(self.weights) if uniform else self.weights
            drawn = torch.multinomial(
                weights, self.count, replacement=False, generator=self.generator
            )
            items = drawn + 1
            # log of each drawn movie's chance to be among the S: S / C when uniform; for
            # popularity, 1 - (1 - p)^S, the chance that S draws of p hit it (S·p would
            # exceed 1 for the most-rated movies and correct them too much)
            p = weights[drawn] / weights.sum()
            log_q = torch.log(-torch.expm1(self.count * torch.log1p(-p))).float()
        # each distinct user's rated movies among the negatives, as (user, column) pairs:
        # a batch has several rows of most of its users
        distinct, inverse = torch.unique(users, return_inverse=True)
        movies, _ = gather_bags(self.rated, self.indptr, distinct)
        lengths = self.indptr[distinct + 1] - self.indptr[distinct]
        owner = torch.repeat_interleave(
            torch.arange(len(distinct), device=self.device), lengths, output_size=len(movies)
        )
        self.column[items] = torch.arange(len(items), device=self.device)
        column = self.column[movies]  # -1 for a movie not among the negatives: the last,
        self.column[items] = -1  # spare column (no mask of the found, no host sync)
        rated = torch.zeros(len(distinct), len(items) + 1, dtype=torch.bool, device=self.device)
        rated[owner, column] = True
        rated = rated[:, :-1][inverse]  # (B, S)
        return items, rated, log_q


class Ranking:
    """Implicit-feedback training over the train split's positives (see the module). With
    `users` (a bool per user code) the positives and the valid NDCG are those users' only
    (train_model's l2 choice)."""

    monitor, mode = "valid_ndcg", "max"
    columns = ["train_loss", "valid_ndcg", "valid_recall"]

    def __init__(
        self,
        encoded: Encoded,
        maker: BatchMaker,
        config,
        fields: list[str],
        generator,
        seed,
        users=None,
    ) -> None:
        self.maker, self.config, self.encoded = maker, config, encoded
        meta = {f["name"]: f for f in encoded.meta["fields"]}
        pair = [name for name in fields if meta[name]["owner"] not in ("user", "item")]
        if pair:
            raise DataError(
                f"fields {pair} are a rating's own (tags, its time), which an unrated pair "
                f"has not: a ranking model's fields are user and movie fields only"
            )
        implicit = [name for name in fields if meta[name].get("leave")]
        if implicit and encoded.meta["implicit"] != "train":
            raise DataError(
                f"fields {implicit}: config key 'implicit' is {encoded.meta['implicit']!r}, "
                f"so the bags hold the held-out pairs a ranking model is scored on; use "
                f"'train' or leave these fields out"
            )
        if config.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, not {config.loss!r}")
        train = encoded.rows("train", users)
        label = np.asarray(encoded.arrays["label"])[train]
        self.positives = train[label >= config.positives]
        self.users = torch.from_numpy(np.asarray(encoded.arrays["user"]).astype(np.int64))
        self.users = self.users.to(maker.device)
        self.sides = Sides(encoded, fields, maker.device)
        self.sampler = NegativeSampler(
            encoded, maker.device, config.negatives, config.sampler, generator
        )
        relevant = relevant_items(encoded, "valid", config.threshold)
        if users is not None:
            relevant = relevant.subset(np.flatnonzero(users[relevant.users]))
        self.relevant = relevant.sample(config.valid_users, seed)
        self.ranker = None

    def batches(self, generator: torch.Generator) -> Iterator[tuple[Batch, torch.Tensor]]:
        order = torch.as_tensor(self.positives)[
            torch.randperm(len(self.positives), generator=generator)
        ]
        order = order.to(self.maker.device)
        for start in range(0, len(order), self.config.batch_size):
            rows = order[start : start + self.config.batch_size]
            yield self.maker.batch(rows), self.users[rows]

    def loss(self, model, work) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(loss to minimise, the batch's summed loss)."""
        batch, users = work
        positive, field_rows = model.score(batch)  # (B,), (B, F, 1 + D)
        left = field_rows * self.sides.mask["user"][:, None]  # the rows' user sides
        items, rated, log_q = self.sampler(users)
        right = self.sides.vectors(model.embedding, "item", items)  # (S, F, 1 + D)
        negative = model.grid_scores(left, right)  # (B, S)
        if self.config.loss == "softmax":
            loss = SampledSoftmax.apply(positive, negative, rated, log_q)
        elif self.config.loss == "bpr":  # the mean over a row's negatives it keeps
            pairs = F.softplus(negative - positive[:, None]).masked_fill(rated, 0)
            loss = (pairs.sum(dim=1) / (~rated).sum(dim=1).clamp(min=1)).mean()
        else:
            negatives = F.softplus(negative).masked_fill(rated, 0).sum(dim=1)
            negatives = negatives / (~rated).sum(dim=1).clamp(min=1)
            loss = (F.softplus(-positive) + negatives).mean()
        if self.config.l2:
            loss = loss + self.config.l2 * l2_penalty(field_rows)
        return loss, {"loss": loss.detach() * len(users)}

    def train_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        return {"train_loss": sums["loss"] / len(self.positives)}

    def validate(self, model) -> dict[str, float]:
        if self.ranker is None:
            self.ranker = ModelRanker(model, self.encoded, sides=self.sides)
        self.ranker.refresh()
        items, _ = self.ranker.top_k(self.relevant.users, self.config.k, "train")
        row = ranking_metrics(items, self.relevant, [self.config.k]).iloc[0]
        return {"valid_ndcg": float(row["ndcg"]), "valid_recall": float(row["recall"])}
