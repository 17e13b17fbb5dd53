"""Top-K speed at MovieLens-10M scale: users × all movies scored per second.

Run by hand (tests/test_benchmarks.py runs it once on small data and judges no figure),
after benchmarks/train_speed.py has generated and encoded the 10M-rating synthetic
dataset (70,000 users × 10,000 movies):

    .venv/bin/python benchmarks/recommend_speed.py                # 2,000 users, extrapolated
    .venv/bin/python benchmarks/recommend_speed.py --users 0      # every user, timed

Times Recommender.top_k (K 10, movies rated in train excluded) for four models, untrained
(which costs the same as trained ones):

- stars: FM and DeepFM as train_speed.py's seed cases (embed 16, MLP 128-64-32, the
  seed's fields and mean pooling: SEED);
- ranking: FM and DeepFM as config/config.yaml's fm.ranking and deepfm.ranking sections
  build them (their fields, embed dim, MLP, pooling).

`--users N` times a seeded sample of N users and extrapolates linearly to every user
(the work per user is the same: one row per candidate movie); `--users 0` times every
user, and the last column is then measured. The table is printed last.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
from train_speed import (  # this folder is on sys.path
    CONFIG,
    MODELS,
    ROOT,
    config_sections,
    seed_case,
)

from deepfm_rec.config import SCHEMA, load_config
from deepfm_rec.data.encoding import open_encoded
from deepfm_rec.inference import resolve_device
from deepfm_rec.models import attach_bags, build_model
from deepfm_rec.recommend import Recommender


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default = Path(__file__).parent / "data" / "synthetic-10000000" / "encoded"
    parser.add_argument("--encoded", type=Path, default=default)
    parser.add_argument("--config", type=Path, default=CONFIG, help="its ranking sections")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--users", type=int, default=2000, help="users timed; 0: every user")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--pairs-per-batch", type=int, help="default: the Recommender's")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch's")
    args = parser.parse_args()
    if not (args.encoded / "meta.json").exists():
        raise SystemExit(f"{args.encoded}: no encoded data; run benchmarks/train_speed.py first")
    if args.users < 0:
        raise SystemExit(f"--users {args.users}: give a number of users, or 0 for every user")
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    encoded = open_encoded(args.encoded)
    study = load_config(args.config, ROOT / SCHEMA)
    models = [(name, "stars", *seed_case(study, name)) for name in MODELS] + [
        (name, "ranking", *case)
        for (name, objective), case in config_sections(study).items()
        if objective == "ranking"
    ]
    rows = []
    for name, label, config, hparams in models:
        torch.manual_seed(0)
        model = build_model(name, encoded.meta, objective=config.objective, sparse=False, **hparams)
        attach_bags(model, encoded)
        recommender = Recommender(model, encoded, device, args.pairs_per_batch)
        n_users = recommender.n_users - 1
        users = np.random.default_rng(0).permutation(np.arange(1, n_users + 1))
        if args.users:
            users = users[: min(args.users, n_users)]
        recommender.top_k(users[:10], args.k)  # warm-up, and the rated-movie index
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        recommender.top_k(users, args.k)  # ends with a copy to the CPU: synchronised
        seconds = time.perf_counter() - start
        pairs = len(users) * recommender.n_candidates
        rows.append((name, label, len(users), pairs / seconds, seconds * n_users / len(users)))

    print(
        f"\n{n_users:,} users × {recommender.n_candidates:,} movies, device {device}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    print(f"top-{args.k} lists, movies rated in train excluded; untrained models")
    print("all users (s): measured when every user is timed, else extrapolated from the sample")
    print(
        f"{'model':<7} {'objective':<9} {'users timed':>12} {'pairs/s':>14} {'all users (s)':>14}"
    )
    for name, label, timed, rate, total in rows:
        print(f"{name:<7} {label:<9} {timed:>12,} {rate:>14,.0f} {total:>14,.2f}")


if __name__ == "__main__":
    main()
