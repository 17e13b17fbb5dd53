from pathlib import Path

DATASET = config["dataset"]
MODELS = ["fm", "deepfm"]
SEEDS = config["seeds"]


wildcard_constraints:
    dataset=r"ml-[a-z0-9-]+|synthetic",
    model="|".join(MODELS),
    seed=r"\d+",


# Snakemake's own message for a missing input spans many lines and names no config key
if config["source"] and not Path(config["source"]).exists():
    raise WorkflowError(f"config key 'source': {config['source']} does not exist")


def study_targets():
    return ["results/report.html"] + expand(
        "results/{dataset}/{model}/topk.tsv", dataset=DATASET, model=MODELS
    )


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
