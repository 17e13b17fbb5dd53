"""torch's profiler over one training step (forward, backward, optimizer step).

torch.autograd.profiler.profile, the Kineto profiler that torch.profiler.profile wraps:
the wrapper's start imports torch._inductor (a `hasattr(torch, "_inductor")` on torch's
lazy modules), about 2 s of CPU a profile job spends on the compiler it never uses."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch
from loguru import logger
from torch.autograd.profiler import profile, record_function

from deepfm_rec.data.encoding import Encoded, open_encoded
from deepfm_rec.inference import read_checkpoint, resolve_device
from deepfm_rec.train import TrainConfig, build_setup


def profile_step(
    encoded: Encoded,
    checkpoint: Path,
    *,
    batch_size: int,
    warmup: int,
    row_limit: int,
    device: str,
    memory_budget: float,
    trace: Path | None = None,
) -> str:
    """Profile one training step of a trained model after `warmup` steps, set up as train
    set it up (its checkpoint's settings, at `batch_size`) from its trained weights.

    Returns the operator table (sorted by self CPU time, or self CUDA time on a GPU),
    and writes a Chrome trace to `trace` when given.
    """
    device_t = resolve_device(device)
    state = read_checkpoint(checkpoint, device_t)
    config = replace(TrainConfig(**state["train_config"]), batch_size=batch_size)
    setup = build_setup(
        encoded,
        state["model"],
        state["hparams"],
        config,
        seed=state["seed"],
        device=device_t,
        memory_budget=memory_budget,
    )
    model, objective, optimizer = setup.model, setup.objective, setup.optimizer
    model.load_state_dict(state["state_dict"])
    model.embedding.resum()  # the trained weights' bag sums
    generator = torch.Generator().manual_seed(state["seed"])
    epoch = objective.batches(generator)

    def step() -> None:
        nonlocal epoch
        with record_function("gather batch"):
            work = next(epoch, None)
            if work is None:  # the epoch ended: the next one
                epoch = objective.batches(generator)
                work = next(epoch)
        with record_function("forward"):
            loss, _ = objective.loss(model, work)
        optimizer.zero_grad()
        with record_function("backward"):
            loss.backward()
        with record_function("optimizer step"):
            optimizer.step()

    for _ in range(warmup):
        step()
    cuda = device_t.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
    with profile(use_device="cuda" if cuda else None, record_shapes=True, use_kineto=True) as prof:
        step()
        if cuda:
            torch.cuda.synchronize()
    if trace is not None:
        prof.export_chrome_trace(str(trace))
    sort_by = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    table = prof.key_averages().table(sort_by=sort_by, row_limit=row_limit)
    header = (
        f"# one training step of {state['model']} ({config.objective}) on {device_t}, batch "
        f"{batch_size}, after {warmup} warm-up steps; sorted by {sort_by}\n"
    )
    logger.info("profiled {} on {}", state["model"], device_t)
    return header + table


def write_profile(
    encoded: str | Path,
    checkpoint: str | Path,
    *,
    table: str | Path,
    trace: str | Path,
    batch_size: int,
    warmup: int,
    row_limit: int,
    device: str,
    threads: int,
    memory_budget: float,
) -> None:
    """Profile one training step and write the operator table and the Chrome trace."""
    torch.set_num_threads(threads)
    text = profile_step(
        open_encoded(Path(encoded)),
        Path(checkpoint),
        batch_size=batch_size,
        warmup=warmup,
        row_limit=row_limit,
        device=device,
        trace=Path(trace),
        memory_budget=memory_budget,
    )
    Path(table).write_text(text)
