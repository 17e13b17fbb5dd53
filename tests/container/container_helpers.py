"""Names the container tests share."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def snakefile_image() -> str:
    """The image the Snakefile's `container:` runs (config key `container`), without the
    docker:// scheme."""
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    return config["container"].removeprefix("docker://")
