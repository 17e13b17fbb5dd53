"""The `deepfm-rec` console script on a freshly trained checkpoint: its `main()` in this
process, and as the installed script in a subprocess where the process is what a test
checks (the entry point, the exit status, Ctrl-C)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from loguru import logger

from deepfm_rec.cli import main
from deepfm_rec.config import SCHEMA
from deepfm_rec.data.catalogue import read_items
from deepfm_rec.recommend import Recommender
from deepfm_rec.train import train
from settings_helpers import ROOT, shipped
from workflow_helpers import copy_project, edit_config

pytestmark = pytest.mark.slow  # trains the checkpoints, runs searches

FIELDS = ["user", "item", "genres", "history", "raters"]
# the installed console script (or the module, where the venv has no script)
SCRIPT = Path(sys.executable).with_name("deepfm-rec")
CONSOLE_SCRIPT = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "deepfm_rec.cli"]


@pytest.fixture(scope="module")
def results(encoded_tiny, tmp_path_factory) -> Path:
    """results/{dataset}/ as the workflow lays it out: encoded/ and
    deepfm/{stars,ranking}/seed0/model.pt."""
    dataset = tmp_path_factory.mktemp("project") / "results" / "ml-latest-small"
    shutil.copytree(encoded_tiny.folder, dataset / "encoded")
    changes = {"embed_dim": 8, "mlp": [16], "fields": FIELDS, "max_epochs": 1, "lr": 0.01}
    for objective in ("stars", "ranking"):
        (dataset / "deepfm" / objective / "seed0").mkdir(parents=True)
        config, hparams = shipped("deepfm", objective, **changes, batch_size=512, negatives=100)
        checkpoint = dataset / "deepfm" / objective / "seed0" / "model.pt"
        train(encoded_tiny, "deepfm", hparams, config, seed=0, device="cpu", checkpoint=checkpoint)
    return dataset


def run(*args: str, cwd: Path | None = None, process: bool = False) -> subprocess.CompletedProcess:
    """`deepfm-rec args` in `cwd`: the installed console script in a subprocess (`process`),
    or `main()` here, the same code without a process importing torch each time. An
    exception that main() lets out fails the test, as a traceback on stderr would."""
    if process:
        command = [*CONSOLE_SCRIPT, *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=cwd)
    stdout, stderr, status = io.StringIO(), io.StringIO(), 0
    threads = torch.get_num_threads()  # main() sets the thread count of this process
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(contextlib.chdir(cwd or os.getcwd()))
            stack.enter_context(contextlib.redirect_stdout(stdout))
            stack.enter_context(contextlib.redirect_stderr(stderr))
            try:
                main(list(args))
            except SystemExit as exit:
                status = exit.code if isinstance(exit.code, int) else int(exit.code is not None)
    finally:
        logger.remove()  # main() pointed the log at the captured stderr
        logger.add(sys.stderr)
        torch.set_num_threads(threads)
    return subprocess.CompletedProcess(
        ["deepfm-rec", *args], status, stdout.getvalue(), stderr.getvalue()
    )


def test_recommend_prints_k_rows_and_the_users_favourites(results, encoded_tiny):
    ids = encoded_tiny.arrays["user_ids"]
    user = int(ids[7])
    model = str(results / "deepfm" / "stars" / "seed0" / "model.pt")
    done = run(
        "recommend",
        "--model",
        model,
        "--user",
        str(user),
        "-k",
        "7",
        "--device",
        "cpu",
        "--exclude",
        "train",
        process=True,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"Top 7 for user {user} by DeepFM trained for stars")
    assert lines[1].split() == ["rank", "stars", "score", "title", "genres"]
    rows = lines[2:9]
    assert [int(r.split()[0]) for r in rows] == list(range(1, 8))
    assert lines[9].startswith("stars: the predicted rating, clipped")
    assert lines[10] == "" and lines[11].startswith("Their highest-rated movies in train (5 of")
    # the same list as the library's, title for title, its scores and their clipped stars
    recommender = Recommender.from_checkpoint(model, encoded_tiny, "cpu")
    items, scores = recommender.top_k(np.array([7]), 7)
    titles = read_items(encoded_tiny.folder).loc[items[0], "title"]
    for row, title, score in zip(rows, titles, scores[0], strict=True):
        stars = min(max(score, 0.5), 5.0)
        assert row.split()[1:3] == [f"{stars:.2f}", f"{score:.2f}"] and title[:40] in row


def test_by_default_the_studys_ranking_model_recommends(results, encoded_tiny):
    """In the project folder, with no --model, the config's recommender (the ranking
    DeepFM of the first seed) lists its scores, no stars, and no movie already rated."""
    project = results.parent.parent
    (project / "config").mkdir(exist_ok=True)
    (project / "workflow" / "schemas").mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / SCHEMA, project / SCHEMA)  # the defaults of what the config leaves out
    (project / "config" / "config.yaml").write_text(
        "dataset: ml-latest-small\nseeds: [0, 1]\nrecommend: {model: deepfm, objective: ranking}\n"
    )
    user = int(encoded_tiny.arrays["user_ids"][4])
    done = run("recommend", "--user", str(user), "-k", "5", "--device", "cpu", cwd=project)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    model = Path("results/ml-latest-small/deepfm/ranking/seed0/model.pt")
    assert lines[0].startswith(f"Top 5 for user {user} by DeepFM trained for ranking ({model})")
    assert lines[1].split() == ["rank", "score", "title", "genres"]
    assert lines[7].startswith("score: the ranking model's logit")
    recommender = Recommender.from_checkpoint(project / model, encoded_tiny, "cpu")
    items, _ = recommender.top_k(np.array([4]), 5, "train+valid")
    titles = read_items(encoded_tiny.folder).loc[items[0], "title"]
    assert all(t[:40] in row for t, row in zip(titles, lines[2:7], strict=True))
    (project / "config" / "config.yaml").unlink()
    alone = run("recommend", "--user", str(user), cwd=project)
    assert alone.returncode == 2 and "no config/config.yaml and workflow/schemas" in alone.stderr


def test_unknown_user_and_missing_files_fail_cleanly(results, tmp_path):
    model = str(results / "deepfm" / "stars" / "seed0" / "model.pt")
    done = run("recommend", "--model", model, "--user", "999999", "--device", "cpu")
    assert done.returncode == 2 and done.stdout == ""
    assert "error: --user 999999: no such user in the train split" in done.stderr
    assert "Traceback" not in done.stderr
    missing = run("recommend", "--model", str(tmp_path / "none.pt"), "--user", "1")
    assert missing.returncode == 2 and "no such checkpoint" in missing.stderr
    no_encoded = run(
        "recommend", "--model", model, "--user", "1", "--encoded", str(tmp_path / "nowhere")
    )
    assert no_encoded.returncode == 2 and "not an encoded folder" in no_encoded.stderr


@pytest.mark.parametrize(
    ("case", "bad_model", "device", "expected"),
    [
        ("truncated checkpoint", "truncated", "cpu", "model.pt: not a checkpoint written by"),
        ("empty file", "empty", "cpu", "model.pt: not a checkpoint written by"),
        ("meta.json given as the model", "meta", "cpu", "model.pt: not a checkpoint written by"),
        ("a text file, /etc/passwd", "passwd", "cpu", "model.pt: not a checkpoint written by"),
        ("no such device", None, "gpu", "--device: 'gpu' is not a device"),
        ("a GPU this machine lacks", None, "cuda:99", "--device: 'cuda:99', but PyTorch"),
    ],
)
def test_a_bad_checkpoint_or_device_fails_cleanly(
    results, tmp_path, case, bad_model, device, expected
):
    user = str(np.load(results / "encoded" / "user_ids.npy")[1])
    model = tmp_path / "model.pt"
    good = (results / "deepfm" / "stars" / "seed0" / "model.pt").read_bytes()
    model.write_bytes(
        {
            None: good,
            "truncated": good[:5000],
            "empty": b"",
            "meta": (results / "encoded" / "meta.json").read_bytes(),
            "passwd": b"root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/bin/sh\n",
        }[bad_model]
    )
    done = run(
        "recommend",
        "--model",
        str(model),
        "--user",
        user,
        "--encoded",
        str(results / "encoded"),
        "--device",
        device,
    )
    assert done.returncode == 2 and done.stdout == "", case
    assert expected in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert "weights_only" not in done.stderr  # torch's advice to load unsafely is not passed on


def test_a_file_of_any_first_byte_is_not_a_checkpoint(tmp_path):
    """16 of the 256 first bytes of a text file raised an IndexError in the unpickler."""
    import torch

    from deepfm_rec.data.errors import DataError
    from deepfm_rec.inference import read_checkpoint

    path = tmp_path / "model.pt"
    for first in range(256):
        path.write_bytes(bytes([first]) + b"oot:x:0:0:root:/root:/bin/bash\n")
        with pytest.raises(DataError, match="not a checkpoint written by deepfm-rec"):
            read_checkpoint(path, torch.device("cpu"))


def damage(folder: Path, how: str) -> str:
    """Damage an encoded folder as a person or a full disk might; the file it names."""
    if how == "deleted":
        (folder / "label.npy").unlink()
        return "label.npy: missing"
    if how == "truncated":
        path = folder / "genres.bag.npy"
        path.write_bytes(path.read_bytes()[:1000])
        return "genres.bag.npy: not a whole .npy array (mmap length is greater than file size)"
    if how == "another dtype":
        user = np.load(folder / "user.npy")
        np.save(folder / "user.npy", user.astype(np.int64))
        return f"user.npy: int64 ({len(user)},), but encode wrote int32 ({len(user)},)"
    if how == "no list of arrays":  # a meta.json of an older version
        meta = json.loads((folder / "meta.json").read_text())
        (folder / "meta.json").write_text(
            json.dumps({k: v for k, v in meta.items() if k != "arrays"})
        )
        return "meta.json: no list of arrays ('arrays')"
    if how == "no items.tsv":
        (folder / "items.tsv").unlink()
        return "items.tsv: missing"
    if how == "garbled items.tsv":
        (folder / "items.tsv").write_bytes(bytes(range(256)) * 4)
        return "items.tsv: not the movie table encode wrote (UnicodeDecodeError)"
    assert how == "items.tsv cut short"
    path = folder / "items.tsv"
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:50]))
    n_movies = len(np.load(folder / "item_ids.npy")) - 1  # code 0 is no movie
    return (
        "items.tsv: not the movie table encode wrote (a title and genres for each movie "
        f"code 1..{n_movies})"
    )


@pytest.mark.parametrize(
    "how",
    [
        "deleted",
        "truncated",
        "another dtype",
        "no list of arrays",
        "no items.tsv",
        "garbled items.tsv",
        "items.tsv cut short",
    ],
)
def test_a_damaged_encoded_folder_is_a_usage_error_naming_the_file(results, tmp_path, how):
    encoded = shutil.copytree(results / "encoded", tmp_path / "encoded")
    expected = damage(encoded, how)
    user = str(np.load(results / "encoded" / "user_ids.npy")[1])
    done = run(
        "recommend",
        "--model",
        str(results / "deepfm" / "stars" / "seed0" / "model.pt"),
        "--user",
        user,
        "--encoded",
        str(encoded),
        "--device",
        "cpu",
    )
    assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"deepfm-rec recommend: error: {encoded}/{expected}; encode it again "
        "(snakemake --forcerun encode)"
    ), done.stderr


@pytest.fixture(scope="module")
def tune_project(tmp_path_factory) -> Path:
    """A project folder to run `deepfm-rec tune` in, its FM stars trainings one epoch."""
    project = copy_project(tmp_path_factory.mktemp("tune"))
    edit_config(project, {"fm": {"stars": {"max_epochs": 1}}})
    return project


def tune(project: Path, encoded, *args: str) -> subprocess.CompletedProcess:
    return run(
        "tune",
        "--model",
        "fm",
        "--encoded",
        str(encoded.folder),
        "--threads",
        "1",
        *args,
        cwd=project,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trials", "0"], "--trials 0: the search needs at least one trial"),
        (["--trials", "-1"], "--trials -1: the search needs at least one trial"),
        (["--seed", "-1"], "--seed(s) -1: a seed is 0 to 4294967295 (2^32 - 1)"),
        (
            ["--seeds", "1", "18446744073709551617"],
            "--seed(s) 18446744073709551617: a seed is 0 to 4294967295 (2^32 - 1)",
        ),
        (["--threads", "0"], "--threads 0: at least one thread"),
        (["--show", "-1"], "--show -1: a number of trials, 0 or more"),
        (
            ["--out", "/nonexistent/dir/t.tsv"],
            "--out /nonexistent/dir/t.tsv: cannot write a "
            "file there (a folder, or its folder missing or not writable)",
        ),
        (["--device", "cuda:99"], "--device: 'cuda:99', but PyTorch"),
        (["--device", "gpu"], "--device: 'gpu' is not a device; use auto, cpu or cuda[:N]"),
    ],
)
def test_tune_refuses_bad_arguments_before_it_trains(
    tune_project, encoded_tiny, tmp_path, args, message
):
    out = tmp_path / "t.tsv"
    done = tune(tune_project, encoded_tiny, "--out", str(out), *args)
    assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1].startswith(f"deepfm-rec tune: error: {message}"), (
        done.stderr
    )
    assert not out.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"seeds: [1, 2\n", "config/config.yaml is not valid YAML: while parsing a flow "),
        (b"- 1\n", "config/config.yaml: a YAML list, not a mapping of config keys to values"),
        (b"\xff\xfe\x00", "config/config.yaml: not UTF-8 text (byte 0xff at offset 0)"),
        (b"", "config/config.yaml: empty; write {} for the shipped settings"),
        (
            b"fm: {stars: {batch_size: 0}}\n",
            "config/config.yaml: config key 'fm.stars.batch_size': 0 is less than the minimum of 1",
        ),
        (
            b"fm: {stars: {batchsize: 64}}\n",
            "config/config.yaml: config key 'fm.stars.batchsize': "
            "no such key in section 'fm.stars'; did you mean 'batch_size'?",
        ),
        (  # a trial trains one l2: the section's choice between several must be drawn
            b"tune: {space: {l2: null}}\n",
            "config key 'fm.stars.l2': [0.011, 0.1] is a choice the study makes, which a "
            "search does not",
        ),
    ],
)
def test_tune_refuses_a_bad_config_file_in_one_line(tmp_path, encoded_tiny, content, message):
    project = copy_project(tmp_path / "project")
    (project / "config" / "config.yaml").write_bytes(content)
    done = tune(project, encoded_tiny, "--out", str(tmp_path / "t.tsv"))
    assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1].startswith(f"deepfm-rec tune: error: {message}"), (
        done.stderr
    )


def test_tune_without_the_models_section_searches_from_the_defaults(tmp_path, encoded_tiny):
    project = copy_project(tmp_path / "project")
    (project / "config" / "config.yaml").write_text("seed: 1\n")  # no fm, no dataset
    out = tmp_path / "t.tsv"
    done = tune(project, encoded_tiny, "--trials", "1", "--out", str(out))
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(out, sep="\t")
    assert list(table["embed_dim"]) == [32] and list(table["lr"]) == [0.0008]  # fm.stars's


def test_tune_writes_each_trial_as_it_ends(tune_project, encoded_tiny, tmp_path):
    """An interrupted search keeps the trials it ran (they were written only at the end)."""
    out = tmp_path / "t.tsv"
    said = tune_project / "interrupted-search.err"  # outside tmp_path, whose files are checked
    command = [*CONSOLE_SCRIPT, "tune", "--model", "fm", "--encoded", str(encoded_tiny.folder)]
    command += ["--threads", "1", "--trials", "100000", "--out", str(out)]
    # a user's foreground command: Ctrl-C's default action (a test run in the background,
    # `pytest &` in a script, starts with SIGINT ignored, and its children inherit that)
    default_ctrl_c = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
    with said.open("w") as stderr:  # the child has its own copy of the descriptor
        search = subprocess.Popen(
            command,
            cwd=tune_project,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            preexec_fn=default_ctrl_c,
        )
    try:
        deadline = time.monotonic() + 300  # the first trial trains up to 50 epochs
        while not out.exists() and search.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert out.exists() and search.poll() is None, "no trial written while it searched"
        # Ctrl-C, as a user interrupts it: the search stops, in a second here
        search.send_signal(signal.SIGINT)
        search.wait(timeout=60)
    finally:
        if search.poll() is None:  # a failed assert above; SIGKILL only to clean up
            search.kill()
            search.wait()
    message = said.read_text()
    assert search.returncode == 130, message[-2000:]
    assert message.endswith(f"deepfm-rec tune: interrupted; the trials that ended are in {out}\n")
    table = pd.read_csv(out, sep="\t")
    assert 1 <= len(table) < 100000 and table["valid_rmse"].notna().all()
    assert [p.name for p in tmp_path.iterdir()] == ["t.tsv"]  # no scratch file left


def test_a_deleted_meta_json_names_the_encoded_folder(results, tmp_path):
    """Not the model's grandparent (results/{dataset}/deepfm/stars/encoded, no such folder)."""
    dataset = shutil.copytree(results, tmp_path / "ml-latest-small")
    (dataset / "encoded" / "meta.json").unlink()
    done = run(
        "recommend",
        "--model",
        str(dataset / "deepfm/stars/seed0/model.pt"),
        "--user",
        "1",
        "--device",
        "cpu",
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1].startswith(
        f"deepfm-rec recommend: error: --encoded {dataset / 'encoded'}: not an encoded folder "
        "(no meta.json)"
    ), done.stderr


def test_a_k_beyond_the_catalogue_is_refused(results, encoded_tiny):
    """-k 10^12 tried to allocate terabytes."""
    user = str(encoded_tiny.arrays["user_ids"][1])
    n_movies = len(encoded_tiny.arrays["item_ids"]) - 1
    for k in (10**12, n_movies + 1):
        done = run(
            "recommend",
            "--model",
            str(results / "deepfm/stars/seed0/model.pt"),
            "--user",
            user,
            "-k",
            str(k),
            "--device",
            "cpu",
        )
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert done.stderr.splitlines()[-1] == (
            f"deepfm-rec recommend: error: -k {k}: more than the {n_movies} movies of "
            f"{results / 'encoded'}"
        ), done.stderr


def test_a_config_of_random_bytes_is_one_line(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_bytes(bytes(range(128, 256)))
    done = run("recommend", "--user", "1", cwd=tmp_path, process=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1] == (
        "deepfm-rec recommend: error: config/config.yaml: not UTF-8 text (byte 0x80 at offset "
        "0); a config is a YAML file; or give --model, -k, --exclude, --device"
    ), done.stderr
