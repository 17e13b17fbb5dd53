"""Encoding real tables for the tests, with placeholder provenance."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepfm_rec.data.encoding import SPLITS, Encoded, encode, open_encoded


def encode_for_tests(tables, users, out: Path, seed: int):
    """Encode with a 10%/10% split and placeholder provenance, and open the result."""
    provenance = {
        "dataset": "ml-latest-small",
        "checksum": "x",
        "source": "test",
        "checksum_kind": "test",
    }
    encode(
        tables, users, out, seed=seed, valid_fraction=0.1, test_fraction=0.1, provenance=provenance
    )
    return open_encoded(out)


def rows_encoded(rows, n_users: int, n_items: int) -> Encoded:
    """An in-memory encoded folder of hand-written (user code, item code, stars, split)
    rows, with the user and item fields only (codes 1..n, 0 unknown)."""
    user, item, label, split = zip(*rows, strict=True)
    arrays = {
        "user": np.array(user, np.int32),
        "item": np.array(item, np.int32),
        "label": np.array(label, np.float32),
        "split": np.array([SPLITS[s] for s in split], np.uint8),
    }
    meta = {
        "fields": [
            {"name": "user", "kind": "categorical", "vocab_size": n_users + 1},
            {"name": "item", "kind": "categorical", "vocab_size": n_items + 1},
        ],
        "rows": len(user),
    }
    return Encoded(Path("hand"), meta, arrays)
