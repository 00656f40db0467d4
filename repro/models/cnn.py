"""The Colored-and-gray MNIST network (§5.1): two four-convolution branches joined by three MMTMs.

The paper gives only "four convolutional layers" per branch and "three MMTMs"; the widths are ours
(16, 32, 64, 64 channels; 3x3 convolutions, batch norm, ReLU, 2x2 max-pooling after the first three), chosen so a
CMNIST epoch runs in seconds on a CPU. As in the ResNet18 model (MMTM in the three final residual stages), the
MMTMs sit after the three final convolutions.
"""

from __future__ import annotations

from torch import nn

from .twobranch import Branch, TwoBranchNet, UniModalNet

WIDTHS = (16, 32, 64, 64)


def _conv(c_in: int, c_out: int, pool: bool) -> nn.Sequential:
    layers = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


def cnn_branch(in_channels: int, num_classes: int = 10, widths: tuple[int, ...] = WIDTHS) -> Branch:
    stages, c = [], in_channels
    for i, w in enumerate(widths):
        stages.append(_conv(c, w, pool=i < len(widths) - 1))
        c = w
    return Branch(stages, pool=nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()), head=nn.Linear(c, num_classes))


def cmnist_net(in_channels: tuple[int, ...], num_classes: int = 10) -> nn.Module:
    """Two branches (e.g. 3-channel mono, 1-channel gray) with MMTMs after convolutions 2, 3 and 4;
    one channel count alone gives the uni-modal network."""
    branches = [cnn_branch(c, num_classes) for c in in_channels]
    if len(branches) == 1:
        return UniModalNet(branches[0])
    return TwoBranchNet(*branches, fuse_after=[1, 2, 3], fuse_channels=list(WIDTHS[1:]))
