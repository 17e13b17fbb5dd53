from deepfm_rec.logs import route_to

route_to(snakemake.log[0])

from deepfm_rec.report import write_report  # noqa: E402

write_report(
    snakemake.output.html,
    table_out=snakemake.output.table,
    plot_out=snakemake.output.plot,
    ranking_plot_out=snakemake.output.ranking_plot,
    model_metrics=snakemake.input.metrics,
    baselines=snakemake.input.baselines,
    encoded=snakemake.input.encoded,
    histories=snakemake.input.histories,
    curves=snakemake.output.curves,
    profiles=snakemake.input.profiles,
    topk=snakemake.input.topk,
    searches=list(snakemake.params.searches),
    k=snakemake.params.ranking["k"],
    threshold=snakemake.params.ranking["threshold"],
    exclude=snakemake.params.ranking["exclude"],
    examples=snakemake.params.ranking["examples"],
    config=snakemake.params.config,
)
