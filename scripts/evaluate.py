from deepfm_rec.logs import route_to

route_to(snakemake.log[0])

from deepfm_rec.evaluate import write_metrics  # noqa: E402

write_metrics(
    snakemake.input.encoded,
    dict(zip(snakemake.params.models, snakemake.input.models, strict=True)),
    table=snakemake.output.table,
    plot=snakemake.output.plot,
    jsons=dict(zip(snakemake.params.models, snakemake.output.json, strict=True)),
    device=snakemake.params.device,
    threads=snakemake.threads,
)
