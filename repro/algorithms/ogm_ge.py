"""OGM-GE: on-the-fly gradient modulation with generalisation enhancement (Peng, Wei, Deng, Wang and Hu, "Balanced
multimodal learning via on-the-fly gradient modulation", CVPR 2022, §3.2–3.3).

Each step, after the backward pass of §2's loss:

1. Each branch's score is the sum over the batch of its softmax probability of the true class,
   s_k = Σ_i softmax(ŷ_k(x_i))[y_i] (Peng et al. Eq. 9, with our per-branch heads ŷ_k as their uni-modal outputs).
2. ρ_k = s_k / s_{1-k}; the dominant branch (ρ_k > 1) has its encoder's gradients scaled by
   k_k = 1 − tanh(α (ρ_k − 1)), the other keeps k = 1 (Eq. 10 as in the authors' later code: their paper prints
   tanh(α ρ_k), which jumps from 1 to 1 − tanh(α) at ρ = 1; the form with ρ − 1 is continuous there).
3. GE (§3.3): Gaussian noise N(0, σ²) is added to every modulated gradient, σ the standard deviation of that
   gradient tensor after scaling (the authors' code), so the update keeps SGD's noise level.

What counts as a branch's encoder: θ_k of Def. 4.1 (the branch's stages and its head), every tensor of it; the MMTM
parameters θ'_k, shared by both paths, are left alone, as OGM-GE leaves the fusion module alone. The authors' code
modulates only the 4-D (convolution) tensors; we modulate all of θ_k, so that the heads, the only weights of an
MLP branch, are modulated too. Active in epochs ``ogm_start_epoch``..``ogm_end_epoch`` (defaults 1..50: the README of
the authors' code modulates epochs 0–50 of 100), α = 0.1 (the same README's default).

Everything is a device tensor: no host synchronisation per step or per parameter (``torch.where`` chooses the
dominant branch).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import RunConfig
from ..models.twobranch import ModelOutput
from .base import Algorithm


@torch.no_grad()
def ogm_coefficients(logits: tuple[Tensor, Tensor], y: Tensor, alpha: float) -> Tensor:
    """(2,) the coefficients k_0, k_1 of Eq. 10 (ρ − 1 form) from the branches' logits and the labels."""
    scores = torch.stack([F.softmax(z.float(), 1).gather(1, y[:, None]).sum() for z in logits])
    ratios = scores / scores.flip(0)
    return torch.where(ratios > 1, 1 - torch.tanh(alpha * (ratios - 1)), torch.ones_like(ratios))


@torch.no_grad()
def modulate(grads: list[Tensor], coefficient: Tensor, noise: bool) -> None:
    """In place: g ← k g, then (GE) g ← g + N(0, std(g)²) for tensors of more than one element."""
    torch._foreach_mul_(grads, coefficient)
    if noise:
        for g in grads:
            if g.numel() > 1:
                g.add_(torch.randn_like(g) * g.std())


class OGMGE(Algorithm):
    def __init__(self, model: nn.Module, cfg: RunConfig):
        super().__init__(model, cfg)
        groups = model.parameter_groups()
        self.encoders = (groups["theta0"], groups["theta1"])
        self._coefficient_sum: Tensor | None = None
        self._steps = 0

    @property
    def modulating(self) -> bool:
        cfg = self.cfg
        return self.epoch >= cfg.ogm_start_epoch and (cfg.ogm_end_epoch == 0 or self.epoch <= cfg.ogm_end_epoch)

    def begin_epoch(self, epoch: int) -> None:
        super().begin_epoch(epoch)
        self._coefficient_sum, self._steps = None, 0

    def after_backward(self, out: ModelOutput, y: Tensor) -> None:
        if not self.modulating:
            return
        coefficients = ogm_coefficients(out.logits, y, self.cfg.ogm_alpha)
        for params, k in zip(self.encoders, coefficients, strict=True):
            modulate([p.grad for p in params if p.grad is not None], k, self.cfg.ogm_noise)
        total = self._coefficient_sum
        self._coefficient_sum = coefficients if total is None else total + coefficients
        self._steps += 1

    def epoch_stats(self) -> dict[str, float]:
        if self._coefficient_sum is None:
            return {}
        mean = (self._coefficient_sum / self._steps).tolist()
        return {"coefficient_m0": mean[0], "coefficient_m1": mean[1]}
