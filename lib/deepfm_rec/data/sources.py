"""Where each MovieLens dataset comes from, and fetching it with verified checksums.

`fetch` takes a dataset from the GroupLens site, a local zip or an unpacked folder,
checks its checksum and parses it, once: malformed data fails here, and the later rules
read the canonical tables it writes (ratings, movies, tags and users .parquet; see
layouts.read_canonical) instead of parsing the raw files again. Its folder also holds
the dataset's README and license and the raw files no table holds (links.csv) as they
came, and `source.json` recording the checksum. Nothing is left behind when a check
fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from loguru import logger
from tqdm import tqdm

from deepfm_rec.data.errors import DISK_FULL, DataError
from deepfm_rec.data.layouts import Tables, quote, read_tables, write_canonical
from deepfm_rec.data.staging import staged
from deepfm_rec.data.synthetic import generate

BASE_URL = "https://files.grouplens.org/datasets/movielens"
SOURCE_FILE = "source.json"


@dataclass(frozen=True)
class DatasetSpec:
    """One upstream dataset: its parser, the folder inside its zip, its published md5.

    `files` are the files the parser needs, `optional` those it reads where present (tags),
    `kept` those copied into the fetched folder as they are where present (the README
    and license, links.csv). Nothing else in a source folder or zip is read. `file_md5`
    pins individual files where the project knows them (the embedded ml-latest-small).
    """

    name: str
    layout: str
    folder: str
    files: tuple[str, ...]
    optional: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    md5: str | None = None
    file_md5: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"{BASE_URL}/{self.name}.zip"

    @property
    def names(self) -> tuple[str, ...]:
        """Every file of the dataset that is read: required, optional, kept."""
        return (*self.files, *self.optional, *self.kept)


_CSV = ("ratings.csv", "movies.csv")
_CSV_KEPT = ("links.csv", "README.txt")
# A zip's dataset files unpack to at most MAX_UNPACKED bytes, each at most MAX_RATIO
# times its packed size: MovieLens' files pack about 3:1 (ml-32m's unpack to about 1 GB),
# a zip bomb of zeros 1000:1.
MAX_UNPACKED = 4 << 30
MAX_RATIO = 100
DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in [
        DatasetSpec(
            "ml-100k",
            "ml-100k",
            "ml-100k",
            ("u.data", "u.item", "u.user"),
            ("u.genre",),
            ("README",),
            md5="0e33842e24a9c977be4e0107933c0723",
        ),
        DatasetSpec(
            "ml-1m",
            "ml-1m",
            "ml-1m",
            ("ratings.dat", "movies.dat", "users.dat"),
            kept=("README",),
            md5="c4d9eecfca2ab87c1945afe126590906",
        ),
        DatasetSpec(
            "ml-10m",
            "ml-10m",
            "ml-10M100K",
            ("ratings.dat", "movies.dat"),
            ("tags.dat",),
            ("README.html",),
            md5="ce571fd55effeba0271552578f2648bd",
        ),
        DatasetSpec(
            "ml-20m",
            "csv",
            "ml-20m",
            _CSV,
            ("tags.csv",),
            _CSV_KEPT,
            md5="cd245b17a1ae2cc31bb14903e1204af3",
        ),
        DatasetSpec(
            "ml-25m",
            "csv",
            "ml-25m",
            _CSV,
            ("tags.csv",),
            _CSV_KEPT,
            md5="6b51fb2759a8657d3bfcbfc42b592ada",
        ),
        DatasetSpec("ml-32m", "csv", "ml-32m", _CSV, ("tags.csv",), _CSV_KEPT),
        # generated offline by deepfm_rec.data.synthetic, in the ml-10m layout
        DatasetSpec("synthetic", "ml-10m", "synthetic", ("ratings.dat", "movies.dat")),
        DatasetSpec(
            "ml-latest-small",
            "csv",
            "ml-latest-small",
            _CSV,
            ("tags.csv",),
            (*_CSV_KEPT, "LICENSE.md"),
            file_md5={
                "ratings.csv": "ac0cf1d26aed3a5b6777a295231976ad",
                "movies.csv": "b252328d16b085936b56eefad880ef9d",
                "tags.csv": "5d095828cb668ec2fae1e2cf0d99c671",
                "links.csv": "bc5292d5185e8c5fd8dc9a83fb2198d2",
            },
        ),
    ]
}


def spec_for(dataset: str) -> DatasetSpec:
    """The spec of a dataset name, or a DataError listing the known names."""
    try:
        return DATASETS[dataset]
    except KeyError:
        raise DataError(
            f"config key 'dataset': unknown dataset {dataset!r}; known: {', '.join(DATASETS)}"
        ) from None


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    """Hex md5 of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _folder_digest(file_md5: dict[str, str]) -> str:
    """One checksum for a set of files: md5 over their sorted `md5  name` lines."""
    lines = "".join(f"{md5}  {name}\n" for name, md5 in sorted(file_md5.items()))
    return hashlib.md5(lines.encode()).hexdigest()


def _dataset_files(spec: DatasetSpec, folder: Path) -> list[Path]:
    """The dataset's files in a folder (spec.names, where present); nothing else in it is
    read. A file that is a link out of the folder is refused: a link to /etc/shadow named
    tags.csv would otherwise be copied into resources/."""
    present = [folder / name for name in spec.names if os.path.lexists(folder / name)]
    for path in present:
        if not path.resolve().is_relative_to(folder.resolve()):
            raise DataError(
                f"{path}: a link to {path.resolve()}, outside the source folder; put the "
                "file itself in the folder"
            )
    missing = [name for name in spec.files if not (folder / name).is_file()]
    if missing:
        get = "generate" if spec.name == "synthetic" else "download"
        raise DataError(
            f"{folder}: missing file(s) {', '.join(missing)} for {spec.name}; config key "
            f"'source' must be the {spec.name} folder or zip, or null to {get} it"
        )
    return [path for path in present if path.is_file()]


def _check_folder(spec: DatasetSpec, folder: Path) -> dict:
    """Check a dataset folder's files (and their md5s where the project knows them); the
    folder digest, and each file's md5."""
    file_md5 = {}
    for path in sorted(_dataset_files(spec, folder)):
        file_md5[path.name] = md5sum(path)
        expected = spec.file_md5.get(path.name)
        if expected and file_md5[path.name] != expected:
            raise DataError(f"{path}: md5 mismatch: got {file_md5[path.name]}, expected {expected}")
    return {
        "checksum": _folder_digest(file_md5),
        "checksum_kind": "md5 of file md5s",
        "file_md5": file_md5,
    }


def parse_md5_sidecar(text: str, source: str) -> str:
    """The md5 in a sidecar file: GNU (`<md5>  <name>`) or BSD (`MD5 (<name>) = <md5>`)."""
    match = re.search(r"\b([0-9a-fA-F]{32})\b", text)
    if not match:
        raise DataError(f"{source}: no md5 checksum found in {quote(text)}")
    return match.group(1).lower()


def _check_members(archive: Path, spec: DatasetSpec, members: list[zipfile.ZipInfo]) -> None:
    """The zip's members that are the dataset's files (`<folder>/<name>`, exactly): each
    once, the required ones present, and not a zip bomb. zipfile stops a member at its
    declared size (a longer stream fails its CRC), so the declared sizes bound the output."""
    names = Counter(info.filename for info in members)
    for name, count in names.items():
        if count > 1:
            raise DataError(f"{archive}: {name} is in it {count} times; which one is the data?")
    missing = [name for name in spec.files if f"{spec.folder}/{name}" not in names]
    if missing:
        raise DataError(f"{archive}: missing {', '.join(f'{spec.folder}/{n}' for n in missing)}")
    for info in members:
        if info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise DataError(
                f"{archive}: {info.filename} unpacks to {info.file_size:,} bytes from "
                f"{info.compress_size:,}, more than {MAX_RATIO} times its packed size "
                "(a zip bomb?)"
            )
    total = sum(info.file_size for info in members)
    if total > MAX_UNPACKED:
        raise DataError(
            f"{archive}: the dataset's files unpack to {total:,} bytes, more than the "
            f"{MAX_UNPACKED:,} accepted"
        )


def _extract_zip(spec: DatasetSpec, archive: Path, dest: Path, expected: str | None) -> dict:
    """Check and unpack the dataset's files of a zip (spec.names in spec.folder) into `dest`."""
    with open(archive, "rb") as file:
        head = file.read(16)
    if head[:2] != b"PK":  # every zip record starts so; a cut-off zip still does
        raise DataError(
            f"{archive}: not a zip archive (it begins {head!r}); a source is the dataset's "
            ".zip or the folder it unpacks to"
        )
    checksum = md5sum(archive)
    if expected is None:
        logger.warning("{}: no published md5 to check against; recording {}", archive, checksum)
    elif checksum != expected:
        raise DataError(f"{archive}: md5 mismatch: got {checksum}, expected {expected}")
    try:
        with zipfile.ZipFile(archive) as zf:
            wanted = {f"{spec.folder}/{name}": name for name in spec.names}
            members = [info for info in zf.infolist() if info.filename in wanted]
            _check_members(archive, spec, members)
            for info in members:
                with zf.open(info) as src, open(dest / wanted[info.filename], "wb") as out:
                    shutil.copyfileobj(src, out)
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile, zlib.error, OSError) as error:
        if isinstance(error, OSError) and error.errno in DISK_FULL:
            raise  # the disk is full, the zip may be fine
        raise DataError(f"{archive}: corrupt or truncated zip: {error}; fetch it again") from error
    except (NotImplementedError, RuntimeError) as error:  # deflate64, encrypted members
        raise DataError(f"{archive}: unsupported zip: {error}; repack it as a plain zip") from error
    return {"checksum": checksum, "checksum_kind": "md5 of zip"}


def _download(url: str, target: Path, dataset: str, timeout: float = 15.0) -> None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with (
                open(target, "wb") as out,
                tqdm(total=total, unit="B", unit_scale=True, desc=f"download {dataset}") as bar,
            ):
                while block := response.read(1 << 20):
                    out.write(block)
                    bar.update(len(block))
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        if isinstance(error, OSError) and error.errno in DISK_FULL:
            raise  # writing the download failed, not the network
        reason = getattr(error, "reason", error)
        raise DataError(
            f"cannot download {url}: {reason}. Offline? Fetch {dataset}.zip elsewhere and set "
            f"'source: /path/to/{dataset}.zip' (or an unpacked folder) in config/config.yaml"
        ) from error


def _parse(spec: DatasetSpec, folder: Path, shown_as: str) -> Tables:
    """Parse the dataset in `folder`, so bad data fails here, before it becomes an output.

    Messages name the data as the user knows it (`shown_as`: the zip or URL and the folder
    inside it), not the scratch folder it was unpacked into.
    """
    try:
        return read_tables(folder, spec.layout)
    except DataError as error:
        raise DataError(str(error).replace(str(folder), shown_as)) from None


def _local_md5(archive: Path) -> str | None:
    """The md5 in a sidecar `<archive>.md5` next to a local zip, if there is one."""
    sidecar = archive.with_name(archive.name + ".md5")
    return parse_md5_sidecar(sidecar.read_text(), str(sidecar)) if sidecar.is_file() else None


def fetch(
    dataset: str, source: str | Path | None, dest: Path, synthetic: dict | None = None
) -> dict:
    """Fetch `dataset` into the folder `dest` and return its provenance.

    Args:
        dataset: a name from DATASETS.
        source: a local `.zip` or unpacked folder; None downloads from GroupLens (or,
            for `synthetic`, generates the data).
        dest: the output folder; written whole or not at all.
        synthetic: keyword arguments of deepfm_rec.data.synthetic.generate (n_ratings,
            seed, ...), for the `synthetic` dataset.

    Returns:
        dict with dataset, source, checksum, checksum_kind (also saved as source.json).
    """
    spec = spec_for(dataset)
    dest = Path(dest)
    # Only a complete, verified folder is moved into place; a download, an unpacked zip
    # and generated data are kept in scratch.
    with (
        staged(dest) as staging,
        tempfile.TemporaryDirectory(prefix=f".{dest.name}.", dir=dest.parent) as scratch,
    ):
        # the dataset's files: unpacked or generated in scratch, or the source folder
        folder = Path(scratch) / spec.folder
        folder.mkdir()
        if source is None and dataset == "synthetic":
            origin = f"generated: {json.dumps(synthetic, sort_keys=True)}"
            truth = generate(folder, **(synthetic or {}))
            provenance = {**_check_folder(spec, folder), "truth": truth}
            tables = read_tables(folder, spec.layout)
        elif source is None:
            origin = spec.url
            archive = Path(scratch) / f"{dataset}.zip"
            logger.info("downloading {}", spec.url)
            _download(spec.url, archive, dataset)
            expected = spec.md5
            if expected is None:  # GroupLens publishes <name>.zip.md5 beside newer archives
                _download(f"{spec.url}.md5", archive.with_suffix(".md5"), dataset)
                expected = parse_md5_sidecar(
                    archive.with_suffix(".md5").read_text(), f"{spec.url}.md5"
                )
            try:
                provenance = _extract_zip(spec, archive, folder, expected)
            except DataError as error:  # name the URL, not the scratch copy
                raise DataError(str(error).replace(str(archive), spec.url)) from None
            tables = _parse(spec, folder, f"{spec.url}:{spec.folder}")
        else:
            origin = str(source)
            path = Path(source)
            if path.is_dir():  # parsed where it is: its messages name the user's files
                folder = path
                provenance = _check_folder(spec, folder)
                tables = read_tables(folder, spec.layout)
            elif path.is_file():
                provenance = _extract_zip(spec, path, folder, spec.md5 or _local_md5(path))
                tables = _parse(spec, folder, f"{path}:{spec.folder}")
            elif path.exists():
                raise DataError(
                    f"config key 'source': {path} is not a regular file or folder (a device, "
                    "a FIFO?); a source is the dataset's .zip or the folder it unpacks to"
                )
            else:
                raise DataError(f"config key 'source': {path} does not exist")
        write_canonical(tables, staging)
        for name in spec.kept:
            if (folder / name).is_file():
                shutil.copyfile(folder / name, staging / name)  # its mode from the umask
        provenance = {"dataset": dataset, "source": origin, **provenance}
        (staging / SOURCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n")
    logger.info(
        "{}: {} {} from {}", dataset, provenance["checksum_kind"], provenance["checksum"], origin
    )
    return provenance


def read_provenance(folder: Path) -> dict:
    """The provenance `fetch` saved in a dataset folder."""
    return json.loads((Path(folder) / SOURCE_FILE).read_text())
