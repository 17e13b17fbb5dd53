"""The project image, built for real from the Dockerfile with podman (once a session).

tests/harness/build-image.sh makes the Debian base with debootstrap (no registry is
reachable on CI) and builds with the local CPU torch wheel. Missing prerequisites skip
the container tests with the reason; with DEEPFM_REQUIRE_CONTAINER=1 (set by
.ci/container.sh) they fail instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from container_helpers import snakefile_image

from workflow_helpers import HUNG, require_or_skip

ROOT = Path(__file__).resolve().parents[2]
HARNESS = ROOT / "tests" / "harness"
BUILD_TIMEOUT = 1200  # seconds; a fresh machine: debootstrap, apt, pip, two commits


def pytest_configure(config):
    config.addinivalue_line("markers", "container: builds and runs the project image (podman)")


def require(condition: object, reason: str) -> None:
    require_or_skip(condition, reason, "DEEPFM_REQUIRE_CONTAINER")


@dataclass
class Image:
    ref: str  # the name the build gave it
    env: dict[str, str]  # podman confined to the harness's storage (podman-env.sh)

    def podman(self, *args: str, timeout: int = HUNG, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["podman", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            **kwargs,
        )


@pytest.fixture(scope="session")
def image() -> Image:
    missing = [tool for tool in ("podman", "runc", "debootstrap") if not shutil.which(tool)]
    require(not missing, f"no {', '.join(missing)}: apt-get install podman runc debootstrap")
    require(os.geteuid() == 0, "the podman build (rootful, chroot isolation) needs root")
    ref = os.environ.get("DEEPFM_IMAGE", "localhost/deepfm-rec:ci")
    env = {**os.environ, "IMAGE": ref}
    build = subprocess.run(
        ["bash", str(HARNESS / "build-image.sh"), snakefile_image()],
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
    )
    if build.returncode != 0:
        pytest.fail(f"the image build failed:\n{build.stdout}{build.stderr}")
    print(build.stderr)  # the build's timings, shown with -s
    root = Path(os.environ.get("PODMAN_ROOT", "/var/tmp/deepfm-rec/podman"))
    env["CONTAINERS_STORAGE_CONF"] = str(root / "conf" / "storage.conf")
    env["CONTAINERS_CONF"] = str(root / "conf" / "containers.conf")
    return Image(ref, env)
