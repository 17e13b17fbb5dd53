from deepfm_rec.logs import route_to

route_to(snakemake.log[0])

from deepfm_rec.evaluate import write_baselines  # noqa: E402

write_baselines(
    snakemake.input[0],
    snakemake.output[0],
    ks=snakemake.params.ks,
    k=snakemake.params.k,
    threshold=snakemake.params.threshold,
    exclude=snakemake.params.exclude,
    threads=snakemake.threads,
    memory_budget=snakemake.params.memory_budget_gb * 1e9,
)
