"""deepfm_rec.optim against torch.optim, whose maths it keeps: Adam and RowAdam step by
step, Plateau's lr decisions; and training that does not import torch.optim's compiler."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from deepfm_rec.optim import Adam, Plateau, RowAdam


def test_row_adam_matches_sparse_adam():
    torch.manual_seed(0)
    table = torch.nn.EmbeddingBag(50, 6, mode="mean", sparse=True)
    twin = copy.deepcopy(table)
    ours = RowAdam(table.parameters(), lr=0.01)
    theirs = torch.optim.SparseAdam(twin.parameters(), lr=0.01)
    never_used = torch.arange(40, 50)
    before = table.weight.detach()[never_used].clone()
    for step in range(6):
        # bags with repeated codes, within a bag and across bags, and an empty bag
        codes = torch.randint(0, 40, (30,))
        offsets = torch.tensor([0, 4, 4, 11, 20])
        target = torch.randn(5, 6)
        for model, optimizer in ((table, ours), (twin, theirs)):
            optimizer.zero_grad()
            loss = (model(codes, offsets) - target).pow(2).sum()
            loss.backward()
            optimizer.step()
        torch.testing.assert_close(table.weight, twin.weight, msg=f"step {step}")
    assert torch.equal(table.weight.detach()[never_used], before)  # lazy: untouched rows stay


def test_row_adam_rejects_dense_gradients():
    weight = torch.nn.Parameter(torch.ones(3, 2))
    weight.grad = torch.ones(3, 2)
    with pytest.raises(ValueError, match="sparse gradients"):
        RowAdam([weight], lr=0.001).step()


def test_adam_is_fused_adam_to_the_bit_and_skips_parameters_without_a_gradient():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    twin = copy.deepcopy(net)
    ours = Adam(net.parameters(), lr=0.01)
    theirs = torch.optim.Adam(twin.parameters(), lr=0.01, fused=True)
    for step in range(8):
        x, y = torch.randn(16, 5), torch.randn(16, 1)
        for model, optimizer in ((net, ours), (twin, theirs)):
            optimizer.zero_grad()
            (model(x) - y).pow(2).mean().backward()
            if step % 3 == 1:  # the last layer's bias has no gradient at these steps
                model[2].bias.grad = None
            optimizer.step()
        for a, b in zip(net.parameters(), twin.parameters(), strict=True):
            assert torch.equal(a, b), f"step {step}"
        # a skipped parameter's step count stays, so its bias correction is torch's too
        assert ours.state[net[2].bias][0] == theirs.state[twin[2].bias]["step"]


@pytest.mark.parametrize("mode", ["min", "max"])
def test_plateau_makes_reduce_lr_on_plateaus_decisions(mode):
    # improvements, stalls, a change below the relative threshold, a tie, a NaN
    metrics = [1.0, 0.9, 0.89995, 0.95, 0.8, 0.8, float("nan"), 0.7, 0.71, 0.72, 0.73]
    if mode == "max":
        metrics = [2 - m for m in metrics]
    lrs0 = {torch.nn.Parameter(torch.zeros(1)): 0.1, torch.nn.Parameter(torch.zeros(1)): 0.4}
    torch_optimizers = [torch.optim.SGD([p], lr=lr) for p, lr in lrs0.items()]
    schedulers = [
        torch.optim.lr_scheduler.ReduceLROnPlateau(o, mode=mode, factor=0.5, patience=1)
        for o in torch_optimizers
    ]
    ours = [Adam([p], lr=lr) for p, lr in lrs0.items()]
    plateau = Plateau(ours, mode=mode, factor=0.5, patience=1)
    lrs = []
    for metric in metrics:
        for scheduler in schedulers:
            scheduler.step(metric)
        plateau.step(metric)
        expected = [o.param_groups[0]["lr"] for o in torch_optimizers]
        assert [o.lr for o in ours] == expected
        lrs.append(expected[0])
    assert len(set(lrs)) >= 3  # the sequence did reduce, more than once


def test_training_and_profiling_do_not_import_torchs_compiler(encoded_tiny, tmp_path):
    # torch.optim imports torch._dynamo (sympy, fx: 1.7 s of CPU) on first use, and
    # torch.profiler's start imports torch._inductor (which imports it); a training job
    # and a profile job need none of it
    script = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from pathlib import Path
from settings_helpers import shipped
from deepfm_rec.data.encoding import open_encoded
from deepfm_rec.profiling import profile_step
from deepfm_rec.train import fit
encoded, out = open_encoded({str(encoded_tiny.folder)!r}), Path({str(tmp_path)!r})
config, hparams = shipped("deepfm", "stars", max_epochs=1, lr_patience=0)
trained = fit(encoded, "deepfm", hparams, config, seed=0, device="cpu")
print("torch._dynamo" in sys.modules)
trained.save(encoded.meta, checkpoint=out / "model.pt", history=out / "history.tsv")
kw = dict(batch_size=32, warmup=1, row_limit=5, device="cpu", memory_budget=1e9)
print("aten::" in profile_step(encoded, out / "model.pt", trace=out / "trace.json", **kw))
print("torch._dynamo" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True", "False"]
    assert (tmp_path / "trace.json").stat().st_size > 0
