"""Hyperparameter search on the validation split: Optuna's TPE over a config section.

A trial trains the section with some settings drawn from its ranges (search_space), once
per training seed, and scores it on the valid split only: the mean over the seeds of the
valid RMSE (stars) at the kept epoch, or of the valid NDCG@k (ranking). The test split is
never read. Trial 0 is the section's own settings where they lie in the ranges.

Two ways to run one:
- `search`: every trial in this process (`deepfm-rec tune`), a study in memory.
- `trials.create_study` then `work` in N processes (the workflow's tune rules, one
  SLURM job each on a cluster): the workers share one study in a journal file (Optuna's
  JournalStorage, deepfm_rec.trials; no database server) and each asks the shared
  sampler for its next trial. A worker claims a trial under a lock only while fewer
  than `trials` are complete or running, so the study ends with exactly that many
  complete. A running trial keeps a heartbeat file fresh; a worker that stops (kill -9,
  a node lost) leaves its trial to go stale, and the next worker to look marks it
  failed and runs another in its place. A worker with nothing to claim waits for the
  others' running trials, so none is left running.

With one worker (or `search`) and a seed the trials are deterministic on the CPU. With
several, which trial draws what depends on when each worker asks: the trials table is
the record.

Shapes: none; units: stars for RMSE, seconds for times.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pandas as pd
import torch
import yaml
from loguru import logger
from optuna.storages.journal import JournalFileOpenLock
from optuna.trial import TrialState

from deepfm_rec.data.encoding import Encoded, open_encoded
from deepfm_rec.data.staging import replaced
from deepfm_rec.search_space import kind_of, metric_name, ranked
from deepfm_rec.train import split_settings, train, valid_score
from deepfm_rec.trials import direction, enqueue_own, journal_of, load_study, trials_table

POLL = 2.0  # seconds between a waiting worker's looks at the study


def suggest(trial: optuna.Trial, space: dict) -> dict:
    """One draw of the settings of `space` (search_space's ranges)."""
    drawn = {}
    for name, spec in space.items():
        kind, args = kind_of(spec)
        if kind == "choice":  # Optuna's choices are scalars: lists are drawn by position
            drawn[name] = args[trial.suggest_categorical(name, list(range(len(args))))]
        elif kind == "int":
            drawn[name] = trial.suggest_int(name, *args)
        else:
            drawn[name] = trial.suggest_float(name, *args, log=kind == "log")
    return drawn


def run_trial(
    trial: optuna.Trial,
    encoded: Encoded,
    model: str,
    settings: dict,
    space: dict,
    seeds: list[int],
    device: str,
    memory_budget: float,
) -> float:
    """Train the section with `trial`'s draw once per seed; the mean valid score. The
    trial's user attributes keep the draw, each seed's score and kept epoch, and its
    wall time."""
    objective = settings["objective"]
    drawn = suggest(trial, space)
    config, hparams = split_settings({**settings, **drawn})
    start = time.perf_counter()
    scores, kept = [], []
    for seed in seeds:
        _, history, epoch = train(
            encoded, model, hparams, config, seed=seed, device=device, memory_budget=memory_budget
        )
        scores.append(valid_score(history, epoch, objective))
        kept.append(epoch)
    score = sum(scores) / len(scores)
    for name, value in {
        "settings": drawn,
        "scores": scores,
        "kept_epochs": kept,
        "seconds": round(time.perf_counter() - start, 1),
    }.items():
        trial.set_user_attr(name, value)
    logger.info("trial {}: {} {:.4f} with {}", trial.number, metric_name(objective), score, drawn)
    return score


def search(
    encoded: str | Path,
    model: str,
    settings: dict,
    space: dict,
    *,
    trials: int,
    seed: int,
    seeds: list[int] | None = None,
    device: str = "cpu",
    threads: int | None = None,
    memory_budget: float,
    out: str | Path | None = None,
) -> pd.DataFrame:
    """Run `trials` trials of `model` from the config section `settings` (which holds
    the objective, and k and threshold for ranking) in this process, each drawn from
    `space` by TPE seeded with `seed` and trained once per seed of `seeds` (default:
    `seed`).

    Returns the complete trials, best first (trials_table's columns). With `out`, that
    table is written there (TSV) as each trial ends, so that an interrupted search keeps
    the trials it ran.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    objective = settings["objective"]
    seeds = [seed] if seeds is None else seeds
    enc = open_encoded(Path(encoded))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction=direction(objective), sampler=optuna.samplers.TPESampler(seed=seed)
    )
    enqueue_own(study, settings, space)

    def run(trial: optuna.Trial) -> float:
        return run_trial(trial, enc, model, settings, space, seeds, device, memory_budget)

    def write(study: optuna.Study, _: optuna.trial.FrozenTrial) -> None:
        if out is not None:
            with replaced(out) as scratch:
                table = ranked(trials_table(study, seeds, objective), objective)
                table.drop(columns="state").to_csv(
                    scratch, sep="\t", index=False, float_format="%.6g"
                )

    study.optimize(run, n_trials=trials, callbacks=[write])
    return ranked(trials_table(study, seeds, objective), objective).drop(columns="state")


# The distributed search: workers of a study in a journal file (deepfm_rec.trials).


@contextlib.contextmanager
def holding(lock: JournalFileOpenLock) -> Iterator[None]:
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def heartbeat(path: Path, every: float) -> Iterator[None]:
    """Touch `path` every `every` seconds until the block ends; then remove it."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every):
            path.touch()

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        path.unlink(missing_ok=True)


def reap(study: optuna.Study, alive: Path, stale_after: float) -> int:
    """Mark failed each running trial whose heartbeat file is missing or older than
    `stale_after` seconds (its worker stopped); the number marked."""
    reaped = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        beat = alive / f"trial{trial.number}"
        try:
            age = time.time() - beat.stat().st_mtime
        except FileNotFoundError:
            age = math.inf
        if age > stale_after:
            logger.warning(
                "trial {} (worker {}): no heartbeat for {:.0f} s, marked failed",
                trial.number,
                trial.user_attrs.get("worker"),
                age,
            )
            study._storage.set_trial_user_attr(trial._trial_id, "failed", "heartbeat stopped")
            study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            beat.unlink(missing_ok=True)
            reaped += 1
    return reaped


def work(
    journal: str | Path,
    definition: dict,
    *,
    worker: int,
    trials: int,
    encoded: str | Path,
    stale_after: float,
    device: str,
    threads: int,
    memory_budget: float,
) -> dict:
    """One worker of a shared study: claim and run trials until `trials` are complete,
    then wait for the others' running trials (module docstring). Its TPE sampler is
    seeded with the study's seed plus `worker`. Returns what it did: the trials it ran
    and reaped, and its seconds."""
    start = time.perf_counter()
    torch.set_num_threads(threads)
    journal = Path(journal)
    alive = journal.parent / "alive"
    alive.mkdir(exist_ok=True)
    study = load_study(journal, definition, definition["seed"] + worker)
    claim = JournalFileOpenLock(str(journal.parent / "claim"))
    enc = open_encoded(Path(encoded))
    settings, space = definition["settings"], definition["space"]
    ran, reaped = [], 0
    while True:
        with holding(claim):
            reaped += reap(study, alive, stale_after)
            states = [t.state for t in study.get_trials(deepcopy=False)]
            complete, running = states.count(TrialState.COMPLETE), states.count(TrialState.RUNNING)
            trial = None
            if complete + running < trials:
                trial = study.ask()
                (alive / f"trial{trial.number}").touch()
                trial.set_user_attr("worker", worker)
                trial.set_user_attr("host", f"{socket.gethostname()}:{os.getpid()}")
                trial.set_user_attr("job", os.environ.get("SLURM_JOB_ID", ""))
        if trial is None:
            if running == 0:
                break
            time.sleep(POLL)
            continue
        with heartbeat(alive / f"trial{trial.number}", stale_after / 4):
            try:
                score = run_trial(
                    trial,
                    enc,
                    definition["model"],
                    settings,
                    space,
                    definition["seeds"],
                    device,
                    memory_budget,
                )
            except BaseException:
                with holding(claim):
                    study.tell(trial, state=TrialState.FAIL)
                raise
            # told under the claim, before its heartbeat file goes: a reap (under the
            # claim too) sees the trial running and beating, or finished. Told after the
            # file went, another worker reaped it first and this tell failed.
            with holding(claim):
                study.tell(trial, score)
        ran.append(trial.number)
    return {
        "worker": worker,
        "trials": ran,
        "reaped": reaped,
        "seconds": round(time.perf_counter() - start, 1),
    }


# What the workflow's tune_worker rule calls (workflow/rules/tune.smk), file to file.


def run_worker(study_file: str | Path, out: str | Path, **work_args) -> None:
    """One worker (work) of the study defined in `study_file`; what it did as JSON."""
    definition = yaml.safe_load(Path(study_file).read_text())
    done = work(journal_of(study_file), definition, **work_args)
    with replaced(out) as scratch:
        Path(scratch).write_text(json.dumps(done) + "\n")
