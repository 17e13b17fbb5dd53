rule train_fm:
    input:
        "results/{dataset}/encoded",
    output:
        model="results/{dataset}/fm/{objective}/seed{seed}/model.pt",
        history="results/{dataset}/fm/{objective}/seed{seed}/history.tsv",
        curves=report(
            "results/{dataset}/fm/{objective}/seed{seed}/curves.png",
            caption="../report/curves.rst",
            category="Learning curves",
            labels={"model": "FM", "objective": "{objective}", "seed": "{seed}"},
        ),
    log:
        "logs/train_fm/{dataset}/{objective}/seed{seed}.log",
    benchmark:
        "benchmarks/train_fm/{dataset}/{objective}/seed{seed}.tsv"
    threads: config["threads"]
    params:
        model="fm",
        settings=train_settings("fm"),
        seed=lambda wildcards: int(wildcards.seed),
        device=config["device"],
        memory_budget_gb=config["memory_budget_gb"],
    script:
        "../../scripts/train.py"


use rule train_fm as train_deepfm with:
    output:
        model="results/{dataset}/deepfm/{objective}/seed{seed}/model.pt",
        history="results/{dataset}/deepfm/{objective}/seed{seed}/history.tsv",
        curves=report(
            "results/{dataset}/deepfm/{objective}/seed{seed}/curves.png",
            caption="../report/curves.rst",
            category="Learning curves",
            labels={"model": "DeepFM", "objective": "{objective}", "seed": "{seed}"},
        ),
    log:
        "logs/train_deepfm/{dataset}/{objective}/seed{seed}.log",
    benchmark:
        "benchmarks/train_deepfm/{dataset}/{objective}/seed{seed}.tsv"
    params:
        model="deepfm",
        settings=train_settings("deepfm"),
        seed=lambda wildcards: int(wildcards.seed),
        device=config["device"],
        memory_budget_gb=config["memory_budget_gb"],


rule evaluate:
    input:
        encoded="results/{dataset}/encoded",
        model="results/{dataset}/{model}/{objective}/seed{seed}/model.pt",
    output:
        "results/{dataset}/{model}/{objective}/seed{seed}/metrics.json",
    log:
        "logs/evaluate/{dataset}/{model}/{objective}/seed{seed}.log",
    benchmark:
        "benchmarks/evaluate/{dataset}/{model}/{objective}/seed{seed}.tsv"
    threads: config["threads"]
    params:
        ks=ranking_ks(),
        threshold=config["ranking"]["threshold"],
        exclude=config["ranking"]["exclude"],
        device=config["device"],
        memory_budget_gb=config["memory_budget_gb"],
    script:
        "../../scripts/evaluate.py"


rule baselines:
    input:
        "results/{dataset}/encoded",
    output:
        "results/{dataset}/baselines.json",
    log:
        "logs/baselines/{dataset}.log",
    benchmark:
        "benchmarks/baselines/{dataset}.tsv"
    threads: config["threads"]
    params:
        ks=ranking_ks(),
        k=config["ranking"]["k"],
        threshold=config["ranking"]["threshold"],
        exclude=config["ranking"]["exclude"],
        memory_budget_gb=config["memory_budget_gb"],
    script:
        "../../scripts/baselines.py"


rule profile:
    input:
        encoded="results/{dataset}/encoded",
        model=f"results/{{dataset}}/{{model}}/{{objective}}/seed{SEEDS[0]}/model.pt",
    output:
        table=report(
            "results/{dataset}/{model}/{objective}/profile.txt",
            caption="../report/profile.rst",
            category="Profile",
        ),
        trace="results/{dataset}/{model}/{objective}/trace.json",
    log:
        "logs/profile/{dataset}/{model}/{objective}.log",
    benchmark:
        "benchmarks/profile/{dataset}/{model}/{objective}.tsv"
    threads: config["threads"]
    params:
        batch_size=config["profile"]["batch_size"],
        warmup=config["profile"]["warmup"],
        row_limit=config["profile"]["row_limit"],
        device=config["device"],
        memory_budget_gb=config["memory_budget_gb"],
    script:
        "../../scripts/profile.py"


rule recommend:
    input:
        encoded="results/{dataset}/encoded",
        model=f"results/{{dataset}}/{{model}}/{{objective}}/seed{SEEDS[0]}/model.pt",
    output:
        report(
            "results/{dataset}/{model}/{objective}/topk.tsv",
            caption="../report/topk.rst",
            category="Recommendations",
        ),
    log:
        "logs/recommend/{dataset}/{model}/{objective}.log",
    benchmark:
        "benchmarks/recommend/{dataset}/{model}/{objective}.tsv"
    threads: config["threads"]
    params:
        k=config["ranking"]["k"],
        exclude=config["ranking"]["exclude"],
        device=config["device"],
    script:
        "../../scripts/recommend.py"
