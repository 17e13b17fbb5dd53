"""Training throughput of the fast path: the study's models as the config sets them, and the
seed's models without the implicit-feedback bags.

Run by hand (tests/test_benchmarks.py runs it once on small data and judges no figure):

    .venv/bin/python benchmarks/train_speed.py --epoch         # 10M synthetic ratings
    .venv/bin/python benchmarks/train_speed.py --ratings 1000000 --repeats 3

It generates (once, cached under benchmarks/data/) a synthetic MovieLens-10M-sized
dataset (70,000 users, 10,000 movies), encodes it (time and peak RSS of that step), then
measures training throughput of FM and DeepFM. Cases, per model:

- config stars and config ranking: the study's training as the config's `fm.stars`,
  `fm.ranking`, `deepfm.stars` and `deepfm.ranking` sections set it (fields, model,
  batch, optimizer, bag_refresh; for ranking the loss, the N negatives per batch and
  their sampler, positives); a ranking rate is positives/s, each positive scored against
  the batch's N shared negatives.
- seed fields, sparse_adam (each --batches size) and seed fields, adam (batch 1024): the
  seed's models (the config's stars sections with embed 16, DeepFM's MLP 128-64-32 without
  dropout, fields user, item, gender, occupation, age, genres, tags; mean pooling) with
  the lazy row-wise Adam and with the fused dense Adam.

It prints one table, last: per case the median samples/s (ranking: positives/s) of
--repeats blocks, their range, and the ms per step of each phase (gather, forward,
backward with zero_grad, optimizer step with the bag table's refresh every bag_refresh
steps). A ranking step's forward includes drawing its negatives and their movies' field
rows. --epoch also times one FM epoch at batch 1024 on the fast path (seed fields,
sparse_adam), with loading the packed table. torch runs on --threads threads (default
every core; on a machine shared with other jobs, 1 avoids threads waiting for each other).
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import resource
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from deepfm_rec.config import SCHEMA, first_l2, load_config, train_settings
from deepfm_rec.data.encoding import encode_dataset, open_encoded
from deepfm_rec.data.sources import fetch
from deepfm_rec.data.synthetic import generate
from deepfm_rec.data.users import write_users
from deepfm_rec.inference import resolve_device
from deepfm_rec.train import Optimizers, TrainConfig, build_setup, split_settings

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config" / "config.yaml"
MODELS = ("fm", "deepfm")
OBJECTIVES = ("stars", "ranking")
# the seed's models and fields, so that the figures compare with docs/speed.md's tables
SEED_FIELDS = ["user", "item", "gender", "occupation", "age", "genres", "tags"]
SEED = {
    "fm": {"fields": SEED_FIELDS, "embed_dim": 16, "pooling": "mean"},
    "deepfm": {
        "fields": SEED_FIELDS,
        "embed_dim": 16,
        "pooling": "mean",
        "mlp": [128, 64, 32],
        "dropout": 0.0,
        "field_dropout": 0.0,
    },
}


def config_sections(config: dict) -> dict[tuple[str, str], tuple[TrainConfig, dict]]:
    """(TrainConfig, model hparams) of each model's section of the study's config (read by
    deepfm_rec.config.load_config) by (model, objective), as the workflow trains them."""
    return {
        (name, objective): split_settings(first_l2(train_settings(config, name, objective)))
        for name in MODELS
        for objective in OBJECTIVES
    }


def seed_case(config: dict, name: str, **changes) -> tuple[TrainConfig, dict]:
    """(TrainConfig, model hparams) of the seed's model `name` on stars: the config's
    section with the seed's fields and model (SEED), and `changes`."""
    return split_settings(first_l2(train_settings(config, name, "stars")) | SEED[name] | changes)


def prepare(
    folder: Path, n_ratings: int, synthetic: dict, bag_limit: int | None
) -> tuple[Path, float, float]:
    """Generate (cached) `n_ratings` ratings with the config's `synthetic` settings and
    encode them, the implicit bags capped at `bag_limit` (the config's); returns (encoded
    folder, encode seconds, peak RSS GB)."""
    raw = folder / "raw"
    if not (raw / "ratings.dat").exists():
        start = time.perf_counter()
        generate(raw, **{**synthetic, "n_ratings": n_ratings, "seed": 0})
        print(f"generated {n_ratings} ratings in {time.perf_counter() - start:.1f}s")
    encoded = folder / "encoded"
    # encode in a child process, so its peak RSS is its own
    start = time.perf_counter()
    child = multiprocessing.get_context("spawn").Process(
        target=_encode, args=(raw, folder, bag_limit)
    )
    child.start()
    child.join()
    if child.exitcode:
        raise SystemExit(f"encoding failed with exit code {child.exitcode}")
    seconds = time.perf_counter() - start
    rss_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6  # KiB on Linux
    return encoded, seconds, rss_gb


def _encode(raw: Path, folder: Path, bag_limit: int | None) -> None:
    fetched = folder / "fetched"
    fetch("ml-10m", raw, fetched)
    write_users(fetched, folder / "users.tsv", dataset="ml-10m", mode="synthetic", seed=0)
    encode_dataset(
        fetched,
        folder / "users.tsv",
        folder / "encoded",
        seed=0,
        valid_fraction=0.1,
        test_fraction=0.1,
        bag_limit=bag_limit,
    )


PHASES = ("gather", "forward", "backward", "step")


def measure(
    work: Iterator,
    loss: Callable,
    size: Callable[[object], int],
    model: torch.nn.Module,
    optimizer: Optimizers,
    repeats: int,
    seconds: float,
    warmup: int,
) -> dict:
    """Training throughput and where a step goes, on work items drawn from `work`.

    A work item is what `loss(model, item)` takes (an objective's: a stars Batch, or a
    ranking (batch of positives, their users)); `size(item)` is the samples it counts
    (rows; positives). After one discarded warm-up block (at least `warmup` steps and
    `seconds`), times `repeats` blocks of at least `seconds` each: samples/s of each block
    ("rates") and their median ("median"). Then one more block splits the step into its
    phases ("phases", ms per step), with a CUDA synchronisation after each phase, which is
    why the throughput blocks are separate.
    """
    device = next(model.parameters()).device
    sync = torch.cuda.synchronize if device.type == "cuda" else lambda: None

    def block(min_steps: int, phases: bool) -> tuple[float, list[float]]:
        """(samples/s, ms per step of each phase, zeros unless `phases`)."""
        totals = [0.0] * len(PHASES)
        marks: list[float] = []  # the ends of the current step's phases

        def lap() -> None:
            if phases:
                sync()
                marks.append(time.perf_counter())

        sync()
        start = time.perf_counter()
        steps = samples = 0
        while steps < min_steps or time.perf_counter() - start < seconds:
            marks[:] = [time.perf_counter()]
            item = next(work)
            lap()
            value, _ = loss(model, item)
            lap()
            optimizer.zero_grad()
            value.backward()
            lap()
            optimizer.step()
            lap()
            for j in range(len(marks) - 1):
                totals[j] += marks[j + 1] - marks[j]
            steps, samples = steps + 1, samples + size(item)
        sync()
        rate = samples / (time.perf_counter() - start)
        return rate, [1e3 * total / steps for total in totals]

    block(warmup, phases=False)
    rates = [block(1, phases=False)[0] for _ in range(repeats)]
    _, ms = block(1, phases=True)
    return {
        "rates": rates,
        "median": float(np.median(rates)),
        "phases": dict(zip(PHASES, ms, strict=True)),
    }


def forever(epoch: Callable[[], Iterator]) -> Iterator:
    """The work items of `epoch()` (one shuffled epoch's), epoch after epoch."""
    while True:
        yield from epoch()


def rows_of(item) -> int:
    """A stars work item's samples: its rows."""
    return len(item)


def positives_of(item) -> int:
    """A ranking work item's samples: its positives."""
    return len(item[1])


def fast(encoded, name, config: TrainConfig, hparams: dict, device, timing: dict):
    """measure() of train()'s steps (its setup, seed 0, the arrays resident)."""
    setup = build_setup(
        encoded, name, hparams, config, seed=0, device=device, memory_budget=math.inf
    )
    objective, optimizer = setup.objective, setup.optimizer
    generator = torch.Generator().manual_seed(0)
    work = forever(lambda: objective.batches(generator))
    size = positives_of if config.objective == "ranking" else rows_of
    found = measure(work, objective.loss, size, setup.model, optimizer, warmup=3, **timing)
    if config.objective == "ranking":
        found["negatives"] = objective.sampler.count
    found["bag_refresh"] = optimizer.refresh
    return found


def epoch_seconds(encoded, device, config: dict) -> tuple[float, int, int]:
    """(wall time, rows, steps) of one FM epoch's training steps at batch 1024 over the
    train split on the fast path (seed fields, sparse_adam: the README's figure), with
    loading the packed table once (train()'s validation after each epoch not included)."""
    start = time.perf_counter()
    train_config, hparams = seed_case(config, "fm", batch_size=1024, optimizer="sparse_adam")
    setup = build_setup(
        encoded, "fm", hparams, train_config, seed=0, device=device, memory_budget=math.inf
    )
    model, optimizer, objective = setup.model, setup.optimizer, setup.objective
    rows = steps = 0
    for batch in objective.batches(torch.Generator().manual_seed(0)):
        loss, _ = objective.loss(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        rows, steps = rows + len(batch), steps + 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, rows, steps


def progress(name: str, path: str, batch_size: int, found: dict) -> None:
    unit = "positives/s" if path.startswith("config ranking") else "samples/s"
    print(f"{name}, {path}, batch {batch_size}: {found['median']:,.0f} {unit}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ratings", type=int, default=10_000_000)
    parser.add_argument("--folder", type=Path, default=Path(__file__).parent / "data")
    parser.add_argument("--config", type=Path, default=CONFIG, help="its model sections")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--batches",
        type=int,
        nargs="+",
        default=[1024, 8192, 65536],
        help="batch sizes of the fast, sparse_adam case",
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed blocks per case")
    parser.add_argument("--seconds", type=float, default=1.0, help="least length of a block")
    parser.add_argument("--epoch", action="store_true", help="also time one full FM epoch")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch's")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    study = load_config(args.config, ROOT / SCHEMA)
    sections = config_sections(study)
    folder = args.folder / f"synthetic-{args.ratings}"
    encoded_folder, encode_s, encode_rss = prepare(
        folder, args.ratings, study["synthetic"], study["bag_limit"]
    )
    encoded = open_encoded(encoded_folder)
    n_train = encoded.meta["splits"]["train"]
    print(
        f"encoded {encoded.meta['rows']} ratings in {encode_s:.1f}s, peak RSS {encode_rss:.2f} GB"
    )

    timing = {"repeats": args.repeats, "seconds": args.seconds}
    results = []  # (model, path, batch, measure()'s dict)

    def run_fast(name: str, path: str, config: TrainConfig, hparams: dict) -> None:
        found = fast(encoded, name, config, hparams, device, timing)
        if config.objective == "ranking":
            path = f"{path}, {found['negatives']} negatives"
        results.append((name, path, config.batch_size, found))
        progress(*results[-1])

    for name in MODELS:
        for objective in OBJECTIVES:
            run_fast(name, f"config {objective}", *sections[name, objective])
        for batch_size in args.batches:
            case = seed_case(study, name, batch_size=batch_size, optimizer="sparse_adam")
            run_fast(name, "seed fields, sparse_adam", *case)
        case = seed_case(study, name, batch_size=1024, optimizer="adam")
        run_fast(name, "seed fields, adam", *case)
    epoch = epoch_seconds(encoded, device, study) if args.epoch else None

    print(
        f"\n{encoded.meta['rows']:,} ratings ({n_train:,} train), device {device}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    print(f"encode: {encode_s:.1f} s, peak RSS {encode_rss:.2f} GB")
    print(
        f"samples/s (ranking: positives/s): median of {args.repeats} blocks of at least "
        f"{args.seconds:g} s (range: slowest-fastest block); ms per step: one more block, "
        "by phase"
    )
    for (name, objective), (config, hparams) in sections.items():
        refresh = next(
            f["bag_refresh"]
            for m, p, _, f in results
            if m == name and p.startswith(f"config {objective}")
        )
        print(
            f"config {objective} {name}: {args.config.name}'s {name}.{objective}: fields "
            f"{','.join(hparams['fields'])}, {config.optimizer}, bag_refresh {refresh} "
            f"({'set' if config.bag_refresh else 'null: by size'})"
            + (
                f", {config.loss} loss, {config.negatives} {config.sampler} negatives per "
                f"batch (every movie if 0 or the catalogue's size or more), positives of "
                f"{config.positives:g}+ stars"
                if objective == "ranking"
                else ""
            )
        )
    print(
        f"{'model':<7} {'path':<40} {'batch':>6} {'samples/s':>11} {'range':>17} "
        + " ".join(f"{phase:>8}" for phase in PHASES)
    )
    for name, path, batch_size, found in results:
        spread = f"{min(found['rates']):,.0f}-{max(found['rates']):,.0f}"
        ms = " ".join(f"{found['phases'][phase]:>8.2f}" for phase in PHASES)
        print(f"{name:<7} {path:<40} {batch_size:>6} {found['median']:>11,.0f} {spread:>17} " + ms)
    if epoch is not None:
        seconds, rows, steps = epoch
        print(
            f"one FM epoch at batch 1024 ({rows:,} rows in {steps:,} steps, with loading "
            f"the table; seed fields, sparse_adam): {seconds:.2f} s"
        )


if __name__ == "__main__":
    main()
