"""A headless Chromium (Debian's package) for the report page, one per session.

A missing Chromium skips the browser tests with the reason; with
DEEPFM_REQUIRE_BROWSER=1 (set by .ci/run) they fail instead, so CI cannot pass by
skipping them.
"""

from __future__ import annotations

import shutil

import pytest

from workflow_helpers import require_or_skip


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: renders the report in headless Chromium")


def require(condition: object, reason: str) -> None:
    require_or_skip(condition, reason, "DEEPFM_REQUIRE_BROWSER")


@pytest.fixture(scope="session")
def chromium() -> str:
    """The chromium executable on PATH (Debian's /usr/bin/chromium)."""
    executable = shutil.which("chromium")
    require(executable, "no chromium on PATH: apt-get install chromium")
    return executable
