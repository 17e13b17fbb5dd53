"""Encoding real tables for the tests, with placeholder provenance."""

from __future__ import annotations

from pathlib import Path

from deepfm_rec.data.encoding import encode, open_encoded


def encode_for_tests(tables, users, out: Path, seed: int):
    """Encode with a 10%/10% split and placeholder provenance, and open the result."""
    provenance = {"dataset": "ml-latest-small", "checksum": "x", "source": "test",
                  "checksum_kind": "test"}  # fmt: skip
    encode(tables, users, out, seed=seed, valid_fraction=0.1, test_fraction=0.1,
           provenance=provenance)  # fmt: skip
    return open_encoded(out)
