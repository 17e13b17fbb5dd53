from deepfm_rec.logs import route_to

route_to(snakemake.log[0])

from deepfm_rec.report import write_report  # noqa: E402

write_report(
    snakemake.output[0],
    metrics=snakemake.input.metrics,
    metrics_plot=snakemake.input.metrics_plot,
    encoded=snakemake.input.encoded,
    histories=dict(zip(snakemake.params.models, snakemake.input.histories, strict=True)),
    curves=dict(zip(snakemake.params.models, snakemake.input.curves, strict=True)),
    profiles=dict(zip(snakemake.params.profiled, snakemake.input.profiles, strict=True)),
    config=snakemake.params.config,
)
