"""The Dockerfile, environment.yml, pyproject.toml and the Snakefile agree on versions.

Pure Python and fast: reads the files, runs nothing.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml
from container_helpers import snakefile_image
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
# conda-forge names that differ from the PyPI ones
CONDA_TO_PYPI = {"pytorch": "torch", "matplotlib-base": "matplotlib"}
# conda-only tools of environment.yml that the image gets from apt (or needs not)
CONDA_ONLY = {"python", "pip", "git"}
# what Debian 12 (bookworm, the image's base) ships as python3
DEBIAN_PYTHON = {"bookworm": "3.11"}


def dockerfile_pins() -> dict[str, str]:
    """name -> version of every `name==version` in the Dockerfile's pip installs."""
    text = (ROOT / "Dockerfile").read_text()
    pins = {}
    for name, version in re.findall(r"\b([A-Za-z][\w.-]*)==([\w.]+)", text):
        assert name.lower() not in pins, f"Dockerfile pins {name} twice"
        pins[name.lower()] = version
    return pins


def conda_pins() -> tuple[dict[str, str], list[str]]:
    """(name -> version of the conda dependencies, under their PyPI names; pip lines)."""
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pins, pip = {}, []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip += dep["pip"]
            continue
        name, _, version = re.match(r"^([\w.-]+)\s*(==|=)?\s*(\S*)$", dep).groups()
        pins[CONDA_TO_PYPI.get(name, name).lower()] = version
    return pins, pip


def test_the_dockerfile_pins_every_dependency_of_the_package_exactly():
    pins = dockerfile_pins()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for line in project["dependencies"]:
        requirement = Requirement(line)
        name = requirement.name.lower()
        assert name in pins, f"pyproject.toml needs {name}; the Dockerfile does not pin it"
        assert requirement.specifier.contains(pins[name]), (
            f"Dockerfile pins {name}=={pins[name]}, outside pyproject.toml's {line!r}"
        )
    assert "snakemake-executor-plugin-slurm" in pins  # the cluster profile's executor


def test_environment_yml_has_the_dockerfiles_versions():
    docker = dockerfile_pins()
    conda, pip = conda_pins()
    packages = {name: version for name, version in conda.items() if name not in CONDA_ONLY}
    assert packages == docker, (
        f"differ: Dockerfile only {sorted(set(docker.items()) - set(packages.items()))}, "
        f"environment.yml only {sorted(set(packages.items()) - set(docker.items()))}"
    )
    assert pip == ["-e ."], "pip installs only the project itself, its dependencies come from conda"


def test_both_use_the_same_python():
    text = (ROOT / "Dockerfile").read_text()
    base = re.search(r"^ARG BASE_IMAGE=debian:(\w+)", text, re.M)
    assert base, "the Dockerfile's default base is a Debian image"
    conda, _ = conda_pins()
    assert conda["python"] == DEBIAN_PYTHON[base.group(1)]


def test_the_configured_image_carries_the_package_version():
    """config key `container` (its schema default the same) names docker://NAME:TAG, and
    the Snakefile's `container:` reads it."""
    assert re.search(r'^container: config\["container"\]$', (ROOT / "Snakefile").read_text(), re.M)
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    image = schema["properties"]["container"]["default"]
    assert image == "docker://" + snakefile_image()
    match = re.fullmatch(r"docker://([^:]+):(.+)", image)
    assert match, "the project image is docker://NAME:TAG"
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    label = re.search(
        r'org\.opencontainers\.image\.version="([^"]+)"', (ROOT / "Dockerfile").read_text()
    )
    assert match.group(2) == version == label.group(1)


def test_the_default_build_takes_pypis_cuda_torch():
    """TORCH_VARIANT adds a local label ('+cpu', '+cu126'); empty, pip takes PyPI's torch,
    whose Linux wheels bring the CUDA libraries a GPU node needs."""
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r'"torch==[\w.]+\$\{TORCH_VARIANT\}"', text)
    assert re.search(r"^ARG TORCH_VARIANT=$", text, re.M)
