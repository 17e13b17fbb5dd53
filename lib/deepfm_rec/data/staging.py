"""Writing an output whole or not at all, readable as the umask says, and a full disk named.

A rule's folder output (resources/{dataset}, results/{dataset}/encoded) is written into a
scratch folder beside it and moved into place only when complete; whatever fails, the
scratch folder is removed (and one a killed job left, by the next run). A full disk (or
quota) while writing is reported as such, naming the output: pandas, pyarrow and
Path.write_text raise ENOSPC without a file name, and numpy's np.save raises "N requested
and M written" without even the errno.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from loguru import logger

from deepfm_rec.data.errors import DISK_FULL


def _umask() -> int:
    mask = os.umask(0o022)  # the only way to read it is to set it
    os.umask(mask)
    return mask


@contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Re-raise a full disk while writing `path` as an ENOSPC (or EDQUOT) OSError naming
    `path`; a write error without an errno (torch.save's RuntimeError "unexpected pos 7168
    vs 7060") counts as one when the disk has no space left."""
    try:
        yield
    except (OSError, RuntimeError) as error:
        code = getattr(error, "errno", None)
        if code is None and shutil.disk_usage(Path(path).parent).free < 1 << 20:
            code = errno.ENOSPC
        if code not in DISK_FULL:
            raise
        raise OSError(code, os.strerror(code), str(path)) from error


@contextmanager
def replaced(path: str | Path) -> Iterator[Path]:
    """A scratch file beside `path` to write it into; it replaces `path` when the block
    ends without an error, and is removed whatever happens, so that no reader (or rerun)
    finds half a file. A full disk is named as `writing` names it."""
    path = Path(path)
    scratch = None
    try:  # from mkstemp on: an interrupt (Ctrl-C) anywhere after it still removes the file
        handle, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        scratch = Path(name)
        os.close(handle)
        scratch.chmod(0o666 & ~_umask())  # mkstemp's 0600, as staged's folder
        with writing(path):
            yield scratch
        scratch.replace(path)
    finally:
        if scratch is not None:
            scratch.unlink(missing_ok=True)


@contextmanager
def staged(dest: str | Path) -> Iterator[Path]:
    """A new folder to write `dest` into; it replaces `dest` when the block ends without an
    error, and is removed whatever happens. Its permissions are the umask's (mkdtemp's
    are 0700, so that nobody else could read the results on a shared cluster)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    # A killed job (kill -9, a node lost) leaves its scratch folders, ml-32m's a gigabyte:
    # no other job writes `dest`, so those beside it are left over, and removed here.
    leftover = re.compile(rf"\.{re.escape(dest.name)}\.[a-z0-9_]{{8}}")
    for path in dest.parent.iterdir():
        if leftover.fullmatch(path.name) and path.is_dir() and not path.is_symlink():
            logger.warning("{}: removing a scratch folder left by an interrupted job", path)
            shutil.rmtree(path)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        staging.chmod(0o777 & ~_umask())
        with writing(dest):
            yield staging
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
