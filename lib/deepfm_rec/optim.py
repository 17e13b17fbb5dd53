"""Lazy Adam for sparse embedding gradients: only the rows a batch used move.

Shapes: N table rows, D embedding dim, L codes looked up in a batch (with repeats),
U distinct rows among them.
"""

from __future__ import annotations

import math

import torch


class RowAdam(torch.optim.Optimizer):
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
        lr, betas, eps: as torch.optim.SparseAdam.
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):
        if closure is not None:
            raise ValueError("RowAdam.step takes no closure")
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                if not param.grad.is_sparse:
                    raise ValueError("RowAdam takes sparse gradients (nn.Embedding sparse=True)")
                codes = param.grad._indices()[0]  # (L,)
                if not len(codes):
                    continue
                state = self.state[param]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(param)
                    state["exp_avg_sq"] = torch.zeros_like(param)
                state["step"] += 1
                used = torch.zeros(len(param), dtype=torch.bool, device=param.device)
                used[codes] = True
                rows = used.nonzero().squeeze(1)  # (U,) sorted
                slot = torch.empty(len(param), dtype=torch.int64, device=param.device)
                slot.index_copy_(0, rows, torch.arange(len(rows), device=param.device))
                grad = param.new_zeros(len(rows), param.shape[1])
                grad.index_add_(0, slot[codes], param.grad._values())  # (U, D) summed
                # index_select/index_copy_: several times faster than [] and index_add_ here
                exp_avg = state["exp_avg"].index_select(0, rows).lerp_(grad, 1 - beta1)
                exp_avg_sq = state["exp_avg_sq"].index_select(0, rows).mul_(beta2)
                exp_avg_sq.addcmul_(grad, grad, value=1 - beta2)
                state["exp_avg"].index_copy_(0, rows, exp_avg)
                state["exp_avg_sq"].index_copy_(0, rows, exp_avg_sq)
                step = state["step"]
                step_size = group["lr"] * math.sqrt(1 - beta2**step) / (1 - beta1**step)
                update = exp_avg.div_(exp_avg_sq.sqrt_().add_(group["eps"]))
                moved = param.index_select(0, rows).add_(update, alpha=-step_size)
                param.index_copy_(0, rows, moved)
