"""Time and memory of parsing and encoding a synthetic 10M-rating dataset.

Run by hand (tests/test_benchmarks.py runs it once on 30,000 ratings and judges no figure):

    .venv/bin/python benchmarks/encode_scale.py [--ratings 10000000] [--folder PATH] [--seed 1]

Generates the dataset (in a child process, into a temp folder unless --folder is given),
then parses it with the ml-10m parser, synthesizes users and encodes it (every field of
the encoded format: the seed's, the implicit-feedback bags history and raters with their
left-out pairs, and the time fields), and prints the seconds of each step and the peak
resident memory. Budget: parse + users + encode of 10M ratings within 60 s and 3 GB on
2 cores.

Peak RSS is resource.getrusage's ru_maxrss (KiB on Linux): RUSAGE_CHILDREN for the
generator's process, RUSAGE_SELF for parse + encode. `/usr/bin/time -v python
benchmarks/encode_scale.py` reports the larger of the two as "Maximum resident set size".
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path

from deepfm_rec.config import CONFIG, SCHEMA, load_config
from deepfm_rec.data.encoding import encode
from deepfm_rec.data.layouts import read_tables
from deepfm_rec.data.synthetic import generate
from deepfm_rec.data.users import build_users

BUDGET_S, BUDGET_GB = 60.0, 3.0
ROOT = Path(__file__).resolve().parents[1]


def peak_gb(who: int) -> float:
    """Peak resident memory in GB (1e9 bytes) of this process or of its children."""
    return resource.getrusage(who).ru_maxrss * 1024 / 1e9


def run(folder: Path, n_ratings: int, seed: int) -> None:
    raw, out = folder / "ml-10M100K", folder / "encoded"
    start = time.perf_counter()
    child = multiprocessing.Process(
        target=generate,
        args=(raw,),
        kwargs={
            **load_config(ROOT / CONFIG, ROOT / SCHEMA)["synthetic"],
            "n_ratings": n_ratings,
            "seed": seed,
        },
    )
    child.start()
    child.join()
    if child.exitcode != 0:
        raise SystemExit(f"generate failed with exit code {child.exitcode}")
    seconds = {"generate": time.perf_counter() - start}

    start = time.perf_counter()
    tables = read_tables(raw, "ml-10m")
    seconds["parse"] = time.perf_counter() - start

    start = time.perf_counter()
    users = build_users(tables.ratings["user"].unique(), tables.users, "synthetic", seed)
    seconds["users"] = time.perf_counter() - start

    start = time.perf_counter()
    provenance = {"dataset": "synthetic", "source": str(raw), "checksum": "-", "checksum_kind": "-"}
    encode(
        tables, users, out, seed=seed, valid_fraction=0.1, test_fraction=0.1, provenance=provenance
    )
    seconds["encode"] = time.perf_counter() - start

    total = seconds["parse"] + seconds["users"] + seconds["encode"]
    print(f"{n_ratings:,} ratings, {len(users):,} users")
    print(f"{'step':<22}{'seconds':>9}{'peak RSS GB':>13}")
    print(f"{'generate':<22}{seconds['generate']:>9.1f}{peak_gb(resource.RUSAGE_CHILDREN):>13.2f}")
    for step in ("parse", "users", "encode"):
        print(f"{step:<22}{seconds[step]:>9.1f}")
    print(f"{'parse + users + encode':<22}{total:>9.1f}{peak_gb(resource.RUSAGE_SELF):>13.2f}")
    ok = total <= BUDGET_S and peak_gb(resource.RUSAGE_SELF) <= BUDGET_GB
    print(f"budget {BUDGET_S:.0f} s, {BUDGET_GB:.0f} GB: {'within' if ok else 'EXCEEDED'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratings", type=int, default=10_000_000)
    parser.add_argument("--folder", type=Path, help="keep the data here (default: a temp dir)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.folder:
        run(args.folder, args.ratings, args.seed)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            run(Path(tmp), args.ratings, args.seed)


if __name__ == "__main__":
    main()
