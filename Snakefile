import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

min_version("9.0")

CONFIG_FILE = "config/config.yaml"


include: "workflow/rules/config.smk"


# Snakemake's own message for a YAML syntax error names neither the file nor the line, and
# the schema's for lr: 1e-3 says only "'1e-3' is not of type 'number'"
try:
    with open(CONFIG_FILE) as file:
        yaml.safe_load(file)
        file.seek(0)
        texts = exponent_texts(yaml.compose(file, Loader=yaml.SafeLoader))
    if texts:
        line, key, value = texts[0]
        raise WorkflowError(
            f"{CONFIG_FILE}, line {line}: {key}: {value} is text to YAML 1.1 (PyYAML), whose "
            f"numbers in exponent form need a dot and a signed exponent; write {float(value)!r}"
        )
except FileNotFoundError:
    pass  # Snakemake says so, unless --configfile stands in for it
except yaml.YAMLError as error:
    message = " ".join(str(error).split())  # one line
    raise WorkflowError(f"{CONFIG_FILE} is not valid YAML: {message}") from None


configfile: CONFIG_FILE


validate(config, "workflow/schemas/config.schema.yaml")


container: "docker://ghcr.io/deepfm-rec/deepfm-rec:0.1.0"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        study_targets(),


onsuccess:
    if report_written():
        print(f"deepfm-rec: the report is {REPORT}")
