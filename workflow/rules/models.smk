rule train_fm:
    input:
        "results/{dataset}/encoded",
    output:
        model="results/{dataset}/fm/seed{seed}/model.pt",
        history="results/{dataset}/fm/seed{seed}/history.tsv",
        curves=report(
            "results/{dataset}/fm/seed{seed}/curves.png",
            caption="../report/curves.rst",
            category="Learning curves",
            labels={"model": "FM", "seed": "{seed}"},
        ),
    log:
        "logs/train_fm/{dataset}/seed{seed}.log",
    benchmark:
        "benchmarks/train_fm/{dataset}/seed{seed}.tsv"
    threads: config["threads"]
    params:
        model="fm",
        settings=config["fm"],
        seed=lambda wildcards: int(wildcards.seed),
        device=config["device"],
        memory_budget_gb=config["memory_budget_gb"],
    script:
        "../../scripts/train.py"


use rule train_fm as train_deepfm with:
    output:
        model="results/{dataset}/deepfm/seed{seed}/model.pt",
        history="results/{dataset}/deepfm/seed{seed}/history.tsv",
        curves=report(
            "results/{dataset}/deepfm/seed{seed}/curves.png",
            caption="../report/curves.rst",
            category="Learning curves",
            labels={"model": "DeepFM", "seed": "{seed}"},
        ),
    log:
        "logs/train_deepfm/{dataset}/seed{seed}.log",
    benchmark:
        "benchmarks/train_deepfm/{dataset}/seed{seed}.tsv"
    params:
        model="deepfm",
        settings=config["deepfm"],
        seed=lambda wildcards: int(wildcards.seed),
        device=config["device"],
        memory_budget_gb=config["memory_budget_gb"],


rule evaluate:
    input:
        encoded="results/{dataset}/encoded",
        model="results/{dataset}/{model}/seed{seed}/model.pt",
    output:
        "results/{dataset}/{model}/seed{seed}/metrics.json",
    log:
        "logs/evaluate/{dataset}/{model}/seed{seed}.log",
    threads: config["threads"]
    params:
        ks=sorted({*config["ranking"]["ks"], config["ranking"]["k"]}),
        threshold=config["ranking"]["threshold"],
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
    params:
        ks=sorted({*config["ranking"]["ks"], config["ranking"]["k"]}),
        threshold=config["ranking"]["threshold"],
    script:
        "../../scripts/baselines.py"


rule profile:
    input:
        encoded="results/{dataset}/encoded",
        model=f"results/{{dataset}}/{{model}}/seed{SEEDS[0]}/model.pt",
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
        memory_budget_gb=config["memory_budget_gb"],
    script:
        "../../scripts/profile.py"


rule recommend:
    input:
        encoded="results/{dataset}/encoded",
        model=f"results/{{dataset}}/{{model}}/seed{SEEDS[0]}/model.pt",
    output:
        report(
            "results/{dataset}/{model}/topk.tsv",
            caption="../report/topk.rst",
            category="Recommendations",
        ),
    log:
        "logs/recommend/{dataset}/{model}.log",
    threads: config["threads"]
    params:
        k=config["ranking"]["k"],
        device=config["device"],
    script:
        "../../scripts/recommend.py"
