"""The ModelNet40 network (§5): two ResNet18 branches (He et al. 2016) joined by MMTMs "in the three final
residual blocks", i.e. after torchvision's ``layer2``, ``layer3`` and ``layer4`` (128, 256, 512 channels), with a
linear head per branch on the globally average-pooled 512 features (Fig. 1).

Each branch reads one 1-channel 224x224 gray view (the reference code feeds the gray renders as 3 equal RGB
channels; one channel carries the same information). Randomly initialised (torchvision's default
initialisation); no pretrained weights.
"""

from __future__ import annotations

from torch import nn
from torchvision.models import resnet18

from .twobranch import Branch, TwoBranchNet, UniModalNet

FUSE_AFTER = [1, 2, 3]  # stage indices: stem+layer1, layer2, layer3, layer4
FUSE_CHANNELS = [128, 256, 512]


def resnet18_branch(in_channels: int = 1, num_classes: int = 40) -> Branch:
    """ResNet18 cut into four stages (stem + layer1, layer2, layer3, layer4), pool, head."""
    net = resnet18(weights=None, num_classes=num_classes)
    net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")  # as torchvision does
    stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1)
    return Branch(
        [stem, net.layer2, net.layer3, net.layer4],
        pool=nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()),
        head=net.fc,
    )


def modelnet40_net(in_channels: tuple[int, ...], num_classes: int = 40) -> nn.Module:
    """Two ResNet18 branches with MMTMs after layer2-4; one channel count alone gives the uni-modal ResNet18."""
    branches = [resnet18_branch(c, num_classes) for c in in_channels]
    if len(branches) == 1:
        return UniModalNet(branches[0])
    return TwoBranchNet(*branches, fuse_after=FUSE_AFTER, fuse_channels=FUSE_CHANNELS)
