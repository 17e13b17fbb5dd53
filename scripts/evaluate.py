from deepfm_rec.logs import route_to

route_to(snakemake.log[0])

from deepfm_rec.evaluate import write_model_metrics  # noqa: E402

write_model_metrics(
    snakemake.input.encoded,
    snakemake.input.model,
    snakemake.output[0],
    ks=snakemake.params.ks,
    threshold=snakemake.params.threshold,
    exclude=snakemake.params.exclude,
    device=snakemake.params.device,
    threads=snakemake.threads,
    memory_budget=snakemake.params.memory_budget_gb * 1e9,
)
