"""A rule's output goes to its log file; bad input's one line to the terminal too."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import os, sys
from loguru import logger
from deepfm_rec.data.errors import DataError
from deepfm_rec.logs import route_to
route_to(sys.argv[1])
logger.info("from loguru")
print("from python", file=sys.stderr)
os.write(2, b"from native code\\n")  # as torch's C++ writes (its profiler's start and stop)
raise DataError(sys.argv[2])
"""


def test_every_stderr_goes_to_the_log_and_a_data_error_to_the_terminal_too(tmp_path):
    log = tmp_path / "job.log"
    message = "ratings.csv line 3: rating 'x' is not a number"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(log), message], capture_output=True, text=True
    )
    assert done.returncode == 1
    assert done.stderr == f"DataError: {message}\n"  # the terminal: the one line, no more
    text = log.read_text()
    for line in ("from loguru", "from python", "from native code", f"DataError: {message}"):
        assert line in text, line


def test_another_error_leaves_its_traceback_in_the_log(tmp_path):
    log = tmp_path / "job.log"
    script = SCRIPT.replace("raise DataError(sys.argv[2])", "raise KeyError(sys.argv[2])")
    done = subprocess.run(
        [sys.executable, "-c", script, str(log), "genres"], capture_output=True, text=True
    )
    assert done.returncode == 1 and done.stderr == ""
    text = log.read_text()
    assert "Traceback" in text and "KeyError: 'genres'" in text
