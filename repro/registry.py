"""What the package knows by name: the training algorithms and the datasets, one entry each (torch-free).

Everything that lists algorithms or datasets reads it: the run configuration (:func:`repro.config.resolve`), the
command line's choices, the pack planner, the reports' row order, names and colours, the benchmarks' shapes and the
doctor's hints. Classes and functions are named by ``"module:attribute"`` and imported only when a run needs them
(:func:`load`), so the planner, the reports and ``repro --help`` start without torch.

**Adding an algorithm**: write a subclass of :class:`repro.algorithms.base.Algorithm` (its docstring says which hooks
to override), then add one :class:`AlgorithmSpec` to :data:`ALGORITHMS`. Nothing else lists algorithms.

**Adding a dataset**: a prep stage (``data_prep/``), a reader returning a ``DatasetBundle`` (``repro/data/``), a model
builder (``repro/models/``), then one :class:`DatasetSpec` in :data:`DATASETS`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class AlgorithmSpec:
    """One training algorithm. ``packable``: it has a batched policy, so runs of it may share one stacked network
    (:mod:`repro.engine.packing`). ``needs_two_modalities``: it balances two branches, so uni-modal runs cannot
    use it. ``display``: its name in tables and legends; ``colour``: a matplotlib colour for its figures."""

    name: str
    cls: str
    display: str
    colour: str
    packable: bool = False
    needs_two_modalities: bool = True
    paper: bool = True  # one of the paper's Table-1 rows (else: beyond the paper, no paper value)


ALGORITHMS: dict[str, AlgorithmSpec] = {
    a.name: a
    for a in (
        AlgorithmSpec("vanilla", "repro.algorithms.vanilla:Vanilla", "vanilla", "tab:blue", packable=True,
                      needs_two_modalities=False),
        AlgorithmSpec("rubi", "repro.algorithms.rubi:RUBi", "RUBi", "tab:orange"),
        AlgorithmSpec("random", "repro.algorithms.balanced:RandomBalance", "random", "tab:green", packable=True),
        AlgorithmSpec("guided", "repro.algorithms.balanced:Guided", "guided", "tab:red", packable=True),
        # Beyond the paper: later methods against the same imbalance, on the paper's datasets (no paper value).
        AlgorithmSpec("ogm_ge", "repro.algorithms.ogm_ge:OGMGE", "OGM-GE", "tab:purple", paper=False),
        AlgorithmSpec("gblend", "repro.algorithms.gblend:GBlending", "G-Blending", "tab:brown", paper=False),
        AlgorithmSpec("moddrop", "repro.algorithms.moddrop:ModDrop", "ModDrop", "tab:pink", paper=False),
        AlgorithmSpec("pmr", "repro.algorithms.pmr:PMR", "PMR", "tab:olive", paper=False),
    )
}  # fmt: skip


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset: its modalities (name -> input channels; the first two are m0, m1 of the paper's setting), class
    count, model input shapes per modality (C, ...) as the benchmarks feed them, the reader (``"module:function"``,
    ``(path, modalities, train_limit, eval_limit, workers) -> DatasetBundle``), the model builder
    (``(in_channels, num_classes[, pretrained]) -> nn.Module``), the commands that prepare it, and the paper's
    training settings (§5, Table 1; the reference code's where the paper is silent), which
    :func:`repro.config.resolve` applies."""

    name: str
    display: str
    modalities: dict[str, int]
    num_classes: int
    input_shapes: tuple[tuple[int, ...], tuple[int, ...]]
    loader: str
    model: str
    prep_hint: str  # the Make command that prepares data/<name>.h5
    prep_command: str  # the command that writes the file given as {path}
    defaults: dict[str, Any] = field(default_factory=dict)
    in_memory: bool = True  # held on the device as uint8 (else streamed from disk by a DataLoader)


DATASETS: dict[str, DatasetSpec] = {
    d.name: d
    for d in (
        DatasetSpec(
            "cmnist",
            "Colored-and-gray MNIST",
            {"mono": 3, "gray": 1},
            10,
            ((3, 28, 28), (1, 28, 28)),
            "repro.data.cmnist:load",
            "repro.models.cnn:cmnist_net",
            "make data/cmnist.h5",
            "repro prep cmnist --out {path}",
            dict(
                modalities="mono,gray",  # m0 = monochromatic (coloured) image, m1 = gray image (§5.1)
                lr=0.01, momentum=0.9, batch_size=128, alpha=0.1, window=5,
                rubi_bias_modality=0,  # the colour is the shortcut by construction
            ),
        ),
        DatasetSpec(
            "modelnet40",
            "ModelNet40",
            {"front": 1, "rear": 1, **{f"view{k}": 1 for k in range(12)}},
            40,
            ((1, 224, 224), (1, 224, 224)),
            "repro.data.modelnet40:load",
            "repro.models.resnet:modelnet40_net",
            "make data MODELNET40_RAW=/path/to/ModelNet40",
            "repro prep modelnet40 --raw DIR --out {path}",
            dict(
                modalities="front,rear",  # m0 = view 0, m1 = view 6 of MVCNN's 12 (§5.1; the reference code's)
                lr=0.1, momentum=0.0, batch_size=8, alpha=0.01, window=5,
                # No shortcut by construction. Vanilla models have d_util ~ -0.1 (§5.4): u(m0|m1) > u(m1|m0), the
                # rear branch leans on the front view, so the front view is relied on greedily; RUBi's bias reads it.
                rubi_bias_modality=0,
            ),
        ),
        DatasetSpec(
            "nvgesture",
            "NVGesture",
            {"rgb": 3, "depth": 1},
            25,
            ((3, 64, 224, 224), (1, 64, 224, 224)),
            "repro.data.nvgesture:load",
            "repro.models.i3d:nvgesture_net",
            "make data NVGESTURE_RAW=/path/to/nvGesture",
            "repro prep nvgesture --raw DIR --out {path}",
            dict(
                modalities="rgb,depth",  # m0 = RGB, m1 = depth (§5.1, A.4)
                lr=0.01, momentum=0.9, batch_size=4, alpha=0.1, window=5,
                # depth: the modality a vanilla model relies on (§1: u(RGB|depth) = 0.01, u(depth|RGB) = 0.63)
                rubi_bias_modality=1,
            ),
            in_memory=False,
        ),
    )
}  # fmt: skip


def algorithm(name: str) -> AlgorithmSpec:
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; choose from {', '.join(ALGORITHMS)}")
    return ALGORITHMS[name]


def dataset(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name]


def load(path: str) -> Any:
    """The object named by ``"module:attribute"`` (imports the module)."""
    module, attribute = path.split(":")
    return getattr(importlib.import_module(module), attribute)
