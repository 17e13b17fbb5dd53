"""Bad input through the real rules: a damaged download or dataset, a full disk, a killed
job's leftovers; each one clear line and nothing half-written."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from deepfm_rec.data.errors import DataError
from deepfm_rec.data.sources import fetch
from workflow_helpers import (
    FIXTURES,
    TINY,
    copy_project,
    edit_config,
    error_messages,
    full_disk,
    snakemake,
)


def zip_folder(archive: Path, folder: Path, inside: str, skip: tuple[str, ...] = ()) -> Path:
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.iterdir()):
            if path.name not in skip:
                zf.write(path, f"{inside}/{path.name}")
    return archive


def broken_ratings(tmp_path: Path, line: int, text: str | None) -> Path:
    """A copy of the ml-10m fixture with one ratings line replaced (None empties the file)."""
    folder = shutil.copytree(FIXTURES / "ml-10m" / "ml-10M100K", tmp_path / "ml-10M100K")
    path = folder / "ratings.dat"
    lines = path.read_text().splitlines(keepends=True)
    if text is None:
        lines = []
    else:
        lines[line - 1] = text + "\n"
    path.write_text("".join(lines))
    return folder


def corrupt_zip(tmp_path):
    (tmp_path / "ml-32m.zip").write_bytes(b"PK\x03\x04 this is not really a zip" * 10)
    return "ml-32m", tmp_path / "ml-32m.zip"


def truncated_zip(tmp_path):
    archive = zip_folder(tmp_path / "ml-32m.zip", FIXTURES / "ml-20m", "ml-32m")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    return "ml-32m", archive


def md5_mismatch(tmp_path):
    return "ml-100k", zip_folder(tmp_path / "ml-100k.zip", FIXTURES / "ml-100k", "ml-100k")


def missing_member(tmp_path):
    archive = tmp_path / "ml-32m.zip"
    return "ml-32m", zip_folder(archive, FIXTURES / "ml-20m", "ml-32m", skip=("movies.csv",))


def link_out_of_the_folder(tmp_path):
    """tags.csv of an ml-20m folder is a link to a file outside it (/etc/shadow, say)."""
    folder = shutil.copytree(FIXTURES / "ml-20m", tmp_path / "ml-20m")
    (tmp_path / "secret").write_text("root:$6$not-for-the-results:19000:0:99999:7:::\n")
    (folder / "tags.csv").unlink()
    (folder / "tags.csv").symlink_to(tmp_path / "secret")
    return "ml-20m", folder


def zip_bomb(tmp_path):
    """A deflated ml-32m zip whose README.txt is 10 MB of zeros (1000 times its packed size)."""
    archive = zip_folder(tmp_path / "ml-32m.zip", FIXTURES / "ml-20m", "ml-32m")
    with zipfile.ZipFile(archive, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ml-32m/README.txt", bytes(10_000_000))
    return "ml-32m", archive


def member_twice(tmp_path):
    archive = zip_folder(tmp_path / "ml-32m.zip", FIXTURES / "ml-20m", "ml-32m")
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(archive, "a") as zf:
        zf.writestr("ml-32m/ratings.csv", "userId,movieId,rating,timestamp\n1,1,5.0,1\n")
    return "ml-32m", archive


BAD_INPUT = {
    "corrupt zip": (corrupt_zip, r"ml-32m.zip: corrupt or truncated zip"),
    "truncated zip": (truncated_zip, r"ml-32m.zip: corrupt or truncated zip"),
    "a file that is not a zip": (
        lambda t: ("ml-32m", FIXTURES / "ml-20m" / "ratings.csv"),
        r"ratings.csv: not a zip archive (it begins b'userId,movieId,r'); a source is",
    ),
    "md5 mismatch": (md5_mismatch, r"ml-100k.zip: md5 mismatch: got "),
    "missing file in the archive": (missing_member, r"ml-32m.zip: missing ml-32m/movies.csv"),
    "malformed line": (
        lambda t: ("ml-10m", broken_ratings(t, 3, "1::122")),
        r"ratings.dat:3: expected 4 fields separated by '::', found 2",
    ),
    "non-numeric rating": (
        lambda t: ("ml-10m", broken_ratings(t, 4, "1::185::four::838983525")),
        r"ratings.dat:4: Rating is not a number: 'four'",
    ),
    "out-of-range rating": (
        lambda t: ("ml-10m", broken_ratings(t, 5, "1::231::7.5::838983392")),
        r"ratings.dat:5: rating 7.5 is outside the 0.5-5 star scale",
    ),
    "a 10 MB field": (
        lambda t: ("ml-10m", broken_ratings(t, 4, f"1::{'x' * 10_000_000}::4.0::838983525")),
        f"ratings.dat:4: MovieID is not a number: '{'x' * 80}'… (10,000,000 characters)",
    ),
    "empty ratings file": (
        lambda t: ("ml-10m", broken_ratings(t, 0, None)),
        r"ratings.dat: no ratings (the file is empty)",
    ),
    "a link out of the source folder": (
        link_out_of_the_folder,
        r"ml-20m/tags.csv: a link to ",
    ),
    "a zip bomb": (
        zip_bomb,
        r"ml-32m.zip: ml-32m/README.txt unpacks to 10,000,000 bytes from ",
    ),
    "a file twice in the zip": (
        member_twice,
        r"ml-32m.zip: ml-32m/ratings.csv is in it 2 times; which one is the data?",
    ),
    "source path that does not exist": (
        lambda t: ("ml-1m", t / "nowhere" / "ml-1m.zip"),
        r"nowhere/ml-1m.zip",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_one_data_error_that_leaves_nothing(tmp_path, case):
    """Each case fetched as the download job fetches it: a DataError, which the job prints
    as its one line (logs.route_to; three cases through the workflow below), naming what
    is wrong, and no dataset or scratch folder left in resources/."""
    make, message = BAD_INPUT[case]
    inputs, resources = tmp_path / "inputs", tmp_path / "resources"
    inputs.mkdir()
    resources.mkdir()
    dataset, source = make(inputs)
    with pytest.raises(DataError) as error:
        fetch(dataset, source, resources / dataset)
    assert message in str(error.value) and len(str(error.value)) < 500
    assert not list(resources.iterdir())


# An archive, a dataset's own file and the config's source path (checked as the workflow
# starts) through the workflow: one error line and nothing half-written past it
@pytest.mark.workflow
@pytest.mark.parametrize(
    "case", ["corrupt zip", "malformed line", "source path that does not exist"]
)
def test_bad_input_fails_the_workflow_with_one_clear_line_and_leaves_nothing(tmp_path, case):
    make, message = BAD_INPUT[case]
    project = copy_project(tmp_path / "project")
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    dataset, source = make(inputs)
    edit_config(project, {**TINY, "dataset": dataset, "source": str(source)})
    result = snakemake(project, "results/report.html", check=False)
    assert result.returncode != 0
    # one error line (printed to the terminal and to the log, so it may appear twice),
    # with the expected message, and no traceback
    assert "Traceback" not in result.stdout, result.stdout[-3000:]
    errors = set(error_messages(result.stdout))
    assert len(errors) == 1, result.stdout[-3000:]
    error = errors.pop()
    assert message in error and len(error) < 500, result.stdout[-3000:]
    # nothing half-written: no dataset folder, no scratch folder, no table past the failure
    assert not (project / "resources" / dataset).exists()
    assert [p.name for p in (project / "resources").iterdir()] == ["embedded"]
    assert not (project / "results" / dataset / "users.tsv").exists()
    assert not (project / "results" / dataset / "encoded").exists()


@pytest.mark.workflow
def test_ratings_that_never_reach_the_relevance_threshold_name_its_key(tmp_path):
    """All ratings 3 stars: no test movie is relevant, so no ranking can be scored."""
    folder = shutil.copytree(FIXTURES / "ml-20m", tmp_path / "ml-20m")
    ratings = pd.read_csv(folder / "ratings.csv").assign(rating=3.0)
    ratings.to_csv(folder / "ratings.csv", index=False)
    project = copy_project(tmp_path / "project")
    edit_config(project, {**TINY, "dataset": "ml-20m", "source": str(folder)})
    result = snakemake(project, "results/ml-20m/baselines.json", check=False)
    assert result.returncode != 0 and "Traceback" not in result.stdout, result.stdout[-3000:]
    assert set(error_messages(result.stdout)) == {
        "DataError: no test rating (of a user with train ratings) reaches config key "
        "'ranking.threshold' (4.0 stars; test ratings span 3.0-3.0 stars): no movie is "
        "relevant to rank; lower the threshold"
    }, result.stdout[-3000:]
    assert not (project / "results" / "ml-20m" / "baselines.json").exists()
    # download and encode of the ml-20m layout ran: MovieLens 20M has no user table
    meta = json.loads((project / "results/ml-20m/encoded/meta.json").read_text())
    assert meta["users_origin"] == ["synthetic"] and meta["rows"] == 50


@pytest.mark.workflow
def test_a_full_disk_is_one_line_naming_the_output_and_leaves_nothing(tmp_path):
    """results/ on a 1 MB file system: users.tsv fits, the encoded arrays do not (numpy
    said "OSError: 100836 requested and 87008 written", in a traceback)."""
    project = copy_project(tmp_path / "project")
    results = project / "results"
    with full_disk(results):
        result = snakemake(project, "results/ml-latest-small/encoded", check=False)
        left = sorted(p.name for p in (results / "ml-latest-small").iterdir())
    assert result.returncode != 0 and "Traceback" not in result.stdout, result.stdout[-3000:]
    assert {line for line in result.stdout.splitlines() if line.startswith("OSError")} == {
        "OSError: the disk is full (No space left on device) writing "
        "results/ml-latest-small/encoded; free space or quota"
    }, result.stdout[-3000:]
    assert left == ["users.tsv"]  # no scratch folder


@pytest.mark.workflow
def test_a_disk_that_fills_while_a_checkpoint_is_written_is_one_line_and_leaves_nothing(
    tmp_path,
):
    """The FM's folder on a 1 MB file system: history.tsv fits, model.pt does not
    (torch.save said "unexpected pos 7168 vs 7060", in a traceback)."""
    project = copy_project(tmp_path / "project")
    edit_config(project, {**TINY, "fm": {"stars": {"max_epochs": 1, "embed_dim": 64}}})
    snakemake(project, "results/ml-latest-small/encoded")
    fm = project / "results/ml-latest-small/fm"
    with full_disk(fm):  # not the seed folder: Snakemake removes it when the job fails
        result = snakemake(project, "results/ml-latest-small/fm/stars/seed7/model.pt", check=False)
        left = sorted(str(p.relative_to(fm)) for p in fm.rglob("*"))
    assert result.returncode != 0 and "Traceback" not in result.stdout, result.stdout[-3000:]
    assert {line for line in result.stdout.splitlines() if line.startswith("OSError")} == {
        "OSError: the disk is full (No space left on device) writing "
        "results/ml-latest-small/fm/stars/seed7/model.pt; free space or quota"
    }, result.stdout[-3000:]
    assert not [name for name in left if "model.pt" in name], left


@pytest.mark.workflow
@pytest.mark.parametrize("source", ["zip", "folder"])
def test_a_rerun_removes_the_scratch_folders_a_killed_download_left(tmp_path, source):
    """kill -9 of download leaves resources/.{dataset}.XXXXXXXX/ (the unpacked zip, the
    tables half-written: about 1 GB at ml-32m); no rerun removed them."""
    project = copy_project(tmp_path / "project")
    embedded = project / "resources/embedded/ml-latest-small"
    if source == "zip":
        with zipfile.ZipFile(tmp_path / "ml-latest-small.zip", "w") as archive:
            for path in embedded.iterdir():
                archive.write(path, f"ml-latest-small/{path.name}")
        edit_config(project, {"source": str(tmp_path / "ml-latest-small.zip")})
    resources = project / "resources"
    left = [resources / ".ml-latest-small.k3x_9q0a", resources / ".ml-latest-small.0f8wz1b2"]
    for scratch in left:  # as a killed job leaves them: a staging and an unpacked folder
        (scratch / "ml-latest-small").mkdir(parents=True)
        shutil.copy(embedded / "ratings.csv", scratch / "ml-latest-small" / "ratings.csv")
    (resources / ".ml-latest-small.notes").mkdir()  # not a scratch folder's name: kept
    snakemake(project, "resources/ml-latest-small")
    hidden = sorted(p.name for p in resources.iterdir() if p.name.startswith("."))
    assert hidden == [".ml-latest-small.notes"]
    assert (resources / "ml-latest-small" / "ratings.parquet").is_file()


@pytest.mark.workflow
def test_an_encoded_array_deleted_after_encode_is_one_line_naming_it(tmp_path):
    """Snakemake does not look inside a directory output: the next rule reads the damage."""
    project = copy_project(tmp_path / "project")
    snakemake(project, "results/ml-latest-small/encoded")
    (project / "results/ml-latest-small/encoded/label.npy").unlink()
    result = snakemake(project, "results/ml-latest-small/baselines.json", check=False)
    assert result.returncode != 0 and "Traceback" not in result.stdout, result.stdout[-3000:]
    assert set(error_messages(result.stdout)) == {
        "DataError: results/ml-latest-small/encoded/label.npy: missing; encode it again "
        "(snakemake --forcerun encode)"
    }, result.stdout[-3000:]
