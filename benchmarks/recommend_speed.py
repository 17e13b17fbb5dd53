"""Top-K speed at MovieLens-10M scale: users × all movies scored per second.

Run by hand (tests/test_benchmarks.py runs it once on small data and judges no figure),
after benchmarks/train_speed.py has generated and encoded the 10M-rating synthetic
dataset (70,000 users × 10,000 movies):

    .venv/bin/python benchmarks/recommend_speed.py
    .venv/bin/python benchmarks/recommend_speed.py --users 70000     # every user

Times Recommender.top_k (K 10, movies rated in train excluded) for FM and DeepFM (embed
16, MLP 128-64-32) on a sample of users, and extrapolates linearly to every user: the
work per user is the same (one row per candidate movie). The models are untrained, which
costs the same as trained ones.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
from train_speed import HPARAMS  # the models; this folder is on sys.path

from deepfm_rec.data.encoding import open_encoded
from deepfm_rec.inference import resolve_device
from deepfm_rec.models import build_model
from deepfm_rec.recommend import Recommender


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default = Path(__file__).parent / "data" / "synthetic-10000000" / "encoded"
    parser.add_argument("--encoded", type=Path, default=default)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--users", type=int, default=2000, help="users timed")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--pairs-per-batch", type=int, help="default: the Recommender's")
    args = parser.parse_args()
    if not (args.encoded / "meta.json").exists():
        raise SystemExit(f"{args.encoded}: no encoded data; run benchmarks/train_speed.py first")
    torch.set_num_threads(os.cpu_count() or 1)
    device = resolve_device(args.device)
    encoded = open_encoded(args.encoded)
    torch.manual_seed(0)
    rows = []
    for name, hparams in HPARAMS.items():
        model = build_model(name, encoded.meta, **hparams)
        recommender = Recommender(model, encoded, device, args.pairs_per_batch)
        n_users = recommender.n_users - 1
        users = np.random.default_rng(0).permutation(np.arange(1, n_users + 1))
        users = users[: min(args.users, n_users)]
        recommender.top_k(users[:10], args.k)  # warm-up, and the rated-movie index
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        recommender.top_k(users, args.k)  # ends with a copy to the CPU: synchronised
        seconds = time.perf_counter() - start
        pairs = len(users) * recommender.n_candidates
        rows.append((name, len(users), pairs / seconds, seconds * n_users / len(users)))

    print(f"\n{n_users:,} users × {recommender.n_candidates:,} movies, device {device}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")  # fmt: skip
    print(f"{'model':<7} {'users timed':>12} {'pairs/s':>14} {'all users (s)':>14}")
    for name, timed, rate, total in rows:
        print(f"{name:<7} {timed:>12,} {rate:>14,.0f} {total:>14,.0f}")


if __name__ == "__main__":
    main()
