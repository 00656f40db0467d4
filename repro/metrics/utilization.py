"""Conditional utilization rates (Def. 2.1) and the A.1 derivation of the uni-modal models f'_0, f'_1.

    u(m1|m0) = (A(f0) - A(f'0)) / A(f0),   u(m0|m1) = (A(f1) - A(f'1)) / A(f1),   d_util = u(m1|m0) - u(m0|m1)

(The paper's text prints "A(f0) - A(f0)": the primes were lost in conversion.) f'_k is branch k with, in every
MMTM, the other modality's squeeze vector replaced by its mean over the training set (A.1). A rate is negative
when cutting the other modality *helps* a branch, so d_util can leave [-1, 1]; it is reported as computed.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from ..models.fusion import CUT, REGULAR, Fusion
from ..models.mmtm import squeeze


@torch.no_grad()
def compute_squeeze_means(model: nn.Module, batches: Iterable[tuple[tuple[Tensor, ...], Tensor]]) -> None:
    """Fill every MMTM's ``squeeze_mean_a/b`` with the training-set mean of S_A, S_B (A.1).

    One evaluation-mode pass with regular fusion; forward pre-hooks read each MMTM's inputs, so the MMTM itself
    carries no bookkeeping. Running gate means are untouched (evaluation mode)."""
    mmtms = model.mmtms()
    sums: list[list[Tensor | float]] = [[0.0, 0.0] for _ in mmtms]
    count = 0

    def hook(index: int):
        def accumulate(_module, inputs):
            a, b = inputs[0], inputs[1]
            sums[index][0] = sums[index][0] + squeeze(a).double().sum(0)
            sums[index][1] = sums[index][1] + squeeze(b).double().sum(0)

        return accumulate

    handles = [m.register_forward_pre_hook(hook(i)) for i, m in enumerate(mmtms)]
    was_training = model.training
    model.eval()
    try:
        for inputs, _ in batches:
            model(*inputs, fusion=REGULAR)
            count += inputs[0].shape[0]
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    if count == 0:
        raise ValueError("no training batches to compute the squeeze means from")
    for m, (sum_a, sum_b) in zip(mmtms, sums, strict=True):
        m.squeeze_mean_a.copy_(sum_a / count)
        m.squeeze_mean_b.copy_(sum_b / count)


@torch.no_grad()
def branch_accuracies(
    model: nn.Module,
    batches: Iterable[tuple[tuple[Tensor, ...], Tensor]],
    unimodal: bool = True,
    fusion: Fusion = REGULAR,
) -> dict[str, float]:
    """Accuracies in percent of y_hat, of each branch (f0, f1) and, with ``unimodal``, of f'0 and f'1.
    The squeeze means must have been computed first (:func:`compute_squeeze_means`). ``fusion``: the fusion of
    the passes for y_hat, f0 and f1 (regular, or a re-balancing state for the reference evaluation)."""
    if unimodal and not fusion.is_regular:
        raise ValueError("the uni-modal models of A.1 are derived from the regular fusion")
    names = ["acc", "acc_branch0", "acc_branch1", "acc_branch0_unimodal", "acc_branch1_unimodal"]
    was_training = model.training
    model.eval()
    correct = None  # hit counts, accumulated on the model's device (one host transfer at the end)
    n, used = 0, 1
    try:
        for inputs, y in batches:
            out = model(*inputs, fusion=fusion)
            hits = [out.prediction.argmax(1) == y]
            if len(out.logits) == 2:
                hits += [lg.argmax(1) == y for lg in out.logits]
                if unimodal:
                    hits += [lg.argmax(1) == y for lg in model(*inputs, fusion=CUT).logits]
            used = len(hits)
            counts = torch.stack([h.sum() for h in hits])
            correct = counts if correct is None else correct + counts
            n += y.shape[0]
    finally:
        model.train(was_training)
    if correct is None:
        raise ValueError("no batches to evaluate")
    acc = (100.0 * correct.double().cpu() / n).tolist()
    return dict(zip(names[:used], acc[:used], strict=True))


def utilization_rates(accs: dict[str, float]) -> dict[str, float]:
    """Def. 2.1 from the accuracies of f0, f'0, f1, f'1 (NaN where A(f_k) = 0)."""

    def rate(full: float, cut: float) -> float:
        return (full - cut) / full if full else float("nan")

    u10 = rate(accs["acc_branch0"], accs["acc_branch0_unimodal"])
    u01 = rate(accs["acc_branch1"], accs["acc_branch1_unimodal"])
    return {"u_m1_given_m0": u10, "u_m0_given_m1": u01, "d_util": u10 - u01}
