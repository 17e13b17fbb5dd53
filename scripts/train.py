from deepfm_rec.logs import route_to

route_to(snakemake.log[0])

from deepfm_rec.train import train_model  # noqa: E402

train_model(
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
