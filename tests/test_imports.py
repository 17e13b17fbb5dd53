"""The package's imports point one way: each module imports only modules of lower layers
(the module map of docs/design-notes.md), so a dependency pointing up fails here."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from deepfm_rec.config import TITLES
from deepfm_rec.models import MODELS

PACKAGE = Path(__file__).resolve().parents[1] / "lib" / "deepfm_rec"

# lowest first; a module may import a module of a lower layer, or of its own subpackage
LAYERS = (
    ("__init__", "data"),
    ("config", "logs", "search_space", "metrics"),
    ("models",),
    ("inference", "optim", "topk"),
    ("objectives", "item_rankers"),
    ("train",),
    ("evaluate", "recommend", "profiling"),
    ("plots",),
    ("report", "trials"),
    ("tuning",),
    ("cli",),
)
LAYER = {part: n for n, parts in enumerate(LAYERS) for part in parts}


def part_of(module: str) -> str:
    """The layered part of a dotted module: deepfm_rec.data.batches -> data."""
    names = module.split(".")
    return names[1] if len(names) > 1 else "__init__"


def imported(source: str) -> list[str]:
    """Every deepfm_rec module `source` imports, at the top or inside a function."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"relative import at line {node.lineno}: use deepfm_rec."
            if node.module == "deepfm_rec":  # from deepfm_rec import x
                found += [f"deepfm_rec.{alias.name}" for alias in node.names]
            else:
                found.append(node.module)
    return [m for m in found if m == "deepfm_rec" or m.startswith("deepfm_rec.")]


def upward(module: str, source: str) -> list[str]:
    """The imports of `module` (dotted) that are not of a lower layer or its own part (a
    module without a layer counts as above every layer)."""
    own = part_of(module)
    return [
        target
        for target in imported(source)
        if part_of(target) != own and LAYER.get(part_of(target), len(LAYERS)) >= LAYER[own]
    ]


def modules() -> list[str]:
    paths = sorted(PACKAGE.rglob("*.py"))
    names = [".".join(("deepfm_rec", *p.relative_to(PACKAGE).with_suffix("").parts)) for p in paths]
    return [n.removesuffix(".__init__") for n in names]


def source_of(module: str) -> str:
    """The text of a dotted module: its .py, or its package's __init__.py."""
    path = PACKAGE.joinpath(*module.split(".")[1:])
    file = path.with_name(path.name + ".py")
    return (file if file.is_file() else path / "__init__.py").read_text()


def test_every_module_has_a_layer():
    missing = sorted({part_of(m) for m in modules()} - set(LAYER))
    assert not missing, f"modules without a layer in LAYERS (and the module map): {missing}"


@pytest.mark.parametrize("module", modules())
def test_imports_point_down(module):
    assert upward(module, source_of(module)) == []


def test_an_import_pointing_up_is_caught():
    # training that scores with the recommender, and metrics that need the top-K engine
    assert upward("deepfm_rec.objectives", "from deepfm_rec.recommend import Recommender") == [
        "deepfm_rec.recommend"
    ]
    assert upward("deepfm_rec.train", "def f():\n    import deepfm_rec.plots\n") == [
        "deepfm_rec.plots"
    ]
    assert upward("deepfm_rec.metrics", "from deepfm_rec import topk") == ["deepfm_rec.topk"]
    assert upward("deepfm_rec.metrics", "from deepfm_rec.config import load_config") == [
        "deepfm_rec.config"
    ]  # same layer, another part
    assert upward("deepfm_rec.models.fm", "from deepfm_rec.models.layers import FM") == []


def test_the_report_the_search_record_and_the_data_layer_run_without_torch():
    # the report job, the search's study and summary jobs (and download, users, encode)
    # import no torch: 1.8 s of CPU a job
    probe = (
        "import sys, deepfm_rec.report, deepfm_rec.trials, deepfm_rec.data.catalogue, "
        "deepfm_rec.data.encoding; print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False"]
    # the report's names of the models are the classes' (it cannot import them)
    assert TITLES == {name: model.__name__ for name, model in MODELS.items()}
