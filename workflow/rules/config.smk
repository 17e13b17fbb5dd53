# What the Snakefile checks in config/config.yaml before Snakemake loads it (included
# before `configfile:`).
import re

import yaml


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
