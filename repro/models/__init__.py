"""Models by dataset: the two-branch MMTM networks of Fig. 1 (uni-modal when given one modality)."""

from __future__ import annotations

from torch import nn

from .cnn import cmnist_net
from .fusion import CUT, REBALANCE, REGULAR, DeviceFusion, Fusion
from .i3d import nvgesture_net
from .resnet import modelnet40_net
from .twobranch import GROUP_NAMES, ModelOutput, TwoBranchNet, UniModalNet


def build_model(dataset: str, in_channels: tuple[int, ...], num_classes: int, pretrained: str = "") -> nn.Module:
    """``pretrained``: path of a weights file for the datasets whose paper setting has one (NVGesture)."""
    if pretrained and dataset != "nvgesture":
        raise ValueError(f"--pretrained is for nvgesture (Kinetics I3D weights), not {dataset!r}")
    if dataset == "cmnist":
        return cmnist_net(in_channels, num_classes)
    if dataset == "nvgesture":
        return nvgesture_net(in_channels, num_classes, pretrained)
    if dataset == "modelnet40":
        return modelnet40_net(in_channels, num_classes)
    raise ValueError(f"no model for dataset {dataset!r}")


__all__ = [
    "CUT",
    "GROUP_NAMES",
    "REBALANCE",
    "REGULAR",
    "DeviceFusion",
    "Fusion",
    "ModelOutput",
    "TwoBranchNet",
    "UniModalNet",
    "build_model",
]
