"""Training: an explicit epoch loop with Adam, LR on plateau and early stopping.

The loss and the monitored valid metric are the objective's (deepfm_rec.objectives):
MSE and valid MAE for stars, a ranking loss and valid NDCG@k for ranking. train_model
trains a config section, choosing its l2 on valid where the section lists several.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from loguru import logger
from tqdm import tqdm

from deepfm_rec.data.batches import BatchMaker
from deepfm_rec.data.encoding import Encoded, open_encoded
from deepfm_rec.inference import read_checkpoint, resolve_device, write_checkpoint
from deepfm_rec.models import OBJECTIVES, attach_bags, build_model
from deepfm_rec.objectives import Ranking, Stars
from deepfm_rec.optim import Adam, Plateau, RowAdam


@dataclass(kw_only=True)
class TrainConfig:
    """How to train: objective, optimiser, batches, regularisation, stopping.

    Every setting is required: the config schema is where the study's values live
    (deepfm_rec.config.train_settings gives a section's). The ranking ones are None for
    stars, which does not use them.
    """

    objective: str  # stars or ranking (deepfm_rec.objectives)
    lr: float
    batch_size: int
    max_epochs: int
    l2: float  # weight of the mean squared norm of a row's w and v (a list: train_model)
    patience: int  # epochs without a min_delta improvement of the valid metric
    min_delta: float
    lr_factor: float  # ReduceLROnPlateau on the valid metric
    lr_patience: int
    # adam: fused dense Adam over every parameter. sparse_adam: the categorical embedding
    # table gets sparse gradients and a lazy Adam (RowAdam, SparseAdam's maths) that
    # touches only the rows a batch used, the rest Adam: it pays for a large table whose
    # batches use few rows (on 10M ratings, 80k rows, dense Adam took 3.4 ms a step).
    # The bag table has an Adam of its own either way (bag_refresh).
    optimizer: str
    # the training steps between two updates of the bag table (the multi-valued fields'
    # embeddings): the steps read every bag's sum from a table (a step costs the same
    # whatever its bags' sizes) and accumulate their gradients; every bag_refresh steps
    # the gradient goes through the bags to the bag table, which takes one Adam step with
    # lr times the square root of bag_refresh, and the sums are taken again (BagSums).
    # 1 is exact pooling; None chooses it from the data's size (refresh_steps).
    bag_refresh: int | None
    # ranking only (see deepfm_rec.objectives): the loss, negatives per batch (0: every
    # movie) and how they are drawn, the least stars of a positive, and the valid metric:
    # NDCG@k of valid ratings of at least `threshold` stars, over at most `valid_users`
    # users (0: all; a seeded sample otherwise)
    loss: str | None = None
    negatives: int | None = None
    sampler: str | None = None
    positives: float | None = None
    k: int | None = None
    threshold: float | None = None
    valid_users: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.l2, int | float):
            raise ValueError(f"l2 is one number here, not {self.l2!r} (train_model chooses)")
        ranking = [f.name for f in fields(self) if f.default is None]
        unset = [name for name in ranking if getattr(self, name) is None]
        if self.objective == "ranking" and unset:
            raise ValueError(f"a ranking TrainConfig needs {', '.join(unset)}")


class Optimizers:
    """Adam, or RowAdam for the sparse-gradient embedding table plus Adam for the rest;
    and the bag table's Adam, which steps every `bag_refresh` steps (see TrainConfig).

    One interface for the loop: zero_grad, step, the LR on plateau.
    """

    def __init__(
        self, model: torch.nn.Module, config: TrainConfig, sparse: bool, mode: str = "min"
    ) -> None:
        self.embedding, self.steps = model.embedding, 0
        bag_table = self.embedding.bag_table
        sparse_params = [
            m.weight
            for m in model.modules()
            if isinstance(m, torch.nn.Embedding | torch.nn.EmbeddingBag) and m.sparse
        ]
        ids = {id(p) for p in [*sparse_params, bag_table]}
        dense_params = [p for p in model.parameters() if id(p) not in ids]
        self.optimizers: list[Adam] = [Adam(dense_params, lr=config.lr)]
        if sparse and sparse_params:
            self.optimizers.append(RowAdam(sparse_params, lr=config.lr))
        self.bag_optimizer, self.refresh = None, 1
        if self.embedding.bags is not None:
            self.refresh = refresh_steps(config, len(self.embedding.bags.values))
            # one step for `refresh` steps' gradients: the square-root rule of Adam with a
            # batch that many times larger (on 1M ratings, lr × refresh overshot at 32)
            lr = config.lr * math.sqrt(self.refresh)
            self.bag_optimizer = Adam([bag_table], lr=lr)
            self.optimizers.append(self.bag_optimizer)
        self.plateau = Plateau(
            self.optimizers, mode=mode, factor=config.lr_factor, patience=config.lr_patience
        )

    def zero_grad(self) -> None:
        for optimizer in self.optimizers:
            if optimizer is not self.bag_optimizer:  # its gradient is set by BagSums.push
                optimizer.zero_grad()

    def step(self) -> None:
        for optimizer in self.optimizers:
            if optimizer is not self.bag_optimizer:
                optimizer.step()
        self.steps += 1
        if self.bag_optimizer is not None and self.steps % self.refresh == 0:
            bag_table = self.embedding.bag_table
            self.embedding.bags.push(bag_table)
            self.bag_optimizer.step()
            bag_table.grad = None
            self.embedding.resum()

    def plateau_step(self, metric: float) -> None:
        self.plateau.step(metric)

    @property
    def lr(self) -> float:
        return self.optimizers[0].lr


# bag codes per training row that the refreshes may sum (see refresh_steps)
CODES_PER_ROW = 250


def refresh_steps(config: TrainConfig, codes: int) -> int:
    """The steps between two refreshes of the bag sums (TrainConfig.bag_refresh): as set,
    or, when None, the fewest whose rows number at least codes / CODES_PER_ROW, `codes`
    being the values of all the model's bags. A refresh sums every code twice (the
    gradient through the bags, then the new sums), so the refreshes then cost at most
    about 2 · CODES_PER_ROW summed rows per training row at any data size: exact pooling
    (1) on the embedded data, 7 steps on 1M ratings, 63 on 10M."""
    if config.bag_refresh is not None:
        if config.bag_refresh < 1:
            raise ValueError(f"bag_refresh must be at least 1, not {config.bag_refresh}")
        return config.bag_refresh
    return max(1, math.ceil(codes / (CODES_PER_ROW * config.batch_size)))


def uses_sparse(config: TrainConfig) -> bool:
    """Whether the embeddings train with sparse gradients (see TrainConfig.optimizer)."""
    if config.optimizer not in ("adam", "sparse_adam"):
        raise ValueError(f"optimizer must be adam or sparse_adam, not {config.optimizer!r}")
    return config.optimizer == "sparse_adam"


class EarlyStopping:
    """Stop when `monitor` has not improved by `min_delta` for `patience` epochs, or is NaN.

    Args:
        monitor: the metric's name (for messages and checkpoints).
        mode: "min" or "max".
        patience: epochs without improvement tolerated.
        min_delta: the least change that counts as an improvement.
    """

    def __init__(self, monitor: str, *, mode: str, patience: int, min_delta: float):
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', not {mode!r}")
        self.monitor, self.mode, self.patience, self.min_delta = monitor, mode, patience, min_delta
        self.best = math.inf if mode == "min" else -math.inf
        self.best_epoch = -1
        self.wait = 0
        self.reason = ""

    def improved(self, value: float) -> bool:
        """Whether `value` beats the best by more than min_delta."""
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def step(self, value: float, epoch: int) -> bool:
        """Record the epoch's metric; True when training should stop."""
        if math.isnan(value):
            self.reason = f"{self.monitor} is NaN at epoch {epoch}"
            return True
        if self.improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            return False
        self.wait += 1
        if self.wait >= self.patience:
            self.reason = (
                f"{self.monitor} did not improve by {self.min_delta} for {self.patience} "
                f"epochs; best {self.best:.5f} at epoch {self.best_epoch}"
            )
            return True
        return False


def objective_for(
    encoded: Encoded, maker: BatchMaker, config: TrainConfig, fields, generator, seed, users
):
    """The training objective of `config` (deepfm_rec.objectives), over the rows of
    `users` (a bool per user code; None: all)."""
    if config.objective == "stars":
        return Stars(encoded, maker, config, users)
    if config.objective == "ranking":
        return Ranking(encoded, maker, config, fields, generator, seed, users)
    raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, not {config.objective!r}")


@dataclass
class Setup:
    """What a training step needs: the model (its bags attached), the BatchMaker of its
    fields, the objective (its batches, loss and valid metric) and the optimizers."""

    model: torch.nn.Module
    maker: BatchMaker
    objective: Stars | Ranking
    optimizer: Optimizers


def build_setup(
    encoded: Encoded,
    model_name: str,
    hparams: dict,
    config: TrainConfig,
    *,
    seed: int,
    device: torch.device,
    memory_budget: float,
    users: np.ndarray | None = None,
) -> Setup:
    """The model `model_name` of `hparams` (torch seeded with `seed`) and what trains it for
    `config` on `device`: train, profiling and the benchmarks build their steps here.
    `memory_budget` (bytes) bounds the per-row arrays copied to the device (BatchMaker);
    `users` (a bool per user code) restricts training and validation to their rows."""
    torch.manual_seed(seed)
    sparse = uses_sparse(config)
    model = build_model(
        model_name, encoded.meta, objective=config.objective, sparse=sparse, **hparams
    ).to(device)
    attach_bags(model, encoded)
    maker = BatchMaker(encoded, device, memory_budget, fields=model.fields)
    draws = torch.Generator(device).manual_seed(seed)  # the negatives, on the device
    objective = objective_for(encoded, maker, config, model.fields, draws, seed, users)
    return Setup(model, maker, objective, Optimizers(model, config, sparse, objective.mode))


def train(
    encoded: Encoded | Path,
    model_name: str,
    hparams: dict,
    config: TrainConfig,
    *,
    seed: int,
    device: str,
    checkpoint: Path | None = None,
    history: Path | None = None,
    memory_budget: float = math.inf,
) -> tuple[torch.nn.Module, pd.DataFrame, int]:
    """Train `model_name` on the train split for `config.objective` (fit()).

    Returns the model with its best weights restored, the history table (epoch, the
    objective's columns, lr, seconds) and the epoch whose weights were kept; writes the
    checkpoint dict and history.tsv when paths are given.
    """
    if not isinstance(encoded, Encoded):
        encoded = open_encoded(encoded)
    trained = fit(
        encoded, model_name, hparams, config, seed=seed, device=device, memory_budget=memory_budget
    )
    trained.save(encoded.meta, checkpoint=checkpoint, history=history)
    return trained.model, trained.table, trained.kept


def fit(
    encoded: Encoded,
    model_name: str,
    hparams: dict,
    config: TrainConfig,
    *,
    seed: int,
    device: str,
    memory_budget: float = math.inf,
    users: np.ndarray | None = None,
) -> Trained:
    """Train `model_name` on the train split for `config.objective`, early-stopped on its
    valid metric (stars: MAE; ranking: NDCG@k), with the kept epoch's weights restored.

    `memory_budget` (bytes) bounds the per-row arrays copied to the device, larger data
    is streamed (see BatchMaker); the batches and the model are the same either way.
    `users` (a bool per user code; None: all) restricts both splits to their rows.
    """
    device_t = resolve_device(device)
    setup = build_setup(
        encoded,
        model_name,
        hparams,
        config,
        seed=seed,
        device=device_t,
        memory_budget=memory_budget,
        users=users,
    )
    model, objective, optimizer = setup.model, setup.objective, setup.optimizer
    stopper = EarlyStopping(
        objective.monitor,
        mode=objective.mode,
        patience=config.patience,
        min_delta=config.min_delta,
    )
    shuffle = torch.Generator().manual_seed(seed)
    logger.info(
        "training {} for {} on {} on {}, {} batches, {}, fields {}: {} {}",
        model_name,
        config.objective,
        encoded.meta["dataset"],
        device_t,
        "resident" if setup.maker.resident else "streamed",
        config.optimizer,
        model.fields,
        hparams,
        asdict(config),
    )
    rows: list[dict] = []
    best_state = None
    bar = tqdm(range(1, config.max_epochs + 1), desc=f"train {model_name}", unit="epoch")
    for epoch in bar:
        start = time.perf_counter()
        model.train()
        sums: dict[str, torch.Tensor] = {}
        for work in objective.batches(shuffle):
            loss, stats = objective.loss(model, work)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            for key, value in stats.items():
                sums[key] = sums.get(key, 0) + value
        train_sums = {k: float(v) for k, v in sums.items()}  # a CPU-GPU sync, once an epoch
        row = {
            "epoch": epoch,
            **objective.train_metrics(train_sums),
            **objective.validate(model),
            "lr": optimizer.lr,
            "seconds": time.perf_counter() - start,
        }
        rows.append(row)
        logger.info(
            "epoch {}: {} lr {:.2g} ({:.1f}s)",
            epoch,
            " ".join(f"{c} {row[c]:.4f}" for c in objective.columns),
            row["lr"],
            row["seconds"],
        )
        bar.set_postfix({objective.monitor: f"{row[objective.monitor]:.4f}"})
        stop = stopper.step(row[objective.monitor], epoch)
        if stopper.best_epoch == epoch:
            best_state = {k: t.detach().clone() for k, t in model.state_dict().items()}
        if stop:
            logger.info("early stop: {}", stopper.reason)
            break
        optimizer.plateau_step(row[objective.monitor])
    else:
        logger.info("reached max_epochs={}", config.max_epochs)
    bar.close()
    if best_state is None:
        raise RuntimeError(
            f"{model_name}: {objective.monitor} was NaN from the first epoch: {stopper.reason}"
        )
    model.load_state_dict(best_state)
    model.embedding.resum()  # the kept weights' sums
    table = pd.DataFrame(rows, columns=["epoch", *objective.columns, "lr", "seconds"])
    best = {objective.monitor: stopper.best}
    return Trained(model, model_name, hparams, config, table, stopper.best_epoch, best, seed)


@dataclass
class Trained:
    """A trained model and how it was trained: what train() returns and saves."""

    model: torch.nn.Module
    name: str
    hparams: dict
    config: TrainConfig
    table: pd.DataFrame  # the history: epoch, the objective's columns, lr, seconds
    kept: int  # the epoch whose weights the model has
    best: dict  # the monitored valid metric at that epoch
    seed: int

    @property
    def score(self) -> float:
        return valid_score(self.table, self.kept, self.config.objective)

    def save(self, meta: dict, *, checkpoint: Path | None, history: Path | None, **extra) -> None:
        """history.tsv and the checkpoint dict (with `extra`'s items), where given."""
        if history is not None:
            self.table.to_csv(history, sep="\t", index=False, float_format="%.6g")
        if checkpoint is not None:
            state = {
                "model": self.name,
                "hparams": self.hparams,
                "train_config": asdict(self.config),
                "state_dict": self.model.state_dict(),
                "epoch": self.kept,
                "best": self.best,
                "seed": self.seed,
                "meta": meta,
            }
            write_checkpoint(state | extra, checkpoint)


def valid_score(history: pd.DataFrame, kept: int, objective: str) -> float:
    """The kept epoch's valid RMSE (stars, to minimise) or valid NDCG (to maximise)."""
    row = history.set_index("epoch").loc[kept]
    return math.sqrt(row["valid_mse"]) if objective == "stars" else float(row["valid_ndcg"])


def split_settings(settings: dict) -> tuple[TrainConfig, dict]:
    """A config model section as (TrainConfig of its training keys, the model's hparams);
    `l2_rows`, the l2 choice's (train_model), is in neither."""
    names = {f.name for f in fields(TrainConfig)}
    config = TrainConfig(**{k: v for k, v in settings.items() if k in names})
    return config, {k: v for k, v in settings.items() if k not in names | {"l2_rows"}}


def choice_users(encoded: Encoded, rows: int | None, seed: int) -> np.ndarray | None:
    """The users an l2 choice trains and validates on, a bool per user code: users with
    train rows, drawn in a seeded order while their train rows number at most `rows` in
    all. None (every user) when `rows` is None or the train split has no more rows."""
    train = encoded.rows("train")
    if rows is None or len(train) <= rows:
        return None
    counts = np.bincount(np.asarray(encoded.arrays["user"])[train], minlength=encoded.size("user"))
    order = np.random.default_rng(seed).permutation(np.flatnonzero(counts))
    chosen = np.zeros(len(counts), bool)
    chosen[order[np.cumsum(counts[order]) <= rows]] = True
    return chosen


def train_model(
    encoded: str | Path,
    model_name: str,
    settings: dict,
    *,
    seed: int,
    device: str,
    threads: int,
    memory_budget: float,
    checkpoint: str | Path,
    history: str | Path,
    chosen: str | Path | None = None,
) -> tuple[pd.DataFrame, int]:
    """Train from a config section: TrainConfig keys train, the others build the model.

    A list of `l2` values is a choice on the validation split: each is trained and the
    one with the best valid score (valid_score) is kept, its checkpoint recording every
    value's score under "l2_scores". Where the train split has more rows than the
    section's `l2_rows`, the values train on a seeded sample of users holding at most
    that many (choice_users; validated on the same users) and the chosen one then trains
    on every row; the checkpoint records the sample's size under "l2_users". With
    `chosen`, the checkpoint of another seed's training of the same section, the l2 that
    one kept is used instead: the study chooses once, on its first seed. Writes the
    checkpoint dict and history.tsv; returns the history and the kept epoch.
    """
    torch.set_num_threads(threads)
    encoded = open_encoded(Path(encoded))
    values = settings["l2"] if isinstance(settings["l2"], list) else [settings["l2"]]
    if chosen is not None:
        values = [read_checkpoint(Path(chosen), torch.device("cpu"))["train_config"]["l2"]]
        logger.info("l2 {} as chosen on valid in {}", values[0], chosen)
    users = choice_users(encoded, settings["l2_rows"], seed) if len(values) > 1 else None
    sign = 1 if settings["objective"] == "stars" else -1  # RMSE falls, NDCG rises

    def fit_l2(l2: float, users: np.ndarray | None) -> Trained:
        config, hparams = split_settings(settings | {"l2": l2})
        return fit(
            encoded,
            model_name,
            hparams,
            config,
            seed=seed,
            device=device,
            memory_budget=memory_budget,
            users=users,
        )

    best, scores = None, {}
    for l2 in values:  # only the best so far is kept: one model in memory beside the next
        trained = fit_l2(l2, users)
        scores[l2] = trained.score
        if best is None or sign * scores[l2] < sign * best.score:  # the first of equals
            best = trained
    extra = {}
    if len(scores) > 1:
        extra["l2_scores"] = scores
        logger.info("l2 chosen on valid: {} of {}", best.config.l2, scores)
    if users is not None:
        trained_users = np.unique(np.asarray(encoded.arrays["user"])[encoded.rows("train")])
        extra["l2_users"] = [int(users.sum()), len(trained_users)]
        logger.info("(on {} of {} users); training it on all", *extra["l2_users"])
        l2, best, trained = best.config.l2, None, None  # the sample's models go first
        best = fit_l2(l2, None)
    best.save(encoded.meta, checkpoint=Path(checkpoint), history=Path(history), **extra)
    return best.table, best.kept
