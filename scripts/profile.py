from deepfm_rec.logs import route_to

route_to(snakemake.log[0])

from deepfm_rec.profiling import write_profile  # noqa: E402

write_profile(
    snakemake.input.encoded,
    snakemake.input.model,
    table=snakemake.output.table,
    trace=snakemake.output.trace,
    batch_size=snakemake.params.batch_size,
    warmup=snakemake.params.warmup,
    row_limit=snakemake.params.row_limit,
    device=snakemake.params.device,
    threads=snakemake.threads,
    memory_budget=snakemake.params.memory_budget_gb * 1e9,
)
