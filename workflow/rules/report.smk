rule report:
    input:
        metrics=trained("results/{dataset}/{model}/{objective}/seed{seed}/metrics.json"),
        baselines=f"results/{DATASET}/baselines.json",
        encoded=f"results/{DATASET}/encoded",
        histories=trained(
            "results/{dataset}/{model}/{objective}/seed{seed}/history.tsv"
        ),
        curves=trained(
            "results/{dataset}/{model}/{objective}/seed{seed}/curves.png",
            seeds=SEEDS[0],
        ),
        topk=f"results/{DATASET}/{RECOMMENDER}/topk.tsv",
        profiles=expand(
            "results/{dataset}/{model}/{objective}/profile.txt",
            dataset=DATASET,
            model=config["profile"]["models"],
            objective=OBJECTIVES,
        ),
    output:
        html="results/report.html",
        table=report(
            "results/metrics.tsv",
            caption="../report/metrics.rst",
            category="Test metrics",
        ),
        plot=report(
            "results/metrics.png",
            caption="../report/metrics_plot.rst",
            category="Test metrics",
        ),
        ranking_plot=report(
            "results/ranking.png",
            caption="../report/ranking.rst",
            category="Test metrics",
        ),
    log:
        "logs/report/report.log",
    params:
        ranking=config["ranking"],
        config=config,
    script:
        "../../scripts/report.py"
