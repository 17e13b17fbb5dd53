"""The settings module (deepfm_rec.config): the schema's defaults, a section's settings, the
paths; the docs that quote the schema and the config; a notebook's training against the
workflow's."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import torch
import yaml
from snakemake.utils import validate

from deepfm_rec.config import (
    CONFIG,
    SCHEMA,
    completed,
    first_l2,
    load_config,
    read_schema,
    recommender_path,
    study_path,
    train_settings,
)
from deepfm_rec.data.errors import DataError
from deepfm_rec.inference import read_checkpoint
from deepfm_rec.search_space import check_tune
from deepfm_rec.train import split_settings, train_model
from workflow_helpers import FAST, merge

ROOT = Path(__file__).resolve().parents[1]


def write(folder: Path, text: str) -> Path:
    path = folder / "config.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text",
    [
        "dataset: ml-100k\nsource: null\nfm: {stars: {lr: 0.01}}\nranking: {k: 5}\n",
        "{}\n",
        "synthetic: {n_ratings: 5000}\ntune: {space: {lr: {log: [0.001, 0.01]}}}\n",
        "deepfm: {ranking: {mlp: [16, 8]}}\nprofile: {models: [fm]}\nsplit: {test: 0.2}\n",
    ],
)
def test_the_defaults_filled_in_are_snakemakes(tmp_path, text):
    """What Snakemake's validate(..., set_default=True) fills in, section by section: the
    workflow checks and fills its config with the library's `completed` instead (config.smk)."""
    config = load_config(write(tmp_path, text), ROOT / SCHEMA)
    expected = yaml.safe_load(text)
    validate(expected, str(ROOT / SCHEMA), set_default=True)
    assert config == expected
    assert config["fm"]["stars"]["l2"] == [0.011, 0.1]  # a default filled in
    given = copy.deepcopy(config)
    merge(given, yaml.safe_load(text))
    assert given == config  # and every value the file gives kept


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fm: {stars: {batch_size: 0}}\n", "config key 'fm.stars.batch_size': 0 is less than"),
        ("fm: {stars: {lrr: 0.1}}\n", "config key 'fm.stars.lrr': no such key in section"),
        # PyYAML's words, which docs/bad-input.md quotes (libyaml's: "did not find expected")
        ("seeds: [1, 2\n", "is not valid YAML: while parsing a flow sequence"),
        ("seeds: [1, 2\n", "expected ',' or ']', but got '<stream end>'"),
    ],
)
def test_a_bad_config_is_one_line(tmp_path, text, message):
    with pytest.raises(DataError, match=re.escape(message)) as error:
        load_config(write(tmp_path, text), ROOT / SCHEMA)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"fm": {"stars": {"embed_dimm": 8}}},
            "config key 'fm.stars.embed_dimm': no such key in section 'fm.stars'; did you "
            "mean 'embed_dim'?",
        ),
        (
            {"deepfm": {"ranking": {"dropout": "high"}}},
            "config key 'deepfm.ranking.dropout': 'high' is not of type 'number'",
        ),
        (
            {"fm": {"ranking": {"fields": ["user", "item", "moods"]}}},
            "config key 'fm.ranking.fields.2': 'moods' is not one of ['user', 'item', ",
        ),
        (
            {"ranking": {"exclude": "valid"}},
            "config key 'ranking.exclude': 'valid' is not one of ['train+valid', 'train']",
        ),
        ({"split": {"method": "by-user"}}, "config key 'split.method': 'by-user' is not one of"),
        ({"seeed": 1}, "config key 'seeed': no such key at the top level; did you mean 'seed'?"),
        ({"foo": 1}, "config key 'foo': no such key at the top level; its keys are dataset, "),
        ({"split": {"test": 0.9}}, "config key 'split.test': 0.9 is greater than the maximum"),
        ({"dataset": "ml-7m"}, "config key 'dataset': 'ml-7m' is not one of ['ml-100k', "),
        (
            {"fm": {"stars": {"batch_size": 0}}},
            "config key 'fm.stars.batch_size': 0 is less than the minimum of 1",
        ),
        # torch.manual_seed takes no more than 2^64 - 1, and the schema says 2^32 - 1
        (
            {"seed": 2**64 + 1},
            "config key 'seed': 18446744073709551617 is greater than the maximum of 4294967295",
        ),
        (
            {"seeds": [42, 2**32]},
            "config key 'seeds.1': 4294967296 is greater than the maximum of 4294967295",
        ),
        ({"synthetic": {"seed": 2**32}}, "config key 'synthetic.seed': 4294967296 is greater"),
        # values the schema bounds by what they mean, before anything allocates them
        (
            {"fm": {"stars": {"embed_dim": 10**12}}},
            "config key 'fm.stars.embed_dim': 1000000000000 is greater than the maximum of 1024",
        ),
        (
            {"deepfm": {"ranking": {"embed_dim": 10**12}}},
            "config key 'deepfm.ranking.embed_dim': 1000000000000 is greater than the maximum",
        ),
        (
            {"ranking": {"ks": [1, 10**9]}},
            "config key 'ranking.ks.1': 1000000000 is greater than the maximum of 1000",
        ),
        ({"ranking": {"k": 10**9}}, "config key 'ranking.k': 1000000000 is greater than the"),
        ({"fm": {"stars": {"l2": [0.01, -1]}}}, "config key 'fm.stars.l2.1': -1 is less than the"),
        (  # a search draws one l2 per trial: it cannot leave the study's choice undrawn
            {"tune": {"space": {"l2": None}}},
            "config key 'deepfm.stars.l2': [0.011, 0.1] is a choice the study makes, which a "
            "search does not",
        ),
        (
            {"synthetic": {"n_ratings": 10**13}},
            "config key 'synthetic.n_ratings': 10000000000000 is greater than the maximum of "
            "100000000",
        ),
        (
            {"synthetic": {"embed_dim": 10**11}},
            "config key 'synthetic.embed_dim': 100000000000 is greater than the maximum of 64",
        ),
    ],
)
def test_a_bad_value_in_the_shipped_config_is_one_line_naming_the_key(change, message):
    """What the Snakefile checks before any job (config.smk; a few cases run through
    Snakemake in test_workflow.py), each key's fault in one line."""
    config, schema = yaml.safe_load((ROOT / CONFIG).read_text()), read_schema(ROOT / SCHEMA)
    merge(config, change)
    with pytest.raises(DataError) as error:
        check_tune(completed(config, schema), schema)  # config.smk's, then common.smk's
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_a_ranking_section_adds_the_valid_metrics_k_and_threshold(tmp_path):
    config = load_config(write(tmp_path, "ranking: {k: 20, threshold: 3.5}\n"), ROOT / SCHEMA)
    stars = train_settings(config, "deepfm", "stars")
    ranking = train_settings(config, "fm", "ranking")
    assert stars == {"objective": "stars", **config["deepfm"]["stars"]}
    assert ranking == {"objective": "ranking", **config["fm"]["ranking"], "k": 20, "threshold": 3.5}
    for settings in (stars, ranking):  # every TrainConfig and model setting, none left out
        split_settings(first_l2(settings))


def test_the_paths_are_the_workflows_patterns():
    assert study_path("model", model="fm") == "results/{dataset}/fm/{objective}/seed{seed}/model.pt"
    assert study_path("encoded", dataset="ml-1m") == "results/ml-1m/encoded"
    config = load_config(ROOT / CONFIG, ROOT / SCHEMA)
    assert recommender_path(config) == "results/ml-latest-small/deepfm/ranking/seed42/model.pt"
    models = (ROOT / "workflow" / "rules" / "models.smk").read_text()
    assert 'model=study_path("model", model="fm")' in models  # the rules write them


def table_rows(text: str, heading: str) -> list[list[str]]:
    """The cells of each row of the first table after `heading` (a markdown line)."""
    lines = text.split(heading, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start + 2 :]:  # past the header and its rule
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


def parts(cell: str) -> list[str]:
    """A cell's comma-separated values, lists in brackets kept whole, backticks dropped."""
    return [p.strip().strip("`") for p in re.split(r",\s*(?![^\[]*\])", cell)]


def value(text: str):
    return yaml.safe_load(text.replace("–", "null"))


def check_row(keys_cell: str, default_cell: str, section: dict) -> None:
    """The keys of a row have the defaults its cell gives (a plain list if one key)."""
    keys, values = parts(keys_cell), parts(default_cell)
    if len(keys) == 1 and len(values) > 1:
        values = [", ".join(values)]
    for key, text in zip(keys, values, strict=True):
        *path, last = key.split(".")
        holder = section
        for name in path:
            holder = holder[name]
        found = holder.get(last)
        expected = value(text)
        if isinstance(found, list) and not isinstance(expected, list):
            expected = [value(v) for v in text.split(", ")]
        assert found == expected, (key, text, found)


def test_the_config_readme_tables_give_the_schemas_defaults(tmp_path):
    defaults = load_config(write(tmp_path, "{}\n"), ROOT / SCHEMA)
    text = (ROOT / "config" / "README.md").read_text()
    for heading, section in [
        ("# config/config.yaml, key by key", defaults),
        ("## `ranking`", defaults["ranking"]),
        ("## `recommend`", defaults["recommend"]),
        ("## `profile`", defaults["profile"]),
    ]:
        for keys, default, *_ in table_rows(text, heading):
            if default != "see config":
                check_row(keys, default, section)
    columns = [("fm", "stars"), ("fm", "ranking"), ("deepfm", "stars"), ("deepfm", "ranking")]
    for keys, *cells, _ in table_rows(text, "## `fm` and `deepfm`"):
        for j in (2, 3):  # DeepFM's "as FM's"
            cells[j] = cells[j - 2] if cells[j] == "as FM's" else cells[j]
        for (model, objective), cell in zip(columns, cells, strict=True):
            section = defaults[model][objective]
            if cell == "–":
                assert not set(parts(keys)) & set(section), (keys, model, objective)
            else:
                check_row(keys, cell, section)


def test_the_config_lines_that_docs_quote_still_hold():
    """docs/bad-input.md quotes config/config.yaml by line: each line still holds its key."""
    config_lines = (ROOT / CONFIG).read_text().splitlines()
    docs = (ROOT / "docs" / "bad-input.md").read_text()
    quoted = re.findall(r"config/config\.yaml, line (\d+): ([\w.]+):", docs)
    assert quoted, "bad-input.md quotes no config line"
    for line, key in quoted:
        node = yaml.compose("\n".join(config_lines))
        for name in key.split("."):
            node = next(v for k, v in node.value if k.value == name)
        assert node.start_mark.line + 1 == int(line), (line, key)
    (flow,) = re.findall(r'flow sequence in "config/config\.yaml", line (\d+), column 8', docs)
    assert config_lines[int(flow) - 1].startswith("seeds: ["), flow  # the line its test breaks


@pytest.mark.workflow
def test_a_notebook_trains_the_workflows_model(small_study, tmp_path):
    """The library called with the config module's settings trains, tensor for tensor, the
    model that the workflow's train_fm rule wrote (small_study: a few epochs), choosing
    the same l2 on valid among the shipped section's values."""
    # the study's settings as its fixture wrote them, not read from its config file: a
    # test of another worker may be editing that file in place (test_workflow.py's)
    config = load_config(ROOT / CONFIG, ROOT / SCHEMA)
    merge(config, FAST)
    settings = train_settings(config, "fm", "stars")
    assert isinstance(settings["l2"], list), "the shipped FM stars chooses its l2 on valid"
    threads = torch.get_num_threads()
    try:
        train_model(
            small_study / study_path("encoded", dataset=config["dataset"]),
            "fm",
            settings,
            seed=config["seeds"][0],
            device=config["device"],
            threads=config["threads"],
            memory_budget=config["memory_budget_gb"] * 1e9,
            checkpoint=tmp_path / "model.pt",
            history=tmp_path / "history.tsv",
        )
    finally:
        torch.set_num_threads(threads)
    path = study_path(
        "model", dataset=config["dataset"], model="fm", objective="stars", seed=config["seeds"][0]
    )
    state = read_checkpoint(small_study / path, torch.device("cpu"))
    mine = read_checkpoint(tmp_path / "model.pt", torch.device("cpu"))
    for key in ("epoch", "hparams", "train_config", "l2_scores", "best", "seed"):
        assert mine[key] == state[key], key
    assert set(state["l2_scores"]) == set(settings["l2"])
    assert mine["state_dict"].keys() == state["state_dict"].keys()
    for name, tensor in state["state_dict"].items():
        assert torch.equal(mine["state_dict"][name], tensor), name
