"""Training throughput: the device-resident fast path against the seed's per-sample loader.

Run by hand (not part of the test suite):

    .venv/bin/python benchmarks/train_speed.py                 # 10M synthetic ratings
    .venv/bin/python benchmarks/train_speed.py --ratings 1000000 --steps 20

It generates (once, cached under benchmarks/data/) a synthetic MovieLens-10M-sized
dataset, encodes it (time and peak RSS of that step), then measures training samples/s
of FM and DeepFM (embed 16, MLP 128-64-32) at several batch sizes on the fast path
(resident arrays, batched gathers, sparse embedding updates on the CPU) and on a
reference path that reproduces the seed's design (a Dataset whose __getitem__ reads
one row from the memmaps, a collate function that builds EmbeddingBag offsets, a
torch DataLoader with 0 and 4 workers, dense Adam), and prints one table.
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
from deepfm_rec.models import build_model
from deepfm_rec.train import Optimizers, TrainConfig, loss_terms, resolve_device, uses_sparse

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
    encode_dataset(fetched, folder / "users.tsv", folder / "encoded", dataset="ml-10m",
                   seed=0, valid_fraction=0.1, test_fraction=0.1)  # fmt: skip


def steps_per_second(batches, model, optimizer, steps: int, warmup: int = 3) -> tuple[float, int]:
    """Samples/s over `steps` training steps (after `warmup`) drawn from `batches`."""
    samples, start = 0, None
    device = next(model.parameters()).device
    for i, batch in enumerate(batches):
        if i == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start, samples = time.perf_counter(), 0
        loss, _ = loss_terms(model, batch, 0.01)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        samples += len(batch)
        if i + 1 == warmup + steps:
            break
    if device.type == "cuda":
        torch.cuda.synchronize()
    return samples / (time.perf_counter() - start), samples


def fast(encoded, name: str, batch_size: int, device, steps: int):
    config = TrainConfig(batch_size=batch_size)
    sparse = uses_sparse(config, device)
    model = build_model(name, encoded.meta, sparse=sparse, **HPARAMS[name]).to(device)
    maker = BatchMaker(encoded, device)
    rows = encoded.rows("train")
    batches = maker.batches(rows, batch_size, torch.Generator().manual_seed(0))
    return steps_per_second(batches, model, Optimizers(model, config, sparse), steps)


def reference(folder: Path, encoded, name: str, batch_size: int, workers: int, steps: int):
    model = build_model(name, encoded.meta, **HPARAMS[name])
    loader = DataLoader(
        PerSampleDataset(folder, encoded.rows("train")), batch_size=batch_size, shuffle=True,
        num_workers=workers, collate_fn=collate, generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    optimizer = Optimizers(model, TrainConfig(optimizer="adam"), sparse=False)
    # the first batches map the memmaps' pages into the process (several times slower);
    # the timed steps are the steady state
    return steps_per_second(iter(loader), model, optimizer, steps, warmup=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ratings", type=int, default=10_000_000)
    parser.add_argument("--folder", type=Path, default=Path(__file__).parent / "data")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batches", type=int, nargs="+", default=[1024, 8192, 65536])
    parser.add_argument("--steps", type=int, default=30, help="timed steps per fast case")
    parser.add_argument("--reference-steps", type=int, default=30)
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

    results = []  # (model, path, batch, samples/s)
    for name in HPARAMS:
        for workers in (0, 4):
            rate, _ = reference(encoded_folder, encoded, name, 1024, workers, args.reference_steps)
            results.append((name, f"per-sample DataLoader, {workers} workers", 1024, rate))
            print(results[-1])
        for batch_size in args.batches:
            steps = max(3, min(args.steps, n_train // batch_size - 4))
            rate, _ = fast(encoded, name, batch_size, device, steps)
            results.append((name, f"fast ({device.type})", batch_size, rate))
            print(results[-1])

    epoch = None
    if args.epoch:
        start = time.perf_counter()
        _, samples = fast(encoded, "fm", 1024, device, steps=n_train // 1024 + 1)
        epoch = time.perf_counter() - start

    print(f"\n{encoded.meta['rows']:,} ratings ({n_train:,} train), device {device}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")  # fmt: skip
    print(f"encode: {encode_s:.1f} s, peak RSS {encode_rss:.2f} GB")
    print(f"{'model':<7} {'path':<34} {'batch':>6} {'samples/s':>12} {'vs ref b1024 w0':>16}")
    for name, path, batch_size, rate in results:
        base = next(r for m, p, b, r in results if m == name and p.endswith(", 0 workers"))
        print(f"{name:<7} {path:<34} {batch_size:>6} {rate:>12,.0f} {rate / base:>15.1f}x")
    if epoch is not None:
        print(f"one FM epoch at batch 1024 ({n_train:,} rows): {epoch:.1f} s")


if __name__ == "__main__":
    main()
