"""The study and a search through workflow/profiles/slurm on a real (single-node,
loopback) SLURM, in one snakemake run.

Every rule must run as its own SLURM job, GPUs only for train_fm, train_deepfm, profile
and tune_worker, and the metrics must equal a local run's (same config and seed, CPU).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from workflow_helpers import HUNG, ROOT, SNAKEMAKE, TINY_100K, copy_project, scheduled_jobs

pytestmark = pytest.mark.cluster

# The session's tiny study (the ml-100k layout's fixture, one seed, on the CPU: two runs
# are bit-identical), and a search of FM stars by two workers, which the study's outputs
# do not read. What runs on SLURM is every job, not the data's size.
SMALL = {**TINY_100K, "tune": {"sections": ["fm.stars"], "trials": 4, "workers": 2}}
SEED = TINY_100K["seeds"][0]
GPU_RULES = {"train_fm", "train_deepfm", "profile", "tune_worker"}
PROFILE = ROOT / "workflow" / "profiles" / "slurm" / "config.yaml"


def small_project(path: Path) -> Path:
    project = copy_project(path)
    (project / "config" / "small.yaml").write_text(yaml.safe_dump(SMALL))
    return project


def test_profile(dest: Path) -> Path:
    """The real profile with test-only overrides: this cluster's partitions, no account
    (no accounting here), squeue for status (no sacct without slurmdbd), fast polling,
    kept job logs, and no Apptainer (tests/container covers it; here jobs use the venv)."""
    profile = yaml.safe_load(PROFILE.read_text())
    resources = profile["default-resources"]
    assert resources.pop("slurm_account") == "<account>"
    assert resources["slurm_partition"] == "<cpu-partition>"
    resources["slurm_partition"] = "cpu"
    for rule in GPU_RULES:
        assert profile["set-resources"][rule]["slurm_partition"] == "<gpu-partition>"
        profile["set-resources"][rule]["slurm_partition"] = "gpu"
    # this node has 2 CPUs: the rules given more threads get 2, enough to see them asked
    profile["set-threads"] = {rule: 2 for rule in profile["set-threads"]}
    for key in ("software-deployment-method", "apptainer-args", "apptainer-prefix"):
        profile.pop(key)
    profile.update(
        {
            "slurm-status-command": "squeue",
            "slurm-init-seconds-before-status-checks": 2,
            "seconds-between-status-checks": 2,
            "slurm-keep-successful-logs": True,
            "latency-wait": 5,
        }
    )
    dest.mkdir(parents=True)
    (dest / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return dest


test_profile.__test__ = False  # a helper, not a test


@pytest.fixture(scope="module")
def local_run(tiny_study) -> Path:
    """The session's tiny study, run locally: SMALL's settings but the search."""
    return tiny_study


def on_slurm(slurm, project: Path, *args: str) -> tuple[str, list[dict[str, str]]]:
    """snakemake `args` in `project` through the test profile: (its output, this run's
    SLURM jobs); a failed run fails the test with the SLURM logs."""
    profile = test_profile(project / ".test-profile")
    command = ["timeout", "-k", "10", str(HUNG), SNAKEMAKE, "--workflow-profile", str(profile)]
    result = subprocess.run(
        [*command, *args],
        cwd=project,
        env=slurm.env,
        capture_output=True,
        text=True,
        timeout=HUNG + 30,
    )
    output = result.stdout + result.stderr
    if result.returncode != 0:
        logs = "\n".join(p.read_text() for p in (project / ".snakemake/slurm_logs").rglob("*.log"))
        pytest.fail(
            f"snakemake on SLURM exited {result.returncode}:\n{output[-6000:]}\n"
            f"slurm logs:\n{logs[-4000:]}\nslurmctld:\n{slurm.log('slurmctld.log')[-2000:]}"
        )
    run_id = re.search(r"SLURM run ID: (\S+)", output).group(1)
    return output, [job for job in slurm.jobs() if job.get("JobName") == run_id]


@pytest.fixture(scope="module")
def cluster_run(slurm, tmp_path_factory):
    """(project, snakemake's output, this run's SLURM jobs): the study and the search."""
    project = small_project(tmp_path_factory.mktemp("cluster"))
    output, jobs = on_slurm(slurm, project, "all", "tune", "--configfile", "config/small.yaml")
    return project, output, jobs


def rule_of(job: dict[str, str]) -> str:
    """The plugin's --comment is rule_<rule>_wildcards_<...>."""
    return re.match(r"rule_(\w+?)(_wildcards_|$)", job["Comment"]).group(1)


def test_every_rule_ran_as_a_completed_slurm_job(cluster_run):
    project, output, jobs = cluster_run
    planned = scheduled_jobs(output)
    del planned["all"], planned["tune"]  # the target rules run nothing
    ran: dict[str, int] = {}
    for job in jobs:
        ran[rule_of(job)] = ran.get(rule_of(job), 0) + 1
        assert job["JobState"] == "COMPLETED" and job["ExitCode"] == "0:0", job
        # the plugin's per-job log, named by the SLURM job id
        logs = project / ".snakemake" / "slurm_logs" / f"rule_{rule_of(job)}"
        assert list(logs.glob(f"**/{job['JobId']}.log")), job
    assert ran == planned
    assert GPU_RULES < set(planned)


def test_only_training_and_profiling_get_a_gpu(cluster_run):
    _, _, jobs = cluster_run
    profile = yaml.safe_load(PROFILE.read_text())
    for job in jobs:
        rule = rule_of(job)
        settings = {**profile["default-resources"], **profile["set-resources"].get(rule, {})}
        if rule in GPU_RULES:
            assert (job["Partition"], job["JOB_GRES"]) == ("gpu", "gpu:1"), (rule, job)
        else:
            assert (job["Partition"], job["JOB_GRES"]) == ("cpu", "(null)"), (rule, job)
        days, _, clock = job["TimeLimit"].rpartition("-")  # [D-]HH:MM:SS
        hours, minutes, _ = map(int, clock.split(":"))
        minutes += (int(days or 0) * 24 + hours) * 60
        assert minutes == settings["runtime"], (rule, job["TimeLimit"])
        assert job["MinMemoryNode"] == f"{settings['mem_mb']}M", (rule, job["MinMemoryNode"])
        threads = 2 if rule in profile["set-threads"] else 1  # test_profile's, config's
        assert job["NumCPUs"] == str(threads), (rule, job["NumCPUs"])


def test_the_cluster_report_matches_a_local_run(cluster_run, local_run):
    project, _, _ = cluster_run
    scores = {}
    for path in sorted((local_run / "results").rglob(f"seed{SEED}/metrics.json")):
        name = path.relative_to(local_run)
        scores[name] = json.loads((project / name).read_text())
        assert scores[name] == json.loads(path.read_text()), name
    assert len(scores) == 4  # fm and deepfm, both objectives, one seed
    here = pd.read_csv(project / "results" / "metrics.tsv", sep="\t")
    there = pd.read_csv(local_run / "results" / "metrics.tsv", sep="\t")
    pd.testing.assert_frame_equal(here, there, check_exact=True)
    page = (project / "results" / "report.html").read_text()
    for record in scores.values():
        if record["objective"] == "stars":
            assert f"{record['rmse']:.4f}" in page and f"{record['mae']:.4f}" in page


def test_a_search_runs_each_worker_as_a_gpu_job_sharing_one_study(cluster_run):
    """tune_study, two tune_worker GPU jobs and tune_summary, the trials of one study
    spread over the two workers' SLURM jobs."""
    project, _, jobs = cluster_run
    workers = {job["JobId"] for job in jobs if rule_of(job) == "tune_worker"}
    assert len(workers) == 2 and {"tune_study", "tune_summary"} <= {rule_of(j) for j in jobs}
    table = pd.read_csv(
        project / "results/ml-100k/tune/fm/stars/trials.tsv", sep="\t", dtype={"job": str}
    )
    assert sorted(table["trial"]) == [0, 1, 2, 3] and (table["state"] == "COMPLETE").all()
    assert set(table["job"]) <= workers  # every trial ran inside a worker's SLURM job
