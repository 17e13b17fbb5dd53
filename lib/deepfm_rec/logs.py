"""Route a rule's output (loguru, tqdm, warnings, errors) into its log file."""

from __future__ import annotations

import os
import sys
import traceback

from loguru import logger

from deepfm_rec.data.errors import DISK_FULL, DataError


def route_to(path: str) -> None:
    """Send stderr, Python's and the native libraries' (file descriptor 2: torch's
    profiler prints its start and stop there), and loguru to `path`.

    A DataError (bad input) is written as its one-line message, to the log and to the
    terminal Snakemake runs in, without a traceback: the message names what is wrong. So
    is a full disk, with the file being written where it is known.
    """
    terminal = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8")
    sys.stderr = open(path, "w", buffering=1, encoding="utf-8")  # noqa: SIM115 (lives until exit)
    os.dup2(sys.stderr.fileno(), 2)
    logger.remove()
    logger.add(sys.stderr, level="INFO", enqueue=False)

    def hook(kind, error, tb) -> None:
        if isinstance(error, DataError):
            line = f"DataError: {error}"
        elif isinstance(error, OSError) and error.errno in DISK_FULL:
            where = f" writing {error.filename}" if error.filename else ""
            line = f"OSError: the disk is full ({error.strerror}){where}; free space or quota"
        else:
            traceback.print_exception(kind, error, tb, file=sys.stderr)
            return
        for stream in (sys.stderr, terminal):
            stream.write(line + "\n")

    sys.excepthook = hook
