rule report:
    input:
        metrics="results/metrics.tsv",
        metrics_plot="results/metrics.png",
        encoded=f"results/{DATASET}/encoded",
        histories=expand(
            "results/{dataset}/{model}/history.tsv", dataset=DATASET, model=MODELS
        ),
        curves=expand(
            "results/{dataset}/{model}/curves.png", dataset=DATASET, model=MODELS
        ),
        profiles=expand(
            "results/{dataset}/{model}/profile.txt",
            dataset=DATASET,
            model=config["profile"]["models"],
        ),
    output:
        "results/report.html",
    log:
        "logs/report/report.log",
    params:
        models=MODELS,
        profiled=config["profile"]["models"],
        config=config,
    script:
        "../../scripts/report.py"
