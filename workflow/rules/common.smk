import os
from pathlib import Path

from deepfm_rec.config import TITLES, read_schema, study_path, train_settings
from deepfm_rec.search_space import check_tune, section_space

DATASET = config["dataset"]
MODELS = ["fm", "deepfm"]
OBJECTIVES = config["objectives"]
SEEDS = config["seeds"]


wildcard_constraints:
    dataset=r"ml-[a-z0-9-]+|synthetic",
    model="|".join(MODELS),
    objective="stars|ranking",
    seed=r"\d+",


# Snakemake's own message for a missing input spans many lines and names no config key
if config["source"] and not Path(config["source"]).exists():
    raise WorkflowError(f"config key 'source': {config['source']} does not exist")
if config["source"] and not (
    Path(config["source"]).is_file() or Path(config["source"]).is_dir()
):
    raise WorkflowError(
        f"config key 'source': {config['source']} is not a regular file or folder (a "
        "device, a FIFO?); a source is the dataset's .zip or the folder it unpacks to"
    )
if config["recommend"]["objective"] not in OBJECTIVES:
    raise WorkflowError(
        f"config key 'recommend.objective': {config['recommend']['objective']!r} is not "
        f"among the trained objectives {OBJECTIVES}"
    )


REPORT = study_path("report")
# its mtime before this run (False: none), so that onsuccess names it only once written
REPORT_BEFORE = os.path.exists(REPORT) and os.stat(REPORT).st_mtime_ns


def study_targets():
    return [REPORT, study_path("topk", dataset=DATASET, **config["recommend"])]


def report_written():
    """Whether this run wrote the report (a run for resources/ or one model writes none)."""
    return os.path.exists(REPORT) and os.stat(REPORT).st_mtime_ns != REPORT_BEFORE


def trained(name):
    """The study path `name` (with {model}, {objective}, {seed}) of every trained model."""
    return expand(
        study_path(name),
        dataset=DATASET,
        model=MODELS,
        objective=OBJECTIVES,
        seed=SEEDS,
    )


def learning_curves():
    """(PNG, its labels in Snakemake's report) of each trained model's learning curves, in
    the order of trained(): the report job draws them all and shows the first seed's (a
    training job draws nothing: matplotlib is 1 s of CPU)."""
    return [
        (
            study_path("curves", model=model, objective=objective, seed=seed),
            {"model": TITLES[model], "objective": objective, "seed": str(seed)},
        )
        for model in MODELS
        for objective in OBJECTIVES
        for seed in SEEDS
    ]


def ranking_ks():
    return sorted({*config["ranking"]["ks"], config["ranking"]["k"]})


def model_settings(model):
    """The training settings of `model` for a job's objective (deepfm_rec.config)."""
    return lambda wildcards: train_settings(config, model, wildcards.objective)


def chosen_l2(model):
    """A later seed's training of a section that lists l2 values to choose from takes the
    l2 the first seed's training chose on valid (deepfm_rec.train.train_model)."""

    def inputs(wildcards):
        if int(wildcards.seed) == SEEDS[0] or not isinstance(
            config[model][wildcards.objective]["l2"], list
        ):
            return {}
        first = dict(wildcards.items(), model=model, seed=SEEDS[0])
        return {"chosen": study_path("model", **first)}

    return inputs


def dataset_source(wildcards):
    """The configured local source (zip or folder) of the configured dataset, if any."""
    if wildcards.dataset == DATASET and config["source"]:
        return config["source"]
    return []


def source_param(wildcards):
    return config["source"] if wildcards.dataset == DATASET else None


def synthetic_param(wildcards):
    """The generator's settings, for the synthetic dataset only."""
    return config["synthetic"] if wildcards.dataset == "synthetic" else None


# The search (workflow/rules/tune.smk)
TUNE = config["tune"]
TUNE_DIR = study_path("tune")


try:
    check_tune(config, read_schema(SCHEMA))
except DataError as error:
    raise WorkflowError(str(error)) from None


def tune_definition(wildcards):
    """What defines the study of a section: a change to it starts a new study."""
    section = f"{wildcards.model}.{wildcards.objective}"
    return {
        "section": section,
        "model": wildcards.model,
        "settings": train_settings(config, wildcards.model, wildcards.objective),
        "space": section_space(section, TUNE["space"], read_schema(SCHEMA)),
        "seeds": TUNE["seeds"],
        "seed": TUNE["seed"],
    }


def tuned(name):
    """The file `name` of every tuned section's search."""
    return [
        f"{study_path('tune', dataset=DATASET, model=model, objective=objective)}/{name}"
        for model, objective in (section.split(".") for section in TUNE["sections"])
    ]


def searches_run():
    """The trials table of each tuned section whose search has run, with its mtime: the
    report shows them. A parameter, not an input, so that the report never runs a search
    (pasting the best settings into the config redefines the search); a search that
    ends later changes the parameter, so the report is redone."""
    return {
        path: os.stat(path).st_mtime_ns
        for path in tuned("trials.tsv")
        if os.path.exists(path)
    }
