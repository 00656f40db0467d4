"""Models by dataset: the two-branch MMTM networks of Fig. 1 (uni-modal when given one modality)."""

from __future__ import annotations

from torch import nn

from .cnn import cmnist_net
from .fusion import CUT, REBALANCE, REGULAR, DeviceFusion, Fusion
from .twobranch import GROUP_NAMES, ModelOutput, TwoBranchNet, UniModalNet


def build_model(dataset: str, in_channels: tuple[int, ...], num_classes: int) -> nn.Module:
    if dataset == "cmnist":
        return cmnist_net(in_channels, num_classes)
    raise ValueError(f"no model for dataset {dataset!r}")


__all__ = ["CUT", "GROUP_NAMES", "REBALANCE", "REGULAR", "DeviceFusion", "Fusion", "ModelOutput", "TwoBranchNet",
           "UniModalNet", "build_model"]
