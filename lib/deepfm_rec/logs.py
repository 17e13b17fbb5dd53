"""Route a rule's output (loguru, tqdm, warnings, errors) into its log file."""

from __future__ import annotations

import sys
import traceback

from loguru import logger

from deepfm_rec.data.errors import DataError


def route_to(path: str) -> None:
    """Send stderr and loguru to `path`; a DataError is logged as its one-line message."""
    sys.stderr = open(path, "w", buffering=1, encoding="utf-8")  # noqa: SIM115 (lives until exit)
    logger.remove()
    logger.add(sys.stderr, level="INFO", enqueue=False)

    def hook(kind, error, tb) -> None:
        if isinstance(error, DataError):
            sys.stderr.write(f"DataError: {error}\n")
        else:
            traceback.print_exception(kind, error, tb, file=sys.stderr)

    sys.excepthook = hook
