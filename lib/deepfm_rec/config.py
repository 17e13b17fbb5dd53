"""The study's settings: config/config.yaml checked against the schema, a model section's
training settings, and the paths of everything the workflow writes.

The schema (workflow/schemas/config.schema.yaml) is the one place a default lives: the
library's classes take every setting as a required argument, and `load_config` fills in
what a config file leaves out, as Snakemake's validate(..., set_default=True) would.
The workflow, the command line, profiling and the benchmarks read settings and paths
through this module, so a notebook that calls the library with the shipped config trains
the workflow's models.

A file that is not UTF-8, not YAML, empty or not a mapping, a number PyYAML reads as
text, an unknown key (with the nearest valid one) or a value the schema refuses is a
DataError naming the file and line, or the key. Snakemake's own messages for the last two
print the whole schema and config (1,700 lines), the useful line somewhere inside.
"""

from __future__ import annotations

import copy
import difflib
import io
import re
from pathlib import Path

import jsonschema
import yaml

from deepfm_rec.data.errors import DataError

# relative to the project folder, where the workflow and the command line run
CONFIG = Path("config/config.yaml")
SCHEMA = Path("workflow/schemas/config.schema.yaml")

# The model classes' names (deepfm_rec.models.MODELS; tests/test_imports.py holds them
# equal), spelled here so that the report and the workflow's labels need no torch (1.8 s).
TITLES = {"fm": "FM", "deepfm": "DeepFM"}

# Everything the workflow writes, as Snakemake patterns of its wildcards
PATHS = {
    "resources": "resources/{dataset}",
    "users": "results/{dataset}/users.tsv",
    "encoded": "results/{dataset}/encoded",
    "baselines": "results/{dataset}/baselines.json",
    "model": "results/{dataset}/{model}/{objective}/seed{seed}/model.pt",
    "history": "results/{dataset}/{model}/{objective}/seed{seed}/history.tsv",
    "curves": "results/curves/{model}-{objective}-seed{seed}.png",  # the report's
    "metrics": "results/{dataset}/{model}/{objective}/seed{seed}/metrics.json",
    "profile": "results/{dataset}/{model}/{objective}/profile.txt",
    "trace": "results/{dataset}/{model}/{objective}/trace.json",
    "topk": "results/{dataset}/{model}/{objective}/topk.tsv",
    "report": "results/report.html",
    "metrics_table": "results/metrics.tsv",
    "metrics_plot": "results/metrics.png",
    "ranking_plot": "results/ranking.png",
    "tune": "results/{dataset}/tune/{model}/{objective}",
}


def _exponent_texts(node: yaml.Node, key: str = "") -> list[tuple[int, str, str]]:
    """(line, key, value) of each unquoted value that is a number in exponent form but
    text to YAML 1.1 (PyYAML): 1e-3 has no dot, 1.0e3 no sign in its exponent."""
    if isinstance(node, yaml.MappingNode):
        return [hit for k, v in node.value for hit in _exponent_texts(v, f"{key}.{k.value}")]
    if isinstance(node, yaml.SequenceNode):
        return [hit for v in node.value for hit in _exponent_texts(v, key)]
    number = re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+", node.value)
    text = not node.style and node.tag == "tag:yaml.org,2002:str"  # plain: None, or "" (libyaml)
    return [(node.start_mark.line + 1, key[1:], node.value)] if number and text else []


def read_config(path: str | Path) -> dict:
    """The config file at `path` as a dict; a DataError naming the file (and line) if it
    is not UTF-8 YAML text of a mapping, or holds a number PyYAML reads as text."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
        config = parse_yaml(text, str(path))
    except UnicodeDecodeError as error:
        raise DataError(
            f"{path}: not UTF-8 text (byte {error.object[error.start]:#04x} at offset "
            f"{error.start}); a config is a YAML file"
        ) from None
    except yaml.YAMLError as error:
        message = " ".join(str(error).split())  # one line
        raise DataError(f"{path} is not valid YAML: {message}") from None
    if config is None:
        raise DataError(f"{path}: empty; write {{}} for the shipped settings")
    if not isinstance(config, dict):
        raise DataError(
            f"{path}: a YAML {type(config).__name__}, not a mapping of config keys to values"
        )
    texts = _exponent_texts(yaml.compose(text, Loader=yaml.CSafeLoader))
    if texts:
        line, key, value = texts[0]
        raise DataError(
            f"{path}, line {line}: {key}: {value} is text to YAML 1.1 (PyYAML), whose "
            f"numbers in exponent form need a dot and a signed exponent; write {float(value)!r}"
        )
    return config


def parse_yaml(text: str, name: str):
    """The YAML document `text` (from the file `name`) as PyYAML's safe loader reads it,
    parsed by libyaml (the schema in 5 ms where the pure-Python parser takes 45, and every
    snakemake start reads it); a syntax error is raised by the pure-Python parser, whose
    messages are clearer ("expected ',' or ']', but got '?'")."""
    try:
        return yaml.load(text, Loader=yaml.CSafeLoader)
    except yaml.YAMLError:
        stream = io.StringIO(text)
        stream.name = name  # what PyYAML's messages call it
        return yaml.safe_load(stream)


def read_schema(path: str | Path = SCHEMA) -> dict:
    """The config schema (its YAML anchors and merge keys resolved)."""
    return parse_yaml(Path(path).read_text(), str(path))


def _unknown_key(config: dict, schema: dict, section: str = "") -> str | None:
    """One line on the first key of `config` that `schema` does not know, or None."""
    known = schema.get("properties", {})
    for key, value in config.items():
        where = f"{section}.{key}" if section else str(key)
        if key not in known:
            if schema.get("additionalProperties", True) is not False:
                continue
            close = difflib.get_close_matches(str(key), list(known), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"its keys are {', '.join(known)}"
            place = f"in section {section!r}" if section else "at the top level"
            return f"config key {where!r}: no such key {place}; {hint}"
        if isinstance(value, dict) and known[key].get("type") == "object":
            found = _unknown_key(value, known[key], where)
            if found:
                return found
    return None


def check_config(config: dict, schema: dict) -> None:
    """A DataError of one line naming the key if `config` does not validate against
    `schema`: an unknown key with the nearest valid name, else the schema's first
    complaint."""
    unknown = _unknown_key(config, schema)
    if unknown:
        raise DataError(unknown)
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema).iter_errors(config)
    )
    if error is not None:
        key = ".".join(map(str, error.absolute_path)) or "(the whole config)"
        message = error.message if len(error.message) <= 200 else error.message[:200] + "…"
        raise DataError(f"config key {key!r}: {message}")


def with_defaults(config: dict, schema: dict) -> dict:
    """`config` with every key it leaves out filled in from the schema's defaults, in every
    section, as Snakemake's validate(..., set_default=True) fills them (the workflow's
    config through `completed`)."""
    for key, spec in schema.get("properties", {}).items():
        if key not in config and "default" in spec:
            config[key] = copy.deepcopy(spec["default"])
        if isinstance(config.get(key), dict):
            with_defaults(config[key], spec)
    return config


def completed(config: dict, schema: dict) -> dict:
    """`config` checked against `schema` (a DataError of one line) and then, in place,
    with the schema's defaults filled in: what the workflow does to its config
    (config.smk) and load_config to a file's."""
    check_config(config, schema)
    return with_defaults(config, schema)


def load_config(path: str | Path = CONFIG, schema: str | Path = SCHEMA) -> dict:
    """The config file at `path`, checked against `schema` (a DataError of one line, see
    the module's docstring) and with the schema's defaults filled in."""
    return completed(read_config(path), read_schema(schema))


def train_settings(config: dict, model: str, objective: str) -> dict:
    """What train_model takes for `model` (fm, deepfm) trained for `objective` (stars,
    ranking): its config section and the objective, and for ranking the K and threshold
    of the valid NDCG it early-stops on (config `ranking`)."""
    settings = {"objective": objective, **config[model][objective]}
    if objective == "ranking":
        settings |= {key: config["ranking"][key] for key in ("k", "threshold")}
    return settings


class _Unfilled(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def study_path(name: str, **wildcards) -> str:
    """PATHS[name] with the given wildcards filled in and the others left as patterns:
    study_path("model", model="fm") is results/{dataset}/fm/{objective}/seed{seed}/model.pt."""
    return PATHS[name].format_map(_Unfilled(wildcards))


def recommender_path(config: dict) -> str:
    """The checkpoint of the study's recommender (config `recommend`, the first seed)."""
    return study_path(
        "model", dataset=config["dataset"], seed=config["seeds"][0], **config["recommend"]
    )


def first_l2(settings: dict) -> dict:
    """`settings` with a list of l2 values (the study's choice on valid, train_model) cut
    to its first: one model of a section, as a benchmark trains or times it."""
    l2 = settings["l2"]
    return settings | {"l2": l2[0]} if isinstance(l2, list) else settings
