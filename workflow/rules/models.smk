rule train_fm:
    input:
        "results/{dataset}/encoded",
    output:
        model="results/{dataset}/fm/model.pt",
        history="results/{dataset}/fm/history.tsv",
        curves=report(
            "results/{dataset}/fm/curves.png",
            caption="../report/curves.rst",
            category="Learning curves",
            labels={"model": "FM"},
        ),
    log:
        "logs/train_fm/{dataset}.log",
    benchmark:
        "benchmarks/train_fm/{dataset}.tsv"
    threads: config["threads"]
    params:
        model="fm",
        settings=config["fm"],
        seed=config["seed"],
        device=config["device"],
        memory_budget_gb=config["memory_budget_gb"],
    script:
        "../../scripts/train.py"


use rule train_fm as train_deepfm with:
    output:
        model="results/{dataset}/deepfm/model.pt",
        history="results/{dataset}/deepfm/history.tsv",
        curves=report(
            "results/{dataset}/deepfm/curves.png",
            caption="../report/curves.rst",
            category="Learning curves",
            labels={"model": "DeepFM"},
        ),
    log:
        "logs/train_deepfm/{dataset}.log",
    benchmark:
        "benchmarks/train_deepfm/{dataset}.tsv"
    params:
        model="deepfm",
        settings=config["deepfm"],
        seed=config["seed"],
        device=config["device"],
        memory_budget_gb=config["memory_budget_gb"],


rule evaluate:
    input:
        encoded=f"results/{DATASET}/encoded",
        models=expand(
            "results/{dataset}/{model}/model.pt", dataset=DATASET, model=MODELS
        ),
    output:
        table=report(
            "results/metrics.tsv",
            caption="../report/metrics.rst",
            category="Test metrics",
        ),
        plot=report(
            "results/metrics.png",
            caption="../report/metrics.rst",
            category="Test metrics",
        ),
        json=expand(
            "results/{dataset}/{model}/metrics.json", dataset=DATASET, model=MODELS
        ),
    log:
        "logs/evaluate/evaluate.log",
    benchmark:
        "benchmarks/evaluate/evaluate.tsv"
    threads: config["threads"]
    params:
        models=MODELS,
        device=config["device"],
    script:
        "../../scripts/evaluate.py"


rule profile:
    input:
        encoded="results/{dataset}/encoded",
        model="results/{dataset}/{model}/model.pt",
    output:
        table=report(
            "results/{dataset}/{model}/profile.txt",
            caption="../report/profile.rst",
            category="Profile",
        ),
        trace="results/{dataset}/{model}/trace.json",
    log:
        "logs/profile/{dataset}/{model}.log",
    threads: config["threads"]
    params:
        batch_size=config["profile"]["batch_size"],
        warmup=config["profile"]["warmup"],
        row_limit=config["profile"]["row_limit"],
        device=config["device"],
    script:
        "../../scripts/profile.py"
