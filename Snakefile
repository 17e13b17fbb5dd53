from snakemake.utils import min_version

min_version("9.0")

CONFIG_FILE = "config/config.yaml"
SCHEMA = "workflow/schemas/config.schema.yaml"


include: "workflow/rules/config.smk"


check_config_file(CONFIG_FILE)


configfile: CONFIG_FILE


check_config_keys(config, SCHEMA)


container: config["container"]


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/tune.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        study_targets(),


onsuccess:
    if report_written():
        print(f"deepfm-rec: the report is {REPORT}")
