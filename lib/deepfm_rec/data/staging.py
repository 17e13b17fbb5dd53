"""Writing an output folder whole or not at all, readable as the umask says.

A rule's folder output (resources/{dataset}, results/{dataset}/encoded) is written into a
scratch folder beside it and moved into place only when complete; whatever fails, the
scratch folder is removed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0o022)  # the only way to read it is to set it
    os.umask(mask)
    return mask


@contextmanager
def staged(dest: str | Path) -> Iterator[Path]:
    """A new folder to write `dest` into; it replaces `dest` when the block ends without an
    error, and is removed whatever happens. Its permissions are the umask's (mkdtemp's
    are 0700, so that nobody else could read the results on a shared cluster)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        staging.chmod(0o777 & ~_umask())
        yield staging
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
