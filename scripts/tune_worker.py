from deepfm_rec.logs import route_to

route_to(snakemake.log[0])

from deepfm_rec.tuning import run_worker  # noqa: E402

run_worker(
    snakemake.input.study,
    snakemake.output[0],
    worker=int(snakemake.wildcards.worker),
    trials=snakemake.params.trials,
    encoded=snakemake.input.encoded,
    stale_after=snakemake.params.stale_after,
    device=snakemake.params.device,
    threads=snakemake.threads,
    memory_budget=snakemake.params.memory_budget_gb * 1e9,
)
