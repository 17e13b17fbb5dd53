# The hyperparameter search (config `tune`; deepfm_rec.tuning), asked for by name:
#   snakemake --cores 2 tune
# Per tuned section: tune_study writes the study's definition and a fresh journal (again
# whenever the section, the space, the seeds or the encoded data change), tune.workers
# tune_worker jobs share that study until tune.trials trials are complete (raising
# tune.trials reruns only the workers, which go on with the same study), and
# tune_summary writes the trials table, the best settings and their plot.
wildcard_constraints:
    worker=r"\d+",


rule tune:
    input:
        tuned("trials.tsv"),
        tuned("best.yaml"),
        tuned("search.png"),


rule tune_study:
    input:
        study_path("encoded"),
    output:
        study=f"{TUNE_DIR}/study.yaml",
        journal=f"{TUNE_DIR}/journal.log",
    log:
        "logs/tune_study/{dataset}/{model}/{objective}.log",
    params:
        definition=tune_definition,
    script:
        "../../scripts/tune_study.py"


rule tune_worker:
    input:
        encoded=study_path("encoded"),
        study=f"{TUNE_DIR}/study.yaml",
    output:
        f"{TUNE_DIR}/worker{{worker}}.json",
    log:
        "logs/tune_worker/{dataset}/{model}/{objective}/worker{worker}.log",
    benchmark:
        "benchmarks/tune_worker/{dataset}/{model}/{objective}/worker{worker}.tsv"
    threads: config["threads"]
    params:
        trials=TUNE["trials"],
        stale_after=TUNE["stale_after"],
        device=config["device"],
        memory_budget_gb=config["memory_budget_gb"],
    script:
        "../../scripts/tune_worker.py"


rule tune_summary:
    input:
        study=f"{TUNE_DIR}/study.yaml",
        workers=expand(
            f"{TUNE_DIR}/worker{{worker}}.json",
            worker=range(TUNE["workers"]),
            allow_missing=True,
        ),
    output:
        trials=f"{TUNE_DIR}/trials.tsv",
        best=f"{TUNE_DIR}/best.yaml",
        plot=f"{TUNE_DIR}/search.png",
    log:
        "logs/tune_summary/{dataset}/{model}/{objective}.log",
    params:
        trials=TUNE["trials"],
    script:
        "../../scripts/tune_summary.py"
