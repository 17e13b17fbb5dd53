from deepfm_rec.logs import route_to

route_to(snakemake.log[0])

from deepfm_rec.train import train_model  # noqa: E402

train_model(
    snakemake.input[0],
    snakemake.params.model,
    snakemake.params.settings,
    seed=snakemake.params.seed,
    device=snakemake.params.device,
    threads=snakemake.threads,
    checkpoint=snakemake.output.model,
    history=snakemake.output.history,
    curves=snakemake.output.curves,
)
