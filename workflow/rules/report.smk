rule report:
    input:
        metrics="results/metrics.tsv",
        metrics_plot="results/metrics.png",
        encoded=f"results/{DATASET}/encoded",
        histories=expand("results/{dataset}/{model}/history.tsv", dataset=DATASET, model=MODELS),
        curves=expand("results/{dataset}/{model}/curves.png", dataset=DATASET, model=MODELS),
        profiles=expand(
            "results/{dataset}/{model}/profile.txt",
            dataset=DATASET,
            model=config["profile"]["models"],
        ),
    output:
        "results/report.html",
    params:
        models=MODELS,
        profiled=config["profile"]["models"],
        config=config,
    log:
        "logs/report/report.log",
    script:
        "../../scripts/report.py"
