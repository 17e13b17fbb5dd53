"""Adam, lazy Adam and LR on plateau, without torch.optim.

torch.optim imports torch._dynamo on its first use (its methods are wrapped to keep the
compiler out): sympy and torch.fx, 1.7 s of CPU in every training job here, more than a
tenth of an embedded study's training. These three keep torch.optim's maths (the tests
compare them with it step by step) and import nothing beyond torch.

Shapes: N table rows, D embedding dim, L codes looked up in a batch (with repeats),
U distinct rows among them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

BETAS = (0.9, 0.999)
EPS = 1e-8


class Adam:
    """torch.optim.Adam(params, lr, fused=True): the same fused kernel, so the same numbers.

    A parameter without a gradient at a step is left alone, its step count too.
    """

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float) -> None:
        self.params, self.lr = list(params), lr
        self.state: dict[torch.nn.Parameter, tuple] = {}  # step count, moments

    def zero_grad(self) -> None:
        for param in self.params:
            param.grad = None

    @torch.no_grad()
    def step(self) -> None:
        params = [p for p in self.params if p.grad is not None]
        if not params:
            return
        for p in params:
            if p not in self.state:
                step = torch.zeros((), dtype=torch.float32, device=p.device)
                self.state[p] = (step, torch.zeros_like(p), torch.zeros_like(p))
        steps, exp_avgs, exp_avg_sqs = (
            list(t) for t in zip(*(self.state[p] for p in params), strict=True)
        )
        torch._foreach_add_(steps, 1)
        torch._fused_adam_(
            params,
            [p.grad for p in params],
            exp_avgs,
            exp_avg_sqs,
            [],  # no amsgrad
            steps,
            amsgrad=False,
            lr=self.lr,
            beta1=BETAS[0],
            beta2=BETAS[1],
            weight_decay=0.0,
            eps=EPS,
            maximize=False,
            grad_scale=None,
            found_inf=None,
        )


class RowAdam(Adam):
    """torch.optim.SparseAdam's update, computed with a few index ops on the used rows.

    The maths is SparseAdam's (lazy Adam): a row's moments and weights change only on
    steps whose gradient has that row, with bias correction by the parameter's step
    count. SparseAdam first coalesces the gradient (a sort of its L codes, then
    sparse-dense adds); that took most of a CPU step (85 ms of 310 at batch 65536). Here
    the used rows come from a boolean mask over the table, O(N + L), their summed
    gradients from one index_add_, and the rows are read and written back with
    index_select/index_copy_.

    Args:
        params: 2-d parameters that receive sparse COO gradients (as nn.EmbeddingBag
            with sparse=True gives them).
        lr: as torch.optim.SparseAdam (its betas and eps are Adam's defaults here too).
    """

    @torch.no_grad()
    def step(self) -> None:
        beta1, beta2 = BETAS
        for param in self.params:
            if param.grad is None:
                continue
            if not param.grad.is_sparse:
                raise ValueError("RowAdam takes sparse gradients (nn.Embedding sparse=True)")
            codes = param.grad._indices()[0]  # (L,)
            if not len(codes):
                continue
            if param not in self.state:
                self.state[param] = (0, torch.zeros_like(param), torch.zeros_like(param))
            step, exp_avg_all, exp_avg_sq_all = self.state[param]
            step += 1
            self.state[param] = (step, exp_avg_all, exp_avg_sq_all)
            used = torch.zeros(len(param), dtype=torch.bool, device=param.device)
            used[codes] = True
            rows = used.nonzero().squeeze(1)  # (U,) sorted
            slot = torch.empty(len(param), dtype=torch.int64, device=param.device)
            slot.index_copy_(0, rows, torch.arange(len(rows), device=param.device))
            grad = param.new_zeros(len(rows), param.shape[1])
            grad.index_add_(0, slot[codes], param.grad._values())  # (U, D) summed
            # index_select/index_copy_: several times faster than [] and index_add_ here
            exp_avg = exp_avg_all.index_select(0, rows).lerp_(grad, 1 - beta1)
            exp_avg_sq = exp_avg_sq_all.index_select(0, rows).mul_(beta2)
            exp_avg_sq.addcmul_(grad, grad, value=1 - beta2)
            exp_avg_all.index_copy_(0, rows, exp_avg)
            exp_avg_sq_all.index_copy_(0, rows, exp_avg_sq)
            step_size = self.lr * math.sqrt(1 - beta2**step) / (1 - beta1**step)
            update = exp_avg.div_(exp_avg_sq.sqrt_().add_(EPS))
            moved = param.index_select(0, rows).add_(update, alpha=-step_size)
            param.index_copy_(0, rows, moved)


class Plateau:
    """torch.optim.lr_scheduler.ReduceLROnPlateau's rule (relative threshold 1e-4, no
    cooldown, no floor) for several optimizers at once: after more than `patience` epochs
    without a better metric, every optimizer's lr is multiplied by `factor`.

    `mode`: min (a lower metric is better) or max.
    """

    THRESHOLD = 1e-4  # a better metric beats the best by this share of it
    MIN_CHANGE = 1e-8  # a smaller change of an lr is not made (torch's eps)

    def __init__(self, optimizers: list[Adam], *, mode: str, factor: float, patience: int):
        self.optimizers, self.mode, self.factor, self.patience = optimizers, mode, factor, patience
        self.best, self.bad_epochs = (math.inf if mode == "min" else -math.inf), 0

    def better(self, metric: float) -> bool:
        if self.mode == "min":
            return metric < self.best * (1 - self.THRESHOLD)
        return metric > self.best * (1 + self.THRESHOLD)

    def step(self, metric: float) -> None:
        if self.better(metric):
            self.best, self.bad_epochs = metric, 0
        else:
            self.bad_epochs += 1
        if self.bad_epochs > self.patience:
            for optimizer in self.optimizers:
                if optimizer.lr - optimizer.lr * self.factor > self.MIN_CHANGE:
                    optimizer.lr *= self.factor
            self.bad_epochs = 0
