"""Gradient-Blending (Wang, Tran and Feiszli, "What makes training multi-modal classification networks hard?", CVPR
2020, §3.2–3.3): weigh each branch's loss by how much it generalises per unit of overfitting.

The loss is L = 2 (w_0 CE(y, ŷ_0) + w_1 CE(y, ŷ_1)) with w_0 + w_1 = 1, so that w = (1/2, 1/2), the weights before
the first estimate, is §2's vanilla loss. After every super-epoch of n epochs (``gblend_super_epoch``) the weights are
estimated again (online G-Blend, §3.3) from each branch's loss on the training data, L^T_k, and on a held-out part of
the training split, L^V_k (``gblend_holdout``, never trained on; never the validation or test split):

    O_N = L^V_N − L^T_N (overfitting),   ΔG = L^V_{N} − L^V_{N+n},   ΔO = O_{N+n} − O_N,
    w_k ∝ ΔG_k / ΔO_k²   (Wang et al. Eq. 6 with Prop. 1's estimate, normalised to sum to 1).

A branch whose held-out loss did not fall (ΔG_k ≤ 0) gets weight 0; when neither fell, the weights stay as they were.
L^T_k is measured, like L^V_k, in evaluation mode with regular fusion, on the first ``len(holdout)`` samples of the
training part (an unbiased estimate at the same cost as the held-out pass). The super-epoch of 2 and the held-out
tenth are our choices for the epoch budgets of the paper's datasets (Wang et al. tune them per dataset).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import RunConfig
from ..models.fusion import REGULAR
from ..models.twobranch import ModelOutput
from .base import Algorithm


def blend_weights(before: Tensor, after: Tensor, previous: Tensor) -> Tensor:
    """(2,) the new weights from losses ``before`` and ``after`` one super-epoch, each (2, 2) = [[L^T_0, L^T_1],
    [L^V_0, L^V_1]]; ``previous`` when no branch generalised better."""
    gain = before[1] - after[1]
    overfit = (after[1] - after[0]) - (before[1] - before[0])
    raw = gain.clamp(min=0) / overfit.square().clamp(min=1e-12)
    total = raw.sum()
    return raw / total if total > 0 else previous.clone()


@torch.no_grad()
def branch_losses(model: nn.Module, batches) -> Tensor:
    """(2,) mean cross-entropy of each branch's logits over ``batches``, evaluation mode, regular fusion."""
    was_training = model.training
    model.eval()
    total, count = torch.zeros(2, dtype=torch.float64), 0
    try:
        for inputs, y in batches:
            out = model(*inputs, fusion=REGULAR)
            total += torch.stack([F.cross_entropy(z.float(), y, reduction="sum") for z in out.logits]).double().cpu()
            count += y.shape[0]
    finally:
        model.train(was_training)
    return total / count


class GBlending(Algorithm):
    def __init__(self, model: nn.Module, cfg: RunConfig):
        super().__init__(model, cfg)
        self.register_buffer("weights", torch.full((2,), 0.5, dtype=torch.float64))
        self.register_buffer("losses", torch.full((2, 2), float("nan"), dtype=torch.float64))  # at the last estimate

    @property
    def holdout_fraction(self) -> float:
        return self.cfg.gblend_holdout

    def begin_epoch(self, epoch: int) -> None:
        """At the start of epochs 1, n+1, 2n+1, …: measure the losses; from the second measurement on, new weights."""
        super().begin_epoch(epoch)
        if (epoch - 1) % self.cfg.gblend_super_epoch:
            return
        data = self.data
        if data is None or data.holdout is None:
            raise RuntimeError("G-Blending needs algorithm.data with a held-out part of the training split")
        holdout = data.holdout
        train_part = data.train.subset(torch.arange(min(len(holdout), len(data.train))))
        now = torch.stack(
            [
                branch_losses(self.model, train_part.batches(data.eval_batch_size)),
                branch_losses(self.model, holdout.batches(data.eval_batch_size)),
            ]
        ).to(self.losses.device)
        if not torch.isnan(self.losses).any():
            self.weights.copy_(blend_weights(self.losses, now, self.weights))
        self.losses.copy_(now)

    def loss(self, out: ModelOutput, y: Tensor) -> Tensor:
        ce = [F.cross_entropy(z, y) for z in out.logits]
        w = self.weights.to(ce[0].dtype)
        return 2 * (w[0] * ce[0] + w[1] * ce[1])

    def epoch_stats(self) -> dict[str, float]:
        w0, w1 = self.weights.tolist()
        return {"weight_m0": w0, "weight_m1": w1}
