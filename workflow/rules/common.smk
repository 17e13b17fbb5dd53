import os
from pathlib import Path

DATASET = config["dataset"]
MODELS = ["fm", "deepfm"]
OBJECTIVES = config["objectives"]
SEEDS = config["seeds"]
RECOMMENDER = "{model}/{objective}".format(**config["recommend"])


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


REPORT = "results/report.html"
# its mtime before this run (False: none), so that onsuccess names it only once written
REPORT_BEFORE = os.path.exists(REPORT) and os.stat(REPORT).st_mtime_ns


def study_targets():
    return [REPORT, f"results/{DATASET}/{RECOMMENDER}/topk.tsv"]


def report_written():
    """Whether this run wrote the report (a run for resources/ or one model writes none)."""
    return os.path.exists(REPORT) and os.stat(REPORT).st_mtime_ns != REPORT_BEFORE


def trained(pattern, seeds=SEEDS):
    """`pattern` (with {model}, {objective}, {seed}) for every trained model of the study."""
    return expand(
        pattern, dataset=DATASET, model=MODELS, objective=OBJECTIVES, seed=seeds
    )


def ranking_ks():
    return sorted({*config["ranking"]["ks"], config["ranking"]["k"]})


def train_settings(model):
    """The training settings of `model` for a job's objective: its config section, and for
    ranking the K and threshold of the valid NDCG it early-stops on."""

    def settings(wildcards):
        section = {
            "objective": wildcards.objective,
            **config[model][wildcards.objective],
        }
        if wildcards.objective == "ranking":
            section |= {k: config["ranking"][k] for k in ("k", "threshold")}
        return section

    return settings


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
