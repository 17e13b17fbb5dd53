"""Names the container tests share."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def snakefile_image() -> str:
    """The image the Snakefile's `container:` names, without the docker:// scheme."""
    text = (ROOT / "Snakefile").read_text()
    return re.search(r'^container:\s*"docker://([^"]+)"', text, re.M).group(1)
