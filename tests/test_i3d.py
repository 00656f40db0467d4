"""The NVGesture network: two I3D branches with MMTMs in the six final inception modules (§5.1), and loading of
Kinetics weights from a file in the rgb_imagenet.pt layout, which the test writes from its own copy of the
layout (the port's block and unit names, Inception-v1 widths), not from our model."""

from collections import OrderedDict

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from repro.cli import main
from repro.models import build_model
from repro.models.i3d import MaxPoolSame, PretrainedWeightsError, Unit3D

# The rgb_imagenet.pt layout: unit name -> (in channels, out channels, kernel). Mixed blocks: b0, b1a, b1b,
# b2a, b2b, b3b from the Inception-v1 widths (Szegedy et al. 2015).
MIXED = [
    ("Mixed_3b", 192, (64, 96, 128, 16, 32, 32)),
    ("Mixed_3c", 256, (128, 128, 192, 32, 96, 64)),
    ("Mixed_4b", 480, (192, 96, 208, 16, 48, 64)),
    ("Mixed_4c", 512, (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", 512, (128, 128, 256, 24, 64, 64)),
    ("Mixed_4e", 512, (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", 528, (256, 160, 320, 32, 128, 128)),
    ("Mixed_5b", 832, (256, 160, 320, 32, 128, 128)),
    ("Mixed_5c", 832, (384, 192, 384, 48, 128, 128)),
]


@pytest.fixture(autouse=True)
def one_thread():
    """One thread: on a shared 2-core machine, two threads make these passes ten times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def reference_units() -> dict[str, tuple[int, int, int]]:
    units = {"Conv3d_1a_7x7": (3, 64, 7), "Conv3d_2b_1x1": (64, 64, 1), "Conv3d_2c_3x3": (64, 192, 3)}
    for name, c, (w0, w1a, w1b, w2a, w2b, w3) in MIXED:
        units.update(
            {
                f"{name}.b0": (c, w0, 1),
                f"{name}.b1a": (c, w1a, 1),
                f"{name}.b1b": (w1a, w1b, 3),
                f"{name}.b2a": (c, w2a, 1),
                f"{name}.b2b": (w2a, w2b, 3),
                f"{name}.b3b": (c, w3, 1),
            }
        )
    return units


def write_weights(path, drop=(), reshape=(), extra=()):
    """A Kinetics-I3D-like state dict (random values) as the pre-0.4.1 file: no num_batches_tracked."""
    g = torch.Generator().manual_seed(0)
    state = OrderedDict()
    for unit, (c_in, c_out, k) in reference_units().items():
        state[f"{unit}.conv3d.weight"] = torch.randn(c_out, c_in, k, k, k, generator=g)
        for p in ("weight", "bias", "running_mean"):
            state[f"{unit}.bn.{p}"] = torch.randn(c_out, generator=g)
        state[f"{unit}.bn.running_var"] = torch.rand(c_out, generator=g) + 0.5
    state["logits.conv3d.weight"] = torch.randn(400, 1024, 1, 1, 1, generator=g)
    state["logits.conv3d.bias"] = torch.randn(400, generator=g)
    for key in drop:
        del state[key]
    for key in reshape:
        state[key] = state[key][:-1]
    for key in extra:
        state[key] = torch.zeros(1)
    torch.save(state, path)
    return state


def test_forward_backward_on_a_tiny_clip():
    torch.manual_seed(0)
    model = build_model("nvgesture", (3, 1), 25)
    assert [m.excite_a.out_features for m in model.mmtms()] == [512, 512, 528, 832, 832, 1024]
    shapes = {}
    for stage in model.branch1.stages:
        for name, block in stage.named_children():
            block.register_forward_hook(lambda m, i, o, name=name: shapes.__setitem__(name, tuple(o.shape)))
    x0, x1 = torch.randn(2, 3, 16, 32, 32), torch.randn(2, 1, 16, 32, 32)
    out = model(x0, x1)
    assert [tuple(lg.shape) for lg in out.logits] == [(2, 25), (2, 25)]
    # strides (4, 16, 16) before Mixed_4*, (8, 32, 32) before Mixed_5*: 64x224x224 clips give 16x14x14 and 8x7x7
    assert shapes["Mixed_4c"] == (2, 512, 4, 2, 2) and shapes["Mixed_4f"] == (2, 832, 4, 2, 2)
    assert shapes["Mixed_5b"] == (2, 832, 2, 1, 1) and shapes["Mixed_5c"] == (2, 1024, 2, 1, 1)
    sum(F.cross_entropy(lg, torch.tensor([3, 7])) for lg in out.logits).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("kernel, stride", [((3, 3, 3), (1, 1, 1)), ((7, 7, 7), (2, 2, 2)), ((1, 3, 3), (1, 2, 2))])
def test_units_pad_as_tensorflow_same(kernel, stride):
    """Output size ceil(size / stride); padding split evenly, the odd one at the far end (TF "SAME")."""
    torch.manual_seed(0)
    unit = Unit3D(2, 3, kernel, stride).eval()
    x = torch.randn(1, 2, 9, 8, 7)
    pads = []
    for size, k, s in zip((7, 8, 9), kernel[::-1], stride[::-1], strict=True):
        total = max((-(-size // s) - 1) * s + k - size, 0)
        pads += [total // 2, total - total // 2]
    expected = F.relu(unit.bn(F.conv3d(F.pad(x, pads), unit.conv3d.weight, stride=stride)))
    out = unit(x)
    assert out.shape[2:] == tuple(-(-n // s) for n, s in zip((9, 8, 7), stride, strict=True))
    assert torch.allclose(out, expected, atol=1e-6)
    pool, relu = MaxPoolSame(kernel, stride), torch.relu(x)  # pooled inputs are ReLU outputs
    assert torch.equal(pool(relu), F.max_pool3d(F.pad(relu, pads), kernel, stride))


def test_pretrained_weights_load_into_both_branches(tmp_path):
    path = tmp_path / "rgb_imagenet.pt"
    state = write_weights(path)
    model = build_model("nvgesture", (3, 1), 25, pretrained=str(path))
    rgb, depth = model.branch0.state_dict(), model.branch1.state_dict()
    loaded = 0
    for key, value in state.items():
        if key.startswith("logits."):
            continue
        ours = next(k for k in rgb if k.split(".", 2)[-1] == key and k.startswith("stages."))
        assert torch.equal(rgb[ours], value), key
        expected = value.mean(dim=1, keepdim=True) if key == "Conv3d_1a_7x7.conv3d.weight" else value
        assert torch.allclose(depth[ours], expected), key
        loaded += 1
    assert loaded == len(reference_units()) * 5
    assert model.branch1.stages[0].Conv3d_1a_7x7.conv3d.weight.shape == (64, 1, 7, 7, 7)
    assert model.branch0.head.out_features == 25  # a new head, not Kinetics' 400 logits


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"drop": ["Mixed_5c.b3b.bn.running_var"]}, "missing 1: Mixed_5c.b3b.bn.running_var"),
        (
            {"reshape": ["Mixed_4d.b1b.conv3d.weight"]},
            "wrong shape 1: Mixed_4d.b1b.conv3d.weight (255, 128, 3, 3, 3) (need (256, 128, 3, 3, 3))",
        ),
        ({"extra": ["Mixed_6a.b0.conv3d.weight"]}, "unexpected 1: Mixed_6a.b0.conv3d.weight"),
    ],
)
def test_a_mismatched_weights_file_lists_the_keys(tmp_path, kwargs, fragment):
    path = tmp_path / "weights.pt"
    write_weights(path, **kwargs)
    with pytest.raises(PretrainedWeightsError) as err:
        build_model("nvgesture", (3,), 25, pretrained=str(path))
    assert fragment in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


def test_a_missing_or_foreign_weights_file_is_a_one_line_error(tmp_path):
    with pytest.raises(PretrainedWeightsError, match="no such weights file"):
        build_model("nvgesture", (3,), 25, pretrained=str(tmp_path / "absent.pt"))
    (tmp_path / "text.pt").write_text("not a checkpoint")
    with pytest.raises(PretrainedWeightsError, match="not a PyTorch state dict"):
        build_model("nvgesture", (3,), 25, pretrained=str(tmp_path / "text.pt"))
    with pytest.raises(ValueError, match="--pretrained is for nvgesture"):
        build_model("cmnist", (3, 1), 10, pretrained=str(tmp_path / "text.pt"))


def test_cli_reports_a_missing_weights_file_in_one_line(tmp_path):
    with h5py.File(tmp_path / "nvgesture.h5", "w") as f:  # the smallest file in the stage's layout
        for split in ("train", "val", "test"):
            f[f"{split}/rgb"] = np.zeros((1, 64, 8, 8, 3), np.uint8)
            f[f"{split}/depth"] = np.zeros((1, 64, 8, 8, 1), np.uint8)
            f[f"{split}/label"], f[f"{split}/num_frames"] = np.zeros(1, np.int64), np.full(1, 64, np.int32)
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--dataset",
            "nvgesture",
            "--data",
            str(tmp_path / "nvgesture.h5"),
            "--pretrained",
            str(tmp_path / "absent.pt"),
            "--out",
            str(tmp_path / "r"),
        ],
    )
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert result.output.startswith(f"Error: {tmp_path / 'absent.pt'}: no such weights file")
