"""The search's shared record: an Optuna study in a journal file that the workers of a
distributed search share (deepfm_rec.tuning), its trials table, the best settings and
the search's summary. No torch: the tune_study and tune_summary jobs import this alone
(torch is 1.8 s of CPU a job).

The study lives in Optuna's JournalStorage (a journal file locked by O_EXCL files,
NFSv3 and later; no database server); its definition (section, model, settings, space,
seeds, seed) is the study.yaml beside it.
"""

from __future__ import annotations

from pathlib import Path

import optuna
import pandas as pd
import yaml
from loguru import logger
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock, JournalStorage

from deepfm_rec.config import first_l2
from deepfm_rec.data.errors import DataError
from deepfm_rec.data.staging import replaced
from deepfm_rec.plots import plot_search
from deepfm_rec.search_space import in_space, metric_name, ranked


def direction(objective: str) -> str:
    return "minimize" if objective == "stars" else "maximize"


def enqueue_own(study: optuna.Study, settings: dict, space: dict) -> None:
    """Queue the section's own settings as the first trial, where they lie in `space`: a
    list of l2 values (the study's choice) gives its first."""
    own = first_l2(settings)
    if not all(in_space(own.get(name), spec) for name, spec in space.items()):
        logger.info("the section's own settings are outside the space: trial 0 is a draw too")
        return
    study.enqueue_trial(
        {  # choices by their position, as suggest draws them
            name: spec["choice"].index(own[name]) if "choice" in spec else own[name]
            for name, spec in space.items()
        }
    )


def trials_table(study: optuna.Study, seeds: list[int], objective: str) -> pd.DataFrame:
    """One row per trial in trial order: its state, worker and host, drawn settings, valid
    score per seed and their mean, kept epochs ("/"-joined, one per seed) and seconds."""
    metric = metric_name(objective)
    rows = []
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        row = {"trial": trial.number, "state": trial.state.name}
        row |= {key: attrs[key] for key in ("worker", "host", "job") if key in attrs}
        row |= attrs.get("settings", {})
        for seed, score in zip(seeds, attrs.get("scores", []), strict=False):
            row[f"{metric}_seed{seed}"] = score
        row[metric] = trial.value
        row["kept_epochs"] = "/".join(map(str, attrs.get("kept_epochs", [])))
        row["seconds"] = attrs.get("seconds")
        rows.append(row)
    return pd.DataFrame(rows)


def storage(journal: str | Path) -> JournalStorage:
    """The journal file as Optuna storage, locked by O_EXCL files (NFSv3 and later)."""
    journal = str(journal)
    return JournalStorage(JournalFileBackend(journal, lock_obj=JournalFileOpenLock(journal)))


def create_study(journal: str | Path, definition: dict) -> None:
    """A new study in a new journal file, from `definition` (section, model, settings,
    space, seeds, seed): the section's own settings queued as trial 0."""
    Path(journal).unlink(missing_ok=True)
    study = optuna.create_study(
        study_name=definition["section"],
        storage=storage(journal),
        direction=direction(definition["settings"]["objective"]),
    )
    enqueue_own(study, definition["settings"], definition["space"])


def load_study(journal: str | Path, definition: dict, sampler_seed: int) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=sampler_seed, constant_liar=True)
    return optuna.load_study(
        study_name=definition["section"], storage=storage(journal), sampler=sampler
    )


def best_snippet(table: pd.DataFrame, definition: dict, budget: int) -> str:
    """The best complete trial's drawn settings as YAML for config.yaml (or for
    `snakemake --configfile config/config.yaml best.yaml`, which merges it in)."""
    objective = definition["settings"]["objective"]
    metric = metric_name(objective)
    best = ranked(table, objective).iloc[0]
    model, section = definition["section"].split(".")
    drawn = {name: _plain(best[name]) for name in definition["space"]}
    header = (
        f"# The best of {budget} trials of {definition['section']}: trial {best['trial']}, "
        f"{metric} {best[metric]:.6g}\n# (the mean over seeds {definition['seeds']}, valid "
        "split only). Set these keys of the section\n# in config/config.yaml, or run "
        "snakemake --configfile config/config.yaml <this file>.\n"
    )
    return header + yaml.safe_dump({model: {section: drawn}}, sort_keys=False)


def _plain(value):
    """A pandas cell as a YAML-safe Python value (numpy scalars to int/float)."""
    return value.item() if hasattr(value, "item") else value


# What the workflow's tune rules call (workflow/rules/tune.smk), file to file.


def write_study(study_out: str | Path, journal: str | Path, definition: dict) -> None:
    """A new study (create_study) in `journal`, its definition written to `study_out`."""
    create_study(journal, definition)
    with replaced(study_out) as scratch:
        Path(scratch).write_text(yaml.safe_dump(definition, sort_keys=False))


def journal_of(study_file: str | Path) -> Path:
    return Path(study_file).with_name("journal.log")


def write_summary(
    study_file: str | Path,
    *,
    trials: int,
    table_out: str | Path,
    best_out: str | Path,
    plot_out: str | Path,
) -> None:
    """The search's trials table (TSV, in trial order), its best settings (best_snippet)
    and their plot (plots.plot_search)."""
    definition = yaml.safe_load(Path(study_file).read_text())
    objective = definition["settings"]["objective"]
    study = load_study(journal_of(study_file), definition, definition["seed"])
    table = trials_table(study, definition["seeds"], objective)
    complete = int((table["state"] == "COMPLETE").sum())
    if complete < trials or (table["state"] == "RUNNING").any():
        raise DataError(
            f"{journal_of(study_file)}: {complete} of {trials} trials complete and "
            f"{int((table['state'] == 'RUNNING').sum())} running; a worker did not finish"
        )
    with replaced(table_out) as scratch:
        table.to_csv(scratch, sep="\t", index=False)  # full precision: the record
    with replaced(best_out) as scratch:
        Path(scratch).write_text(best_snippet(table, definition, trials))
    with replaced(plot_out) as scratch:
        plot_search(
            table, definition["space"], metric_name(objective), objective == "stars", scratch
        )
