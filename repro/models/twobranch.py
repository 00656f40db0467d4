"""The multi-modal DNN of Fig. 1: two uni-modal branches joined by layer-wise MMTMs, a head per branch.

Architectures (the small CNN for Colored-and-gray MNIST, ResNet18 for ModelNet40, I3D for NVGesture) differ only
in how a branch is cut into stages; :class:`TwoBranchNet` runs the stages side by side and fuses after the ones
that carry an MMTM. Algorithms and metrics use only the interface documented here:

    forward(x0, x1, fusion) -> ModelOutput      logits of both branches and their pooled features
    parameter_groups()      -> theta0, theta0_fusion, theta1, theta1_fusion (§4.1; shared squeeze in both)
    mmtms()                 -> the fusion modules, in order
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .fusion import REGULAR, DeviceFusion, Fusion
from .mmtm import MMTM, squeeze

GROUP_NAMES = ("theta0", "theta0_fusion", "theta1", "theta1_fusion")


@dataclass
class ModelOutput:
    """What a forward pass returns: the branches' logits (y_hat_0, y_hat_1 of §2) and pooled features (one of each
    for a uni-modal model); ``prediction`` is the model's y_hat."""

    logits: tuple[Tensor, ...]
    features: tuple[Tensor, ...]

    @property
    def prediction(self) -> Tensor:
        """The model's prediction y_hat = (y_hat_0 + y_hat_1) / 2 (§2; average of logits as the reference code)."""
        return torch.stack(self.logits).mean(0)


class GlobalAveragePool(nn.Module):
    """(N, C, ...) -> (N, C): the mean over every dimension after the channels (MMTM's squeeze); (N, C) unchanged."""

    def forward(self, x: Tensor) -> Tensor:
        return squeeze(x)


class Branch(nn.Module):
    """A uni-modal network cut into ``stages``, followed by ``pool`` (to a feature vector) and ``head``."""

    def __init__(self, stages: list[nn.Module], pool: nn.Module, head: nn.Linear):
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.pool = pool
        self.head = head

    @property
    def feature_dim(self) -> int:
        return self.head.in_features

    def features(self, x: Tensor) -> Tensor:
        for stage in self.stages:
            x = stage(x)
        return self.pool(x)


class TwoBranchNet(nn.Module):
    """The multi-modal DNN of Fig. 1: two branches with an MMTM after each stage index in ``fuse_after``.

    ``fuse_channels``: per fused stage, the channel count both branches have there, or a pair (C_0, C_1) where they
    differ. ``forward(x0, x1, fusion)`` returns a :class:`ModelOutput` (each branch's logits and pooled features;
    ``prediction`` is ŷ); ``fusion`` is regular by default, a re-balancing step (A.2) or the cut of A.1 otherwise.
    ``parameter_groups()`` gives θ_0, θ'_0, θ_1, θ'_1 of Def. 4.1 and ``mmtms()`` the fusion modules.
    :func:`repro.two_branch` builds one from any two backbones."""

    def __init__(
        self,
        branch0: Branch,
        branch1: Branch,
        fuse_after: list[int],
        fuse_channels: list[int | tuple[int, int]],
        mmtm_ratio: float = 4.0,
    ):
        super().__init__()
        if len(branch0.stages) != len(branch1.stages):
            raise ValueError("both branches must have the same number of stages")
        self.branch0, self.branch1 = branch0, branch1
        pairs = zip(fuse_after, [(c, c) if isinstance(c, int) else tuple(c) for c in fuse_channels], strict=True)
        self.fusion = nn.ModuleDict({str(i): MMTM(*c, ratio=mmtm_ratio) for i, c in pairs})
        self.num_classes = branch0.head.out_features

    def mmtms(self) -> list[MMTM]:
        return list(self.fusion.values())

    def forward(self, x0: Tensor, x1: Tensor, fusion: Fusion | DeviceFusion = REGULAR) -> ModelOutput:
        h0, h1 = x0, x1
        for i, (stage0, stage1) in enumerate(zip(self.branch0.stages, self.branch1.stages, strict=True)):
            h0, h1 = stage0(h0), stage1(h1)
            if str(i) in self.fusion:
                h0, h1 = self.fusion[str(i)](h0, h1, fusion)
        f0, f1 = self.branch0.pool(h0), self.branch1.pool(h1)
        return ModelOutput(logits=(self.branch0.head(f0), self.branch1.head(f1)), features=(f0, f1))

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """theta0/theta1: the uni-modal branches (convolutions, heads); theta'_k: fusion parameters on the path
        from x to y_hat_k, i.e. each MMTM's shared squeeze layer plus its excitation for branch k (§4.1)."""
        shared = [p for m in self.mmtms() for p in m.squeeze.parameters()]
        return {
            "theta0": list(self.branch0.parameters()),
            "theta0_fusion": shared + [p for m in self.mmtms() for p in m.excite_a.parameters()],
            "theta1": list(self.branch1.parameters()),
            "theta1_fusion": shared + [p for m in self.mmtms() for p in m.excite_b.parameters()],
        }


class UniModalNet(nn.Module):
    """One branch alone, for the uni-modal baselines (§5.1: 43% mono, 98% gray on CMNIST validation)."""

    def __init__(self, branch: Branch):
        super().__init__()
        self.branch0 = branch
        self.num_classes = branch.head.out_features

    def mmtms(self) -> list[MMTM]:
        return []

    def forward(self, x0: Tensor, fusion: Fusion = REGULAR) -> ModelOutput:
        f0 = self.branch0.features(x0)
        return ModelOutput(logits=(self.branch0.head(f0),), features=(f0,))
