"""Training throughput: the device-resident fast path against the seed's per-sample loader.

Run by hand (tests/test_benchmarks.py runs it once on small data and judges no figure):

    .venv/bin/python benchmarks/train_speed.py                 # 10M synthetic ratings
    .venv/bin/python benchmarks/train_speed.py --ratings 1000000 --repeats 3

It generates (once, cached under benchmarks/data/) a synthetic MovieLens-10M-sized
dataset, encodes it (time and peak RSS of that step), then measures training samples/s
of FM and DeepFM (embed 16, MLP 128-64-32) at several batch sizes on the fast path
(resident arrays, batched gathers, sparse embedding updates on the CPU) and on a
reference path that reproduces the seed's design (a Dataset whose __getitem__ reads
one row from the memmaps, a collate function that builds EmbeddingBag offsets, a
torch DataLoader with 0 and 4 workers, dense Adam), and prints one table: per case the
median samples/s of --repeats blocks, their range, the ratio to the 0-worker reference,
and the ms per step of each phase (gather, forward, backward, optimizer step).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from deepfm_rec.data.batches import Batch, BatchMaker
from deepfm_rec.data.encoding import CATEGORICAL, DENSE, MULTI, encode_dataset, open_encoded
from deepfm_rec.data.sources import fetch
from deepfm_rec.data.synthetic import generate
from deepfm_rec.data.users import write_users
from deepfm_rec.inference import resolve_device
from deepfm_rec.models import build_model
from deepfm_rec.train import Optimizers, TrainConfig, loss_terms, uses_sparse

HPARAMS = {"fm": {"embed_dim": 16}, "deepfm": {"embed_dim": 16, "mlp": [128, 64, 32]}}


class PerSampleDataset(Dataset):
    """The seed's loader: one row at a time from the memmaps, as Python scalars and lists."""

    def __init__(self, folder: Path, rows: np.ndarray) -> None:
        self.encoded = open_encoded(folder)
        self.rows = rows
        self.cat = [f["name"] for f in self.encoded.fields(CATEGORICAL)]
        self.dense = [f["name"] for f in self.encoded.fields(DENSE)]
        self.multi = [f["name"] for f in self.encoded.fields(MULTI)]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        a, row = self.encoded.arrays, self.rows[i]
        bags = []
        for name in self.multi:
            b = a[f"{name}.bag"][row]
            offsets = a[f"{name}.offsets"]
            bags.append(a[f"{name}.values"][offsets[b] : offsets[b + 1]].tolist())
        return (
            [int(a[name][row]) for name in self.cat],
            [float(a[name][row]) for name in self.dense],
            bags,
            float(a["label"][row]),
        )


def collate(samples) -> Batch:
    """Stack per-sample fields; build (values, offsets) for each multi-valued field."""
    cat, dense, bags, label = zip(*samples, strict=True)
    flat = []
    for j in range(len(bags[0])):
        lists = [b[j] for b in bags]
        lengths = torch.tensor([len(x) for x in lists])
        offsets = (torch.cumsum(lengths, 0) - lengths).to(torch.int32)
        values = torch.tensor([v for x in lists for v in x], dtype=torch.int32)
        flat.append((values, offsets))
    return Batch(
        categorical=torch.tensor(cat, dtype=torch.int32),
        dense=torch.tensor(dense, dtype=torch.float32),
        bags=flat,
        label=torch.tensor(label, dtype=torch.float32),
    )


def prepare(folder: Path, n_ratings: int) -> tuple[Path, float, float]:
    """Generate (cached) and encode; returns (encoded folder, encode seconds, peak RSS GB)."""
    raw = folder / "raw"
    if not (raw / "ratings.dat").exists():
        start = time.perf_counter()
        generate(raw, n_ratings=n_ratings, seed=0)
        print(f"generated {n_ratings} ratings in {time.perf_counter() - start:.1f}s")
    encoded = folder / "encoded"
    # encode in a child process, so its peak RSS is its own
    start = time.perf_counter()
    child = multiprocessing.get_context("spawn").Process(target=_encode, args=(raw, folder))
    child.start()
    child.join()
    if child.exitcode:
        raise SystemExit(f"encoding failed with exit code {child.exitcode}")
    seconds = time.perf_counter() - start
    rss_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6  # KiB on Linux
    return encoded, seconds, rss_gb


def _encode(raw: Path, folder: Path) -> None:
    fetched = folder / "fetched"
    fetch("ml-10m", raw, fetched)
    write_users(fetched, folder / "users.tsv", dataset="ml-10m", mode="synthetic", seed=0)
    encode_dataset(fetched, folder / "users.tsv", folder / "encoded", seed=0,
                   valid_fraction=0.1, test_fraction=0.1)  # fmt: skip


PHASES = ("gather", "forward", "backward", "step")


def measure(batches, model, optimizer, repeats: int, seconds: float, warmup: int) -> dict:
    """Training throughput and where a step goes, on batches drawn from `batches`.

    After one discarded warm-up block (at least `warmup` steps and `seconds`), times
    `repeats` blocks of at least `seconds` each: samples/s of each block ("rates") and
    their median ("median"). Then one more block splits the step into its phases
    ("phases", ms per step), with a CUDA synchronisation after each phase, which is why
    the throughput blocks are separate.
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
            batch = next(batches)
            lap()
            loss, _ = loss_terms(model, batch, 0.01)
            lap()
            optimizer.zero_grad()
            loss.backward()
            lap()
            optimizer.step()
            lap()
            for j in range(len(marks) - 1):
                totals[j] += marks[j + 1] - marks[j]
            steps, samples = steps + 1, samples + len(batch)
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


def forever(epoch):
    """The batches of `epoch()` (one shuffled epoch's), epoch after epoch."""
    while True:
        yield from epoch()


def fast_setup(encoded, name: str, batch_size: int, device):
    """The model, its optimizers and the batch maker of the fast path, as train() builds them."""
    config = TrainConfig(batch_size=batch_size)
    sparse = uses_sparse(config)
    model = build_model(name, encoded.meta, sparse=sparse, **HPARAMS[name]).to(device)
    return model, Optimizers(model, config, sparse), BatchMaker(encoded, device)


def fast(encoded, name: str, batch_size: int, device, timing: dict):
    model, optimizer, maker = fast_setup(encoded, name, batch_size, device)
    rows, generator = encoded.rows("train"), torch.Generator().manual_seed(0)
    batches = forever(lambda: maker.batches(rows, batch_size, generator))
    return measure(batches, model, optimizer, warmup=3, **timing)


def reference(folder: Path, encoded, name: str, batch_size: int, workers: int, timing: dict):
    model = build_model(name, encoded.meta, **HPARAMS[name])
    loader = DataLoader(
        PerSampleDataset(folder, encoded.rows("train")), batch_size=batch_size, shuffle=True,
        num_workers=workers, collate_fn=collate, generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    optimizer = Optimizers(model, TrainConfig(optimizer="adam"), sparse=False)
    # the first batches map the memmaps' pages into the process (several times slower);
    # the timed blocks are the steady state
    return measure(forever(lambda: loader), model, optimizer, warmup=20, **timing)


def epoch_seconds(encoded, device) -> tuple[float, int, int]:
    """(wall time, rows, steps) of one FM epoch's training steps at batch 1024 over the
    train split, with loading the packed table once (train()'s validation after each epoch
    not included)."""
    start = time.perf_counter()
    model, optimizer, maker = fast_setup(encoded, "fm", 1024, device)
    rows = steps = 0
    for batch in maker.batches(encoded.rows("train"), 1024, torch.Generator().manual_seed(0)):
        loss, _ = loss_terms(model, batch, 0.01)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        rows, steps = rows + len(batch), steps + 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, rows, steps


def progress(name: str, path: str, batch_size: int, found: dict) -> None:
    print(f"{name}, {path}, batch {batch_size}: {found['median']:,.0f} samples/s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ratings", type=int, default=10_000_000)
    parser.add_argument("--folder", type=Path, default=Path(__file__).parent / "data")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batches", type=int, nargs="+", default=[1024, 8192, 65536])
    parser.add_argument("--repeats", type=int, default=5, help="timed blocks per case")
    parser.add_argument("--seconds", type=float, default=1.0, help="least length of a block")
    parser.add_argument("--epoch", action="store_true", help="also time one full FM epoch")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    device = resolve_device(args.device)
    folder = args.folder / f"synthetic-{args.ratings}"
    encoded_folder, encode_s, encode_rss = prepare(folder, args.ratings)
    encoded = open_encoded(encoded_folder)
    n_train = encoded.meta["splits"]["train"]
    print(
        f"encoded {encoded.meta['rows']} ratings in {encode_s:.1f}s, peak RSS {encode_rss:.2f} GB"
    )

    timing = {"repeats": args.repeats, "seconds": args.seconds}
    results = []  # (model, path, batch, measure()'s dict)
    for name in HPARAMS:
        for workers in (0, 4):
            found = reference(encoded_folder, encoded, name, 1024, workers, timing)
            results.append((name, f"per-sample DataLoader, {workers} workers", 1024, found))
            progress(*results[-1])
        for batch_size in args.batches:
            found = fast(encoded, name, batch_size, device, timing)
            results.append((name, f"fast ({device.type})", batch_size, found))
            progress(*results[-1])
    epoch = epoch_seconds(encoded, device) if args.epoch else None

    print(f"\n{encoded.meta['rows']:,} ratings ({n_train:,} train), device {device}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")  # fmt: skip
    print(f"encode: {encode_s:.1f} s, peak RSS {encode_rss:.2f} GB")
    print(f"samples/s: median of {args.repeats} blocks of at least {args.seconds:g} s "
          "(range: slowest-fastest block); ms per step: one more block, by phase")  # fmt: skip
    print(f"{'model':<7} {'path':<34} {'batch':>6} {'samples/s':>11} {'range':>17} {'× ref':>6} "
          + " ".join(f"{phase:>8}" for phase in PHASES))  # fmt: skip
    for name, path, batch_size, found in results:
        rate = found["median"]
        base = next(f["median"] for m, p, _, f in results
                    if m == name and p.endswith(", 0 workers"))  # fmt: skip
        spread = f"{min(found['rates']):,.0f}-{max(found['rates']):,.0f}"
        ms = " ".join(f"{found['phases'][phase]:>8.2f}" for phase in PHASES)
        print(f"{name:<7} {path:<34} {batch_size:>6} {rate:>11,.0f} {spread:>17} "
              f"{rate / base:>5.1f}x {ms}")  # fmt: skip
    if epoch is not None:
        seconds, rows, steps = epoch
        print(f"one FM epoch at batch 1024 ({rows:,} rows in {steps:,} steps, with loading "
              f"the table): {seconds:.2f} s")  # fmt: skip


if __name__ == "__main__":
    main()
