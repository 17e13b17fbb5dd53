# What the Snakefile checks in config/config.yaml before Snakemake loads it (included
# before `configfile:`).
import re

import yaml
from snakemake.exceptions import WorkflowError


def exponent_texts(node, key=""):
    """(line, key, value) of each unquoted value that is a number in exponent form but
    text to YAML 1.1 (PyYAML): 1e-3 has no dot, 1.0e3 no sign in its exponent."""
    if isinstance(node, yaml.MappingNode):
        return [
            hit for k, v in node.value for hit in exponent_texts(v, f"{key}.{k.value}")
        ]
    if isinstance(node, yaml.SequenceNode):
        return [hit for v in node.value for hit in exponent_texts(v, key)]
    number = re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+", node.value)
    text = node.style is None and node.tag == "tag:yaml.org,2002:str"
    return [(node.start_mark.line + 1, key[1:], node.value)] if number and text else []


def check_config_file(path):
    """A YAML syntax error, or a number PyYAML reads as text, as one WorkflowError naming
    the file and line: Snakemake's own message for the first names neither, and the
    schema's for `lr: 1e-3` says only "'1e-3' is not of type 'number'"."""
    try:
        with open(path) as file:
            yaml.safe_load(file)
            file.seek(0)
            texts = exponent_texts(yaml.compose(file, Loader=yaml.SafeLoader))
    except FileNotFoundError:
        return  # Snakemake says so, unless --configfile stands in for it
    except yaml.YAMLError as error:
        message = " ".join(str(error).split())  # one line
        raise WorkflowError(f"{path} is not valid YAML: {message}") from None
    if texts:
        line, key, value = texts[0]
        raise WorkflowError(
            f"{path}, line {line}: {key}: {value} is text to YAML 1.1 (PyYAML), whose "
            f"numbers in exponent form need a dot and a signed exponent; write {float(value)!r}"
        )
