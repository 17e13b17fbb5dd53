from deepfm_rec.logs import route_to

route_to(snakemake.log[0])

from deepfm_rec.trials import write_study  # noqa: E402

write_study(snakemake.output.study, snakemake.output.journal, snakemake.params.definition)
