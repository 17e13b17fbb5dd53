"""A real single-node SLURM for the session (tests/harness/slurm.sh), stopped by PID.

Missing prerequisites skip the cluster tests with the reason; with
DEEPFM_REQUIRE_CLUSTER=1 (set by .ci/slurm.sh) they fail instead, so CI cannot pass
by skipping them.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from workflow_helpers import require_or_skip

HARNESS = Path(__file__).resolve().parents[1] / "harness"
DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "srun")


def pytest_configure(config):
    config.addinivalue_line("markers", "cluster: runs the workflow on a real local SLURM")


def require(condition: object, reason: str) -> None:
    require_or_skip(condition, reason, "DEEPFM_REQUIRE_CLUSTER")


@dataclass
class Cluster:
    base: Path
    env: dict[str, str]  # what a client (snakemake, squeue) needs: SLURM_CONF, srun wrapper

    def jobs(self) -> list[dict[str, str]]:
        """Every job slurmctld still holds (MinJobAge), as `scontrol show job -d -o` fields
        (-d adds JOB_GRES, the GRES the job was given)."""
        out = subprocess.run(
            ["scontrol", "show", "job", "-d", "-o"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        jobs = []
        for line in out.splitlines():
            fields = {}
            for item in line.split():  # key=value; Command= etc. hold no spaces here
                key, _, value = item.partition("=")
                fields[key] = value
            jobs.append(fields)
        return jobs

    def log(self, name: str) -> str:
        path = self.base / "log" / name
        return path.read_text(errors="replace") if path.exists() else ""


@pytest.fixture(scope="session")
def slurm() -> Cluster:
    missing = [tool for tool in DAEMONS if not shutil.which(tool)]
    require(
        not missing,
        f"SLURM is not installed (no {', '.join(missing)}): "
        "apt-get install slurmctld slurmd slurm-client munge",
    )
    require(os.geteuid() == 0, "starting slurmctld and slurmd needs root")
    require(
        importlib.util.find_spec("snakemake_executor_plugin_slurm"),
        "pip install snakemake-executor-plugin-slurm==2.8.0",
    )
    # munged wants every folder above its socket a+x, which pytest's tmp folders are not
    base = Path(tempfile.mkdtemp(prefix="deepfm-slurm-"))
    base.chmod(0o755)
    env = {**os.environ, "BASE": str(base)}
    script = str(HARNESS / "slurm.sh")
    try:
        start = subprocess.run(
            ["bash", script, "start"], env=env, capture_output=True, text=True, timeout=180
        )
        if start.returncode != 0:
            pytest.fail(f"could not start SLURM:\n{start.stdout}{start.stderr}")
        env["SLURM_CONF"] = str(base / "etc" / "slurm.conf")
        env["PATH"] = f"{base / 'bin'}:{env['PATH']}"  # the srun wrapper
        yield Cluster(base, env)
    finally:
        subprocess.run(["bash", script, "stop"], env=env, timeout=120, check=False)
        shutil.rmtree(base, ignore_errors=True)
