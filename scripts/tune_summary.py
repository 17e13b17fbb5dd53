from deepfm_rec.logs import route_to

route_to(snakemake.log[0])

from deepfm_rec.trials import write_summary  # noqa: E402

write_summary(
    snakemake.input.study,
    trials=snakemake.params.trials,
    table_out=snakemake.output.trials,
    best_out=snakemake.output.best,
    plot_out=snakemake.output.plot,
)
