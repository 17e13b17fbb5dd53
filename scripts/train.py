from pathlib import Path

from deepfm_rec.logs import route_to

route_to(snakemake.log[0])

from deepfm_rec.plots import plot_curves  # noqa: E402
from deepfm_rec.train import train_model  # noqa: E402

history, best_epoch = train_model(
    snakemake.input[0],
    snakemake.params.model,
    snakemake.params.settings,
    seed=snakemake.params.seed,
    device=snakemake.params.device,
    threads=snakemake.threads,
    memory_budget=snakemake.params.memory_budget_gb * 1e9,
    checkpoint=snakemake.output.model,
    history=snakemake.output.history,
    chosen=snakemake.input.get("chosen"),
)
encoded = Path(snakemake.input[0])
title = f"{snakemake.params.model} on {encoded.parent.name}"
plot_curves(history, best_epoch, Path(snakemake.output.curves), title)
