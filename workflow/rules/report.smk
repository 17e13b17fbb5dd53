rule report:
    input:
        metrics=trained("metrics"),
        baselines=study_path("baselines", dataset=DATASET),
        encoded=study_path("encoded", dataset=DATASET),
        histories=trained("history"),
        topk=study_path("topk", dataset=DATASET, **config["recommend"]),
        profiles=expand(
            study_path("profile"),
            dataset=DATASET,
            model=config["profile"]["models"],
            objective=OBJECTIVES,
        ),
    output:
        html=REPORT,
        table=report(
            study_path("metrics_table"),
            caption="../report/metrics.rst",
            category="Test metrics",
        ),
        plot=report(
            study_path("metrics_plot"),
            caption="../report/metrics_plot.rst",
            category="Test metrics",
        ),
        ranking_plot=report(
            study_path("ranking_plot"),
            caption="../report/ranking.rst",
            category="Test metrics",
        ),
        curves=[
            report(
                path,
                caption="../report/curves.rst",
                category="Learning curves",
                labels=labels,
            )
            for path, labels in learning_curves()
        ],
    log:
        "logs/report/report.log",
    params:
        searches=searches_run(),
        ranking=config["ranking"],
        config=config,
    script:
        "../../scripts/report.py"
