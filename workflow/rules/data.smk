rule download:
    input:
        dataset_source,
    output:
        directory("resources/{dataset}"),
    params:
        dataset="{dataset}",
        source=source_param,
    log:
        "logs/download/{dataset}.log",
    script:
        "../../scripts/download.py"


rule synthesize_users:
    input:
        "resources/{dataset}",
    output:
        "results/{dataset}/users.tsv",
    params:
        dataset="{dataset}",
        mode=config["users"],
        seed=config["seed"],
    log:
        "logs/synthesize_users/{dataset}.log",
    script:
        "../../scripts/synthesize_users.py"


rule encode:
    input:
        raw="resources/{dataset}",
        users="results/{dataset}/users.tsv",
    output:
        directory("results/{dataset}/encoded"),
    params:
        dataset="{dataset}",
        seed=config["seed"],
        split=config["split"],
    log:
        "logs/encode/{dataset}.log",
    benchmark:
        "benchmarks/encode/{dataset}.tsv"
    script:
        "../../scripts/encode.py"
