rule download:
    input:
        dataset_source,
    output:
        directory(study_path("resources")),
    log:
        "logs/download/{dataset}.log",
    params:
        dataset="{dataset}",
        source=source_param,
        synthetic=synthetic_param,
    script:
        "../../scripts/download.py"


rule synthesize_users:
    input:
        study_path("resources"),
    output:
        study_path("users"),
    log:
        "logs/synthesize_users/{dataset}.log",
    params:
        dataset="{dataset}",
        mode=config["users"],
        seed=config["seed"],
    script:
        "../../scripts/synthesize_users.py"


rule encode:
    input:
        raw=study_path("resources"),
        users=study_path("users"),
    output:
        directory(study_path("encoded")),
    log:
        "logs/encode/{dataset}.log",
    benchmark:
        "benchmarks/encode/{dataset}.tsv"
    params:
        seed=config["seed"],
        split=config["split"],
        implicit=config["implicit"],
        bag_limit=config["bag_limit"],
    script:
        "../../scripts/encode.py"
