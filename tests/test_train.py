"""EarlyStopping, and the trainer on real ratings: determinism, best weights, checkpoint."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from deepfm_rec.data.batches import BatchMaker
from deepfm_rec.data.errors import DataError
from deepfm_rec.inference import load_model, predict, read_checkpoint, resolve_device
from deepfm_rec.objectives import Stars
from deepfm_rec.train import (
    EarlyStopping,
    build_setup,
    choice_users,
    fit,
    split_settings,
    train,
    train_model,
)
from settings_helpers import shipped

STAR_HISTORY = ["epoch", *Stars.columns, "lr", "seconds"]


def test_early_stopping_waits_patience_epochs_without_min_delta_improvement():
    stopper = EarlyStopping("valid_mae", mode="min", patience=2, min_delta=0.01)
    assert not stopper.step(1.0, 1)
    assert not stopper.step(0.95, 2)  # improved by 0.05
    assert not stopper.step(0.945, 3)  # 0.005 < min_delta: not an improvement
    assert stopper.step(0.944, 4)  # second epoch without improvement
    assert (stopper.best, stopper.best_epoch) == (0.95, 2)
    assert "did not improve" in stopper.reason and "epoch 2" in stopper.reason


def test_early_stopping_resets_on_improvement_and_handles_max_mode():
    stopper = EarlyStopping("ndcg", mode="max", patience=2, min_delta=0.0)
    assert not stopper.step(0.1, 1)
    assert not stopper.step(0.05, 2)
    assert not stopper.step(0.2, 3)  # improvement resets the wait
    assert not stopper.step(0.2, 4)
    assert stopper.step(0.1, 5)
    assert stopper.best_epoch == 3


def test_early_stopping_stops_on_nan():
    stopper = EarlyStopping("valid_mae", mode="min", patience=5, min_delta=0.0)
    stopper.step(0.8, 1)
    assert stopper.step(math.nan, 2) and "NaN" in stopper.reason
    with pytest.raises(ValueError, match="mode"):
        EarlyStopping("x", mode="sideways", patience=1, min_delta=0.0)


CHANGES = {"lr": 0.003, "batch_size": 256, "max_epochs": 6, "l2": 0.01, "patience": 2}
CONFIG, HPARAMS = shipped(
    "deepfm", "stars", **CHANGES, embed_dim=8, mlp=[16], dropout=0.1, field_dropout=0.3
)


def test_training_is_deterministic_on_cpu(encoded_tiny):
    config = dataclasses.replace(CONFIG, max_epochs=2)  # batches, dropout, updates: 2 epochs
    model_a, history_a, _ = train(encoded_tiny, "deepfm", HPARAMS, config, seed=5, device="cpu")
    model_b, history_b, _ = train(encoded_tiny, "deepfm", HPARAMS, config, seed=5, device="cpu")
    pd.testing.assert_frame_equal(
        history_a.drop(columns="seconds"), history_b.drop(columns="seconds")
    )
    for (name, a), (_, b) in zip(
        model_a.state_dict().items(), model_b.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    _, history_c, _ = train(encoded_tiny, "deepfm", HPARAMS, config, seed=6, device="cpu")
    assert not history_c["valid_mae"].equals(history_a["valid_mae"])


def test_training_learns_and_restores_the_best_epoch(encoded_tiny, tmp_path):
    model, history, kept = train(
        encoded_tiny,
        "fm",
        shipped("fm", "stars", embed_dim=8, fields=None)[1],
        CONFIG,
        seed=1,
        device="cpu",
        checkpoint=tmp_path / "model.pt",
        history=tmp_path / "history.tsv",
    )
    assert list(history.columns) == STAR_HISTORY
    assert history["train_mse"].iloc[-1] < history["train_mse"].iloc[0]
    maker = BatchMaker(encoded_tiny)
    valid = encoded_tiny.rows("valid")
    label = np.asarray(encoded_tiny.arrays["label"])[valid]
    mae = float(np.abs(predict(model, maker, valid, 512) - label).mean())
    assert mae == pytest.approx(history.set_index("epoch").loc[kept, "valid_mae"], abs=1e-5)
    # the checkpoint holds the same model and says which epoch it is
    loaded, state = load_model(tmp_path / "model.pt", "cpu", encoded_tiny)
    assert state["epoch"] == kept
    assert state["best"]["valid_mae"] == pytest.approx(mae, abs=1e-5)
    # the kept epoch is the last one that improved valid MAE by more than min_delta
    improved, best = [], float("inf")
    for epoch, value in zip(history["epoch"], history["valid_mae"], strict=True):
        if value < best - CONFIG.min_delta:
            improved.append(epoch)
            best = value
    assert kept == improved[-1]
    assert {"train_config", "hparams", "seed", "epoch", "best"} <= set(state)
    np.testing.assert_array_equal(
        predict(loaded, maker, valid, 512), predict(model, maker, valid, 512)
    )
    written = pd.read_csv(tmp_path / "history.tsv", sep="\t")
    assert list(written.columns) == STAR_HISTORY and len(written) == len(history)


def test_predictions_are_clipped_to_the_rating_scale(encoded_tiny):
    config, hparams = shipped("fm", "stars", max_epochs=1, embed_dim=4, fields=None)
    model, _, _ = train(encoded_tiny, "fm", hparams, config, seed=0, device="cpu")
    with torch.no_grad():
        model.bias.fill_(100.0)
    rows = encoded_tiny.rows("test")
    assert (predict(model, BatchMaker(encoded_tiny), rows, 128) == 5.0).all()


@pytest.mark.slow
@pytest.mark.parametrize("model", ["fm", "deepfm"])
def test_sparse_updates_keep_the_quality_of_dense_adam(encoded_small, model):
    """The CPU fast path (sparse embedding gradients, SparseAdam) against dense Adam on the
    whole embedded dataset: its test RMSE is no more than 0.005 stars worse."""
    # every field, mean pooling, no field dropout; 4 epochs, where valid MSE has levelled
    # off for both (early stopping ends them at 6 to 11 epochs, 0.002 stars apart or less)
    changes = {"embed_dim": 16, "fields": None, "pooling": "mean", "lr": 0.002, "l2": 0.03}
    changes |= {"max_epochs": 4} | (
        {"mlp": [128, 64, 32], "dropout": 0.2, "field_dropout": 0.0} if model == "deepfm" else {}
    )
    test = encoded_small.rows("test")
    label = np.asarray(encoded_small.arrays["label"])[test]
    rmse = {}
    for optimizer in ("adam", "sparse_adam"):
        config, hparams = shipped(model, "stars", **changes, optimizer=optimizer)
        trained, _, _ = train(encoded_small, model, hparams, config, seed=42, device="cpu")
        prediction = predict(trained, BatchMaker(encoded_small), test, 8192)
        rmse[optimizer] = float(np.sqrt(np.mean((prediction - label) ** 2)))
    assert rmse["sparse_adam"] <= rmse["adam"] + 0.005, rmse
    assert rmse["sparse_adam"] < 0.9, rmse  # and both are real models, near the bias baseline


def test_a_device_this_machine_lacks_names_the_config_key():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    beyond = f"cuda:{torch.cuda.device_count()}"  # one past the last GPU, on any machine
    with pytest.raises(DataError, match=rf"config key 'device': '{beyond}', but PyTorch"):
        resolve_device(beyond)
    with pytest.raises(DataError, match=r"--device: 'tpu0' is not a device"):
        resolve_device("tpu0", key="--device")


@pytest.mark.skipif(torch.cuda.is_available(), reason="PyTorch sees a GPU here")
@pytest.mark.parametrize("variable", ["CUDA_VISIBLE_DEVICES", "SLURM_JOB_GPUS"])
def test_auto_in_a_job_given_gpus_torch_cannot_see_stops_instead_of_training_on_cpu(
    monkeypatch, variable
):
    for name in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_GPUS", "SLURM_STEP_GPUS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")  # "no GPU", as some nodes set it
    assert resolve_device("auto") == torch.device("cpu")
    monkeypatch.setenv(variable, "0")
    with pytest.raises(DataError, match=f"given GPUs \\({variable}=0\\) but PyTorch .* sees none"):
        resolve_device("auto")


class SyncLog(TorchDispatchMode):
    """Counts the ops of a step that wait on the device on CUDA (a host-device sync): a
    tensor read as a Python number, the data-dependent shapes of nonzero, unique and
    boolean indexing, and repeat_interleave without its output size."""

    SYNCS = ("aten._local_scalar_dense", "aten.nonzero", "aten._unique2", "aten.masked_select")
    INDEXING = ("aten.index", "aten.index_put", "aten.index_put_", "aten._index_put_impl_")

    def __init__(self) -> None:
        super().__init__()
        self.syncs: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = str(func.overloadpacket)
        sized = kwargs.get("output_size") is not None
        masks = name in self.INDEXING and any(
            index is not None and index.dtype == torch.bool for index in args[1]
        )
        if name in self.SYNCS or (name == "aten.repeat_interleave" and not sized):
            self.syncs.append(name)
        elif masks:
            self.syncs.append("boolean indexing")
        return func(*args, **kwargs)


# (model, objective): the syncs of one training step of the shipped section, each named
# where it is: RowAdam's rows (sparse_adam), the distinct users of a ranking batch and
# the length of their rated movies (NegativeSampler). Before the bag sums a ranking step
# made about 17; the bags no longer make any.
STEP_SYNCS = {
    ("fm", "stars"): ["aten.nonzero"],
    ("deepfm", "stars"): ["aten.nonzero"],
    ("fm", "ranking"): ["aten._unique2", "aten._local_scalar_dense", "aten.nonzero"],
    ("deepfm", "ranking"): ["aten._unique2", "aten._local_scalar_dense"],
}


@pytest.mark.parametrize(("model", "objective"), list(STEP_SYNCS))
def test_a_training_step_makes_only_the_host_device_syncs_counted_here(
    encoded_small, model, objective
):
    config, hparams = shipped(model, objective)
    setup = build_setup(
        encoded_small, model, hparams, config, seed=0, device="cpu", memory_budget=math.inf
    )
    work = setup.objective.batches(torch.Generator().manual_seed(0))
    for _ in range(3):
        item = next(work)
        with SyncLog() as log:
            loss, _ = setup.objective.loss(setup.model, item)
            setup.optimizer.zero_grad()
            loss.backward()
            setup.optimizer.step()
        assert sorted(log.syncs) == sorted(STEP_SYNCS[model, objective])
    # a refresh of the bag sums, every bag_refresh steps, makes none either
    with SyncLog() as log:
        setup.model.embedding.bags.push(setup.model.embedding.bag_table)
        setup.model.embedding.resum()
    assert log.syncs == []


def test_a_list_of_l2_values_keeps_the_one_best_on_valid_and_later_seeds_take_it(
    encoded_tiny, tmp_path
):
    """train_model with l2 [a, b] trains both (each as train() would alone), keeps the one
    with the lower valid RMSE and records both scores; given that checkpoint as `chosen`,
    another seed trains once with its l2."""
    config, hparams = shipped("fm", "stars", embed_dim=8, max_epochs=4, fields=None)
    settings = dataclasses.asdict(config) | hparams | {"l2": [0.0, 0.5], "l2_rows": None}
    alone = {}
    for l2 in settings["l2"]:
        _, history, kept = train(
            encoded_tiny, "fm", hparams, dataclasses.replace(config, l2=l2), seed=3, device="cpu"
        )
        alone[l2] = math.sqrt(history.set_index("epoch").loc[kept, "valid_mse"])
    assert alone[0.0] != alone[0.5]
    common = {"device": "cpu", "threads": torch.get_num_threads(), "memory_budget": math.inf}
    first = {"checkpoint": tmp_path / "a.pt", "history": tmp_path / "a.tsv"}
    train_model(encoded_tiny.folder, "fm", settings, seed=3, **common, **first)
    state = read_checkpoint(first["checkpoint"], torch.device("cpu"))
    assert state["l2_scores"] == pytest.approx(alone)
    assert state["train_config"]["l2"] == min(alone, key=alone.get)
    later = {"checkpoint": tmp_path / "b.pt", "history": tmp_path / "b.tsv"}
    train_model(
        encoded_tiny.folder, "fm", settings, seed=4, chosen=first["checkpoint"], **common, **later
    )
    again = read_checkpoint(later["checkpoint"], torch.device("cpu"))
    assert again["train_config"]["l2"] == state["train_config"]["l2"] and again["seed"] == 4
    assert "l2_scores" not in again
    with pytest.raises(ValueError, match="l2 is one number"):
        split_settings(settings)


def test_a_large_train_split_chooses_l2_on_a_sample_of_users_then_trains_on_all(
    encoded_tiny, tmp_path
):
    """With fewer l2_rows than train rows, each l2 trains on choice_users' sample (as fit
    on those users alone would), and the chosen one then trains on every row (as train()
    would): the checkpoint and history are that model's, the sample's size recorded."""
    config, hparams = shipped("fm", "stars", embed_dim=8, max_epochs=4, fields=None)
    train_rows = encoded_tiny.rows("train")
    rows = len(train_rows) // 3
    settings = dataclasses.asdict(config) | hparams | {"l2": [0.0, 0.5], "l2_rows": rows}
    users = choice_users(encoded_tiny, rows, seed=3)
    taken = users[np.asarray(encoded_tiny.arrays["user"])[train_rows]]
    assert 0 < taken.sum() <= rows and not taken.all()
    assert (choice_users(encoded_tiny, rows, seed=3) == users).all()
    assert choice_users(encoded_tiny, len(train_rows), seed=3) is None
    assert choice_users(encoded_tiny, None, seed=3) is None
    sampled = {}
    for l2 in settings["l2"]:
        one = dataclasses.replace(config, l2=l2)
        trained = fit(encoded_tiny, "fm", hparams, one, seed=3, device="cpu", users=users)
        assert len(trained.table) == 4  # it trained (on fewer rows: see test_objectives)
        sampled[l2] = trained.score
    best = min(sampled, key=sampled.get)
    common = {"device": "cpu", "threads": torch.get_num_threads(), "memory_budget": math.inf}
    paths = {"checkpoint": tmp_path / "a.pt", "history": tmp_path / "a.tsv"}
    history, kept = train_model(encoded_tiny.folder, "fm", settings, seed=3, **common, **paths)
    state = read_checkpoint(paths["checkpoint"], torch.device("cpu"))
    assert state["l2_scores"] == pytest.approx(sampled)
    train_users = set(np.asarray(encoded_tiny.arrays["user"])[train_rows])
    assert set(np.flatnonzero(users)) < train_users  # users with train rows only
    assert state["l2_users"] == [int(users.sum()), len(train_users)]
    assert state["train_config"]["l2"] == best
    _, alone, alone_kept = train(
        encoded_tiny, "fm", hparams, dataclasses.replace(config, l2=best), seed=3, device="cpu"
    )
    assert kept == alone_kept
    pd.testing.assert_frame_equal(history.drop(columns="seconds"), alone.drop(columns="seconds"))
