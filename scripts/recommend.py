from deepfm_rec.logs import route_to

route_to(snakemake.log[0])

from deepfm_rec.recommend import write_recommendations  # noqa: E402

write_recommendations(
    snakemake.input.model,
    snakemake.input.encoded,
    snakemake.output[0],
    k=snakemake.params.k,
    exclude=snakemake.params.exclude,
    device=snakemake.params.device,
    threads=snakemake.threads,
)
