from deepfm_rec.logs import route_to

route_to(snakemake.log[0])

from deepfm_rec.data.users import write_users  # noqa: E402

write_users(
    snakemake.input[0],
    snakemake.output[0],
    dataset=snakemake.params.dataset,
    mode=snakemake.params.mode,
    seed=snakemake.params.seed,
)
