"""Models by dataset: the two-branch MMTM networks of Fig. 1 (uni-modal when given one modality)."""

from __future__ import annotations

from torch import nn

from .. import registry
from ..registry import load
from .fusion import CUT, REBALANCE, REGULAR, DeviceFusion, Fusion
from .twobranch import GROUP_NAMES, ModelOutput, TwoBranchNet, UniModalNet


def build_model(dataset: str, in_channels: tuple[int, ...], num_classes: int, pretrained: str = "") -> nn.Module:
    """The dataset's network (:data:`repro.registry.DATASETS`); ``pretrained``: path of a weights file for the
    datasets whose paper setting has one (NVGesture)."""
    if pretrained and dataset != "nvgesture":
        raise ValueError(f"--pretrained is for nvgesture (Kinetics I3D weights), not {dataset!r}")
    builder = load(registry.dataset(dataset).model)
    return builder(in_channels, num_classes, pretrained) if pretrained else builder(in_channels, num_classes)


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
