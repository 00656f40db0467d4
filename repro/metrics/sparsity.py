"""Sparsity of the weights (§5.3): the L1 penalty's norm and R(f), the share of near-zero parameters."""

from __future__ import annotations

import torch
from torch import Tensor, nn

SMALL_WEIGHT = 1e-7  # R(f) counts parameters below this magnitude (§5.3)


def l1_norm(model: nn.Module) -> Tensor:
    """||theta||_1 over all model parameters (§5.3; θ "stands for all model parameters", fusion included)."""
    return torch.stack([p.abs().sum() for p in model.parameters()]).sum()


def small_weight_fraction(model: nn.Module, threshold: float = SMALL_WEIGHT) -> float:
    """R(f) of §5.3: the fraction of the model's parameters whose magnitude is below 1e-7 (Fig. 3, Fig. A.4)."""
    small = sum(int((p.detach().abs() < threshold).sum()) for p in model.parameters())
    return small / sum(p.numel() for p in model.parameters())
