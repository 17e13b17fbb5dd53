"""Running trained models: the device they run on, loading a checkpoint, predicting rows.

Shapes: B batch size. Ratings are in stars.
"""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import torch

from deepfm_rec.data.batches import BatchMaker
from deepfm_rec.data.encoding import Encoded
from deepfm_rec.data.errors import DataError
from deepfm_rec.data.staging import replaced
from deepfm_rec.models import attach_bags, build_model

# set by SLURM (and by most schedulers, CUDA_VISIBLE_DEVICES) in a job given GPUs
GPU_JOB_VARIABLES = ("SLURM_JOB_GPUS", "SLURM_STEP_GPUS", "CUDA_VISIBLE_DEVICES")


def granted_gpus() -> str | None:
    """`NAME=value` of the first variable saying that this process was given GPUs, or None
    (unset, empty, or CUDA_VISIBLE_DEVICES' "no device" values)."""
    for name in GPU_JOB_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value and value not in ("-1", "NoDevFiles", "none"):
            return f"{name}={value}"
    return None


def resolve_device(device: str, key: str = "config key 'device'") -> torch.device:
    """`auto` is CUDA when present, else CPU; other values are passed to torch. A device
    this machine does not have is a DataError naming `key` (where the value came from),
    and so is `auto` in a job that was given GPUs PyTorch cannot see (a driver too old
    for its CUDA, a container run without --nv): it would train on the CPU for hours."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        granted = granted_gpus()
        if granted is not None:
            why = (
                f"a driver older than its CUDA {torch.version.cuda}, or a container run "
                "without --nv"
                if torch.version.cuda
                else "a CPU-only build"
            )
            raise DataError(
                f"{key}: auto, and this job was given GPUs ({granted}) but PyTorch "
                f"{torch.__version__} sees none ({why}); fix that, or set device: cpu"
            )
        return torch.device("cpu")
    try:
        found = torch.device(device)
    except RuntimeError:
        raise DataError(f"{key}: {device!r} is not a device; use auto, cpu or cuda[:N]") from None
    if found.type == "cuda" and (found.index or 0) >= torch.cuda.device_count():
        raise DataError(
            f"{key}: {device!r}, but PyTorch {torch.__version__} sees "
            f"{torch.cuda.device_count()} CUDA device(s); use auto or cpu"
        )
    return found


def clip(prediction: torch.Tensor, meta: dict) -> torch.Tensor:
    """Predictions clipped to the dataset's rating scale (stars)."""
    return prediction.clamp(meta["rating_min"], meta["rating_max"])


@torch.no_grad()
def predict(model: torch.nn.Module, maker: BatchMaker, rows: np.ndarray, batch_size: int):
    """Clipped predictions (float32 numpy, stars) for the given rows, in their order."""
    was_training = model.training
    model.eval()
    out = [clip(model(batch), maker.meta) for batch in maker.batches(rows, batch_size)]
    model.train(was_training)
    return torch.cat(out).cpu().numpy() if out else np.zeros(0, np.float32)


def read_checkpoint(checkpoint: Path, device: torch.device) -> dict:
    """The checkpoint dict written by deepfm_rec.train.train, its tensors on `device`."""
    try:
        with warnings.catch_warnings():  # "Detected pickle protocol 111": not a checkpoint
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(checkpoint, map_location=device, weights_only=True)
        if not isinstance(state, dict) or not {"model", "meta", "state_dict"} <= set(state):
            raise KeyError("model, meta or state_dict")
    # a text file's first byte is a pickle opcode, which raises any of these (/etc/passwd's
    # 'r' an IndexError in the unpickler)
    except (
        OSError,
        EOFError,
        RuntimeError,
        KeyError,
        IndexError,
        ValueError,
        pickle.UnpicklingError,
    ) as error:
        raise DataError(
            f"{checkpoint}: not a checkpoint written by deepfm-rec's training (reading it "
            f"raised {type(error).__name__}); train it again"
        ) from None
    return state


def write_checkpoint(state: dict, checkpoint: Path) -> None:
    """Save the checkpoint dict whole or not at all: a full disk is an OSError naming
    `checkpoint` (torch.save's own error names neither), and leaves no partial file."""
    with replaced(checkpoint) as scratch:
        torch.save(state, scratch)


def model_of(state: dict, checkpoint: Path) -> torch.nn.Module:
    """The model of a checkpoint dict with its trained weights."""
    try:
        objective = state["train_config"]["objective"]
        model = build_model(
            state["model"], state["meta"], objective=objective, sparse=False, **state["hparams"]
        )
        model.load_state_dict(state["state_dict"])
    except (RuntimeError, KeyError, TypeError) as error:
        raise DataError(
            f"{checkpoint}: not a checkpoint written by deepfm-rec's training (reading it "
            f"raised {type(error).__name__}); train it again"
        ) from None
    return model


def load_model(
    checkpoint: Path, device: str = "cpu", encoded: Encoded | None = None
) -> tuple[torch.nn.Module, dict]:
    """The model of a checkpoint written by `train`, in eval mode on `device`, and the
    checkpoint dict; with `encoded` (the folder it was trained on), its bags attached
    (deepfm_rec.models.attach_bags), as a model with multi-valued fields needs to run."""
    device_t = resolve_device(device)
    state = read_checkpoint(Path(checkpoint), device_t)
    model = model_of(state, Path(checkpoint)).to(device_t).eval()
    if encoded is not None:
        attach_bags(model, encoded)
    return model, state
