from deepfm_rec.logs import route_to

route_to(snakemake.log[0])

from deepfm_rec.data.sources import fetch  # noqa: E402

fetch(
    snakemake.params.dataset,
    snakemake.params.source,
    snakemake.output[0],
    synthetic=snakemake.params.synthetic,
)
