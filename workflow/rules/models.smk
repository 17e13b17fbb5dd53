rule train_fm:
    input:
        study_path("encoded"),
        unpack(chosen_l2("fm")),
    output:
        model=study_path("model", model="fm"),
        history=study_path("history", model="fm"),
    log:
        "logs/train_fm/{dataset}/{objective}/seed{seed}.log",
    benchmark:
        "benchmarks/train_fm/{dataset}/{objective}/seed{seed}.tsv"
    # the star trainings first: with their l2 choice they are the longest jobs at scale
    priority: lambda wildcards: 1 if wildcards.objective == "stars" else 0
    threads: config["threads"]
    params:
        model="fm",
        settings=model_settings("fm"),
        seed=lambda wildcards: int(wildcards.seed),
        device=config["device"],
        memory_budget_gb=config["memory_budget_gb"],
    script:
        "../../scripts/train.py"


use rule train_fm as train_deepfm with:
    input:
        study_path("encoded"),
        unpack(chosen_l2("deepfm")),
    output:
        model=study_path("model", model="deepfm"),
        history=study_path("history", model="deepfm"),
    log:
        "logs/train_deepfm/{dataset}/{objective}/seed{seed}.log",
    benchmark:
        "benchmarks/train_deepfm/{dataset}/{objective}/seed{seed}.tsv"
    params:
        model="deepfm",
        settings=model_settings("deepfm"),
        seed=lambda wildcards: int(wildcards.seed),
        device=config["device"],
        memory_budget_gb=config["memory_budget_gb"],


rule evaluate:
    input:
        encoded=study_path("encoded"),
        model=study_path("model"),
    output:
        study_path("metrics"),
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
        study_path("encoded"),
    output:
        study_path("baselines"),
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
        encoded=study_path("encoded"),
        model=study_path("model", seed=SEEDS[0]),
    output:
        table=report(
            study_path("profile"),
            caption="../report/profile.rst",
            category="Profile",
        ),
        trace=study_path("trace"),
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
        encoded=study_path("encoded"),
        model=study_path("model", seed=SEEDS[0]),
    output:
        report(
            study_path("topk"),
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
