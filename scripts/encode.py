from deepfm_rec.logs import route_to

route_to(snakemake.log[0])

from deepfm_rec.data.encoding import encode_dataset  # noqa: E402

encode_dataset(
    snakemake.input.raw,
    snakemake.input.users,
    snakemake.output[0],
    seed=snakemake.params.seed,
    valid_fraction=snakemake.params.split["valid"],
    test_fraction=snakemake.params.split["test"],
    split_method=snakemake.params.split["method"],
    implicit=snakemake.params.implicit,
    bag_limit=snakemake.params.bag_limit,
)
