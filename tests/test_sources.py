"""Fetching: folders and zips, checksums, and nothing left behind when a check fails."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from deepfm_rec.data import sources
from deepfm_rec.data.errors import DataError
from deepfm_rec.data.layouts import read_canonical, read_tables
from deepfm_rec.data.sources import DATASETS, fetch, parse_md5_sidecar
from workflow_helpers import FIXTURES

EMBEDDED = Path(__file__).resolve().parents[1] / "resources" / "embedded" / "ml-latest-small"
FILES_100K = ("u.data", "u.item", "u.user")


def make_zip(path, folder: str, files: dict[str, bytes]) -> str:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(f"{folder}/{name}", data)
    return hashlib.md5(path.read_bytes()).hexdigest()


def only(tmp_path) -> list[str]:
    """What is in tmp_path, hidden scratch folders included."""
    return sorted(p.name for p in tmp_path.iterdir())


def assert_same_tables(fetched: Path, raw: Path, layout: str) -> None:
    """The tables `fetch` wrote into `fetched` are those parsed from the raw folder."""
    written, parsed = read_canonical(fetched), read_tables(raw, layout)
    for name in ("ratings", "movies", "tags", "users"):
        if getattr(parsed, name) is None:
            assert getattr(written, name) is None, name
        else:
            pd.testing.assert_frame_equal(getattr(written, name), getattr(parsed, name))


EMBEDDED_OUT = [
    "LICENSE.md",
    "links.csv",
    "movies.parquet",
    "ratings.parquet",
    "source.json",
    "tags.parquet",
]


def test_embedded_folder_is_verified_parsed_and_written_as_tables(tmp_path):
    """resources/{dataset}: the canonical tables, the license and links.csv as they came,
    and source.json."""
    provenance = fetch("ml-latest-small", EMBEDDED, tmp_path / "out")
    assert only(tmp_path / "out") == EMBEDDED_OUT
    assert_same_tables(tmp_path / "out", EMBEDDED, "csv")
    for name in ("LICENSE.md", "links.csv"):
        assert (tmp_path / "out" / name).read_bytes() == (EMBEDDED / name).read_bytes()
    assert json.loads((tmp_path / "out" / "source.json").read_text()) == provenance
    assert provenance["checksum_kind"] == "md5 of file md5s" and len(provenance["checksum"]) == 32
    assert provenance["file_md5"] == {p.name: sources.md5sum(p) for p in EMBEDDED.iterdir()}
    assert only(tmp_path) == ["out"]


def test_a_changed_file_fails_its_md5_and_leaves_nothing(tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(EMBEDDED, folder)
    with open(folder / "movies.csv", "a") as handle:
        handle.write("999999,Extra (2020),Drama\n")
    with pytest.raises(
        DataError, match=r"movies\.csv: md5 mismatch: got [0-9a-f]{32}, expected b252"
    ):
        fetch("ml-latest-small", folder, tmp_path / "out")
    assert only(tmp_path) == ["copy"]


def test_only_the_datasets_own_files_are_taken_from_a_folder(tmp_path):
    """Other files beside the dataset's, and links among them (to /etc/shadow, say), are
    not read or copied; a link that stays in the folder is a file like any other."""
    folder = shutil.copytree(EMBEDDED, tmp_path / "copy")
    (tmp_path / "secret").write_text("root:$6$not-for-the-results\n")
    (folder / "shadow").symlink_to(tmp_path / "secret")
    (folder / "notes.txt").write_text("mine\n")
    (folder / "LICENSE.md").rename(folder / "license.orig")
    (folder / "LICENSE.md").symlink_to("license.orig")
    provenance = fetch("ml-latest-small", folder, tmp_path / "out")
    assert only(tmp_path / "out") == EMBEDDED_OUT
    assert sorted(provenance["file_md5"]) == sorted(p.name for p in EMBEDDED.iterdir())
    assert not (tmp_path / "out" / "LICENSE.md").is_symlink()


def test_only_the_datasets_files_are_unpacked_from_a_zip(tmp_path, monkeypatch):
    """`<folder>/<name>` exactly: a same-named file in another folder does not replace the
    real one, and a file that is not the dataset's is not unpacked (nor its size paid)."""
    archive = tmp_path / "ml-32m.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in ("ratings.csv", "movies.csv"):
            zf.write(EMBEDDED / name, f"ml-32m/{name}")
        zf.writestr("junk/ml-32m/ratings.csv", "userId,movieId,rating,timestamp\n1,1,5.0,1\n")
        zf.writestr("ml-32m/zeros.bin", bytes(10_000_000))
        zf.writestr("ml-32m/../ratings.csv", "userId,movieId,rating,timestamp\n1,1,5.0,1\n")
    fetch("ml-32m", archive, tmp_path / "out")
    assert only(tmp_path / "out") == [
        "movies.parquet",
        "ratings.parquet",
        "source.json",
        "tags.parquet",
    ]
    ratings = read_canonical(tmp_path / "out").ratings
    pd.testing.assert_frame_equal(ratings, read_tables(EMBEDDED, "csv").ratings)
    # the size cap counts the dataset's files only
    ratings, movies = ((EMBEDDED / name).stat().st_size for name in ("ratings.csv", "movies.csv"))
    monkeypatch.setattr(sources, "MAX_UNPACKED", ratings)
    message = f"unpack to {ratings + movies:,} bytes, more than the {ratings:,} accepted"
    with pytest.raises(DataError, match=rf"ml-32m\.zip: the dataset's files {message}"):
        fetch("ml-32m", archive, tmp_path / "out2")
    assert only(tmp_path) == ["ml-32m.zip", "out"]


def test_a_zip_with_the_right_md5_is_extracted_and_parsed(tmp_path, monkeypatch):
    archive = tmp_path / "ml-100k.zip"
    fixture = FIXTURES / "ml-100k"
    files = {p.name: p.read_bytes() for p in fixture.iterdir()}
    md5 = make_zip(archive, "ml-100k", files)
    spec = sources.DatasetSpec("ml-100k", "ml-100k", "ml-100k", FILES_100K, md5=md5)
    monkeypatch.setitem(DATASETS, "ml-100k", spec)
    provenance = fetch("ml-100k", archive, tmp_path / "out")
    assert provenance["checksum"] == md5 and provenance["checksum_kind"] == "md5 of zip"
    assert_same_tables(tmp_path / "out", fixture, "ml-100k")
    # a zip whose data does not parse fails, naming the file inside the zip
    bad = make_zip(tmp_path / "bad.zip", "ml-100k", {**files, "u.item": b"1|Toy Story\n"})
    monkeypatch.setitem(
        DATASETS,
        "ml-100k",
        sources.DatasetSpec("ml-100k", "ml-100k", "ml-100k", FILES_100K, md5=bad),
    )
    with pytest.raises(DataError, match=r"bad\.zip:ml-100k/u\.item:1: expected 24 fields"):
        fetch("ml-100k", tmp_path / "bad.zip", tmp_path / "out2")
    assert not (tmp_path / "out2").exists()


def test_zip_errors_name_the_archive_and_leave_nothing(tmp_path):
    archive = tmp_path / "ml-100k.zip"
    make_zip(archive, "ml-100k", {"u.data": b"1\t2\t3\t4\n"})
    with pytest.raises(DataError, match=r"ml-100k\.zip: md5 mismatch: .* expected 0e33842e"):
        fetch("ml-100k", archive, tmp_path / "out")
    assert only(tmp_path) == ["ml-100k.zip"]


def test_a_truncated_or_corrupt_zip_or_a_missing_member(tmp_path, monkeypatch):
    archive = tmp_path / "ml-1m.zip"
    make_zip(archive, "ml-1m", {"ratings.dat": b"1::2::3::4\n" * 1000, "movies.dat": b"m"})
    monkeypatch.setitem(
        DATASETS,
        "ml-1m",
        sources.DatasetSpec("ml-1m", "ml-1m", "ml-1m", ("ratings.dat", "movies.dat", "users.dat")),
    )
    with pytest.raises(DataError, match=r"ml-1m\.zip: missing ml-1m/users\.dat"):
        fetch("ml-1m", archive, tmp_path / "out")
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"ml-1m\.zip: corrupt or truncated zip"):
        fetch("ml-1m", archive, tmp_path / "out")
    archive.write_bytes(b"userId,movieId,rating,timestamp\n1,1,4.0,964982703\n")
    with pytest.raises(DataError, match=r"ml-1m\.zip: not a zip archive \(it begins b'userId,"):
        fetch("ml-1m", archive, tmp_path / "out")
    archive.write_bytes(b"")
    with pytest.raises(DataError, match=r"ml-1m\.zip: not a zip archive \(it begins b''\)"):
        fetch("ml-1m", archive, tmp_path / "out")
    assert only(tmp_path) == ["ml-1m.zip"]


@pytest.mark.parametrize(("dataset", "then"), [("ml-1m", "download"), ("synthetic", "generate")])
def test_a_folder_of_another_dataset_names_the_source_key(tmp_path, dataset, then):
    """`dataset:` changed, `source:` still the embedded folder: say which key to change."""
    expected = rf"for {dataset}; config key 'source' must be the {dataset} folder or zip, or null"
    with pytest.raises(DataError, match=rf"missing file\(s\) .* {expected} to {then} it"):
        fetch(dataset, EMBEDDED, tmp_path / "out")
    assert only(tmp_path) == []


def deflated_zip(path: Path) -> bytes:
    """The embedded ratings.csv and movies.csv as a deflated ml-32m zip; its bytes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in ("ratings.csv", "movies.csv"):
            zf.write(EMBEDDED / name, f"ml-32m/{name}")
    return path.read_bytes()


def damaged(data: bytes, how: str) -> bytes:
    """A deflated zip damaged as real downloads and tools damage them."""
    start = data.index(b"PK\x03\x04") + 30 + len("ml-32m/ratings.csv")  # first member's data
    central = data.index(b"PK\x01\x02")  # the first member's central directory entry
    if how == "flipped bytes":  # a bad copy: the deflate stream no longer decodes
        bad = bytes(b ^ 0xFF for b in data[start + 100 : start + 164])
        return data[: start + 100] + bad + data[start + 164 :]
    if how == "bytes cut from the middle":  # an interrupted, resumed download
        return data[: start + 50_000] + data[start + 51_000 :]
    if how == "deflate64":  # what Windows Explorer writes for large files
        return data[: central + 10] + (9).to_bytes(2, "little") + data[central + 12 :]
    assert how == "encrypted"  # the general-purpose flag's bit 0, in both headers
    flags = bytearray(data)
    flags[data.index(b"PK\x03\x04") + 6] |= 1
    flags[central + 8] |= 1
    return bytes(flags)


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("flipped bytes", "corrupt or truncated zip"),
        ("bytes cut from the middle", "corrupt or truncated zip"),
        ("deflate64", "unsupported zip: .*compression method"),
        ("encrypted", "unsupported zip: .*encrypted"),
    ],
)
def test_a_damaged_or_unsupported_zip_is_named_and_leaves_nothing(tmp_path, how, message):
    archive = tmp_path / "ml-32m.zip"  # ml-32m: no published md5, so the zip itself is read
    archive.write_bytes(damaged(deflated_zip(archive), how))
    with pytest.raises(DataError, match=rf"ml-32m\.zip: {message}"):
        fetch("ml-32m", archive, tmp_path / "out")
    assert only(tmp_path) == ["ml-32m.zip"]


def test_a_local_zip_is_checked_against_its_sidecar(tmp_path):
    archive = tmp_path / "ml-32m.zip"
    make_zip(archive, "ml-32m", {"ratings.csv": b"h\n", "movies.csv": b"h\n"})
    (tmp_path / "ml-32m.zip.md5").write_text("MD5 (ml-32m.zip) = " + "0" * 32 + "\n")
    with pytest.raises(DataError, match="md5 mismatch"):
        fetch("ml-32m", archive, tmp_path / "out")


def test_md5_sidecar_formats():
    md5 = "6b51fb2759a8657d3bfcbfc42b592ada"
    assert parse_md5_sidecar(f"{md5}  ml-25m.zip\n", "x") == md5
    assert parse_md5_sidecar(f"MD5 (ml-25m.zip) = {md5.upper()}\n", "x") == md5
    with pytest.raises(DataError, match="no md5"):
        parse_md5_sidecar("<html>not found</html>", "x")


def test_bad_names_and_paths_say_which_key(tmp_path):
    with pytest.raises(DataError, match=r"'dataset': unknown dataset 'ml-7m'"):
        fetch("ml-7m", None, tmp_path / "out")
    with pytest.raises(DataError, match=r"'source': .*nowhere does not exist"):
        fetch("ml-latest-small", tmp_path / "nowhere", tmp_path / "out")
    with pytest.raises(DataError, match=r"'source': /dev/zero is not a regular file or folder"):
        fetch("ml-latest-small", Path("/dev/zero"), tmp_path / "out")  # it does exist
    assert only(tmp_path) == []


def test_an_unreachable_host_fails_fast_and_says_how_to_go_offline(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    # refused at once, not waiting out a timeout: the reason is the refusal
    with pytest.raises(
        DataError,
        match=r"cannot download http://127\.0\.0\.1:9/ml-1m\.zip: .*refused.*source:",
    ):
        fetch("ml-1m", None, tmp_path / "out")
    assert only(tmp_path) == []


def test_a_download_over_http_is_verified_with_progress(tmp_path, monkeypatch):
    """A real HTTP server on loopback serves the archive and its md5 sidecar."""
    import functools
    import http.server
    import threading

    served = tmp_path / "served"
    served.mkdir()
    fixture = FIXTURES / "ml-20m"
    files = {p.name: p.read_bytes() for p in fixture.iterdir()}
    md5 = make_zip(served / "ml-32m.zip", "ml-32m", files)
    (served / "ml-32m.zip.md5").write_text(f"{md5}  ml-32m.zip\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=served)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(sources, "BASE_URL", f"http://127.0.0.1:{server.server_port}")
        provenance = fetch("ml-32m", None, tmp_path / "out")
        assert provenance["checksum"] == md5 and provenance["source"].endswith("/ml-32m.zip")
        assert_same_tables(tmp_path / "out", fixture, "csv")
        (served / "ml-32m.zip.md5").write_text("MD5 (ml-32m.zip) = " + "f" * 32 + "\n")
        with pytest.raises(DataError, match=r"^http://127\.0\.0\.1:\d+/ml-32m\.zip: md5 mismatch"):
            fetch("ml-32m", None, tmp_path / "out2")
        assert not (tmp_path / "out2").exists()
    finally:
        server.shutdown()
