"""The public API: the paper's fusion, balancing algorithms and two diagnostics on your own two-modality model.

Wu et al., ICML 2022: a multi-modal DNN of two uni-modal branches joined by MMTMs (Fig. 1) learns *greedily*: one
branch leans on the other modality and the model under-uses its own (§3). Def. 2.1 measures that after training
(conditional utilization rates, with A.1's uni-modal models), Def. 4.1 during training (conditional learning speed),
and Alg. 1 (guided re-balancing) steers training by the latter. In your own loop::

    model = repro.two_branch(stages0, stages1, num_classes=10, example=((16,), (32,)), fuse_after=[0, 1])
    algorithm = repro.make_algorithm("guided", model, alpha=0.1, window=5)
    optimizer = torch.optim.SGD(algorithm.parameters(), lr=0.05, momentum=0.9)
    for epoch in range(1, epochs + 1):  # 1-based: epoch 1 is Alg. 1's warm-up (regular steps only)
        algorithm.begin_epoch(epoch)
        algorithm.train()
        for (x0, x1), y in loader:
            algorithm.training_step((x0, x1), y, optimizer)
    print(algorithm.d_speed(), repro.utilization_rates(model, train_loader, test_loader))

The engine (``repro train``) builds its algorithms with the same classes and measures its test records with
:func:`utilization_rates`, so a number printed here and one in a run's ``record.json`` come from one code path.
Everything the engine needs beyond this (run folders, packing, checkpoints) stays internal. Semver-stable from
version 0.1.0: ``repro.__all__`` lists exactly these names.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset, Subset, default_collate

from .algorithms import ALGORITHMS, Algorithm, AlgorithmData
from .config import RunConfig, check_algorithm_fields
from .metrics.speed import ConditionalSpeed
from .metrics.utilization import branch_accuracies, compute_squeeze_means
from .metrics.utilization import utilization_rates as rates_from_accuracies
from .models.mmtm import MMTM, configure_gate_means
from .models.twobranch import Branch, GlobalAveragePool, ModelOutput, TwoBranchNet
from .registry import algorithm as algorithm_spec

#: The ``dataset`` of a configuration made by :func:`make_algorithm`: the user's own data, no preset.
CUSTOM_DATASET = "custom"

#: RunConfig fields that belong to a training loop, not to an algorithm: in your own loop they are yours (the
#: optimizer's learning rate, the batch size, the number of epochs, the data), so :func:`make_algorithm` refuses them.
LOOP_FIELDS = frozenset(
    "dataset algorithm modalities setting data lr momentum weight_decay batch_size max_epochs stop_patience "
    "lr_plateau_factor lr_plateau_patience train_limit eval_limit compile device threads progress pretrained "
    "workers".split()
)

Batches = Iterable[tuple[Sequence[Tensor], Tensor]]


def two_branch(
    stages0: Sequence[nn.Module],
    stages1: Sequence[nn.Module],
    *,
    num_classes: int,
    example: tuple[Tensor | Sequence[int], Tensor | Sequence[int]],
    fuse_after: Sequence[int] | None = None,
    mmtm_ratio: float = 4.0,
) -> TwoBranchNet:
    """The multi-modal DNN of Fig. 1 from two backbones cut into the same number of stages.

    Branch k runs ``stagesk`` in order on modality m_k; after each stage index in ``fuse_after`` (default: every
    stage) an :class:`MMTM` joins the two branches' outputs, which may be feature maps (N, C, ...) or feature vectors
    (N, C). Each branch ends in a global average over every non-channel dimension and a linear head to
    ``num_classes`` logits; ŷ averages the two heads' logits (§2). Put any other pooling in the last stage.

    ``example``: one input of each modality, as a batch (x0, x1) or as shapes without the batch dimension, e.g.
    ``((16,), (3, 32, 32))``. One dry forward pass through the stages (evaluation mode, no gradient) gives the
    channel counts each MMTM joins and the heads' widths. Build on the CPU, then move the model with ``.to()``."""
    if len(stages0) != len(stages1):
        raise ValueError(f"both backbones must have the same number of stages, got {len(stages0)} and {len(stages1)}")
    fuse_after = list(range(len(stages0))) if fuse_after is None else sorted(fuse_after)
    if any(not 0 <= i < len(stages0) for i in fuse_after) or len(set(fuse_after)) != len(fuse_after):
        raise ValueError(f"fuse_after must name distinct stage indices in 0..{len(stages0) - 1}, got {fuse_after}")
    widths = [_stage_widths(stages, x) for stages, x in zip((stages0, stages1), example, strict=True)]
    branches = [
        Branch(list(stages), GlobalAveragePool(), nn.Linear(w[-1], num_classes))
        for stages, w in zip((stages0, stages1), widths, strict=True)
    ]
    channels = [(widths[0][i], widths[1][i]) for i in fuse_after]
    return TwoBranchNet(*branches, fuse_after=fuse_after, fuse_channels=channels, mmtm_ratio=mmtm_ratio)


@torch.no_grad()
def _stage_widths(stages: Sequence[nn.Module], example: Tensor | Sequence[int]) -> list[int]:
    """The channel count (dimension 1) after each stage, from one evaluation-mode pass of ``example``."""
    x = example if isinstance(example, Tensor) else torch.zeros(2, *example)
    widths = []
    modes = [m.training for m in stages]
    try:
        for stage in stages:
            x = stage.eval()(x)
            if x.dim() < 2:
                raise ValueError(f"a stage's output must be (N, C) or (N, C, ...), got shape {tuple(x.shape)}")
            widths.append(x.shape[1])
    finally:
        for stage, mode in zip(stages, modes, strict=True):
            stage.train(mode)
    return widths


def make_algorithm(
    name: str,
    model: nn.Module,
    *,
    train_set: Dataset | None = None,
    holdout_set: Dataset | None = None,
    eval_batch_size: int = 256,
    **knobs,
) -> Algorithm:
    """The training algorithm ``name`` (``vanilla``, ``rubi``, ``random`` (A.3), ``guided`` (Alg. 1) or any other
    in :data:`repro.registry.ALGORITHMS`) for ``model``, to drive in your own loop:

    - ``algorithm.begin_epoch(epoch)`` before each epoch, counting from 1 (the first ``warmup_epochs`` epochs take
      regular steps only, Alg. 1 and A.3), and ``algorithm.train()``;
    - ``algorithm.training_step((x0, x1), y, optimizer)`` per batch: the forward pass in the fusion the algorithm
      chooses (regular, or a re-balancing step of A.2), its loss, backward, the optimizer step and the update of
      Def. 4.1's accumulators; returns the detached loss, ŷ's logits and the step's fusion;
    - ``algorithm.d_speed()``: d_speed (Def. 4.1) so far, the quantity Alg. 1 steers by.

    Build the optimizer over ``algorithm.parameters()`` (RUBi adds its own), after this call. ``knobs`` are the
    algorithm's fields of :class:`repro.config.RunConfig` with its defaults (the paper's CMNIST values): ``alpha``
    (tolerance α, 0.1; the paper used 0.01 on ModelNet40), ``window`` (Q, 5), ``warmup_epochs`` (1), ``log_base``
    (10), ``seed`` (random steps), ``rubi_bias_modality``, ``l1``, ``gate_mean``, ``gate_mean_source``,
    ``precision`` and those of the methods beyond the paper (``ogm_alpha``, ``moddrop_p``, ``pmr_mu``, …).
    Learning rate, batch size and epochs are your loop's. Algorithms that read training data besides their batches
    take ``train_set`` (a ``Dataset`` of ``((x0, x1), y)``: PMR's prototypes) and ``holdout_set`` (part of the
    training data you do not train on: G-Blending's overfitting estimate)."""
    algorithm_spec(name)  # a ValueError naming the choices
    unknown = set(knobs) - {f.name for f in dataclasses.fields(RunConfig)}
    if unknown or set(knobs) & LOOP_FIELDS:
        bad = sorted(unknown | (set(knobs) & LOOP_FIELDS))
        raise TypeError(f"make_algorithm() takes the algorithm's knobs, not {bad} (rate, batches, epochs: your loop's)")
    cfg = RunConfig(dataset=CUSTOM_DATASET, algorithm=name, modalities="m0,m1", **knobs)
    check_algorithm_fields(cfg)
    configure_gate_means(model, cfg.gate_mean, cfg.gate_mean_source)
    device = next(model.parameters()).device
    algorithm = ALGORITHMS[name](model, cfg).to(device)
    if algorithm.holdout_fraction > 0 and holdout_set is None:
        raise ValueError(f"{name} estimates on training data you do not train on: pass holdout_set=")
    if train_set is not None or holdout_set is not None:
        splits = [_DatasetSplit(d, device) if d is not None else None for d in (train_set, holdout_set)]
        algorithm.data = AlgorithmData(splits[0], splits[1], eval_batch_size)
    return algorithm


def utilization_rates(model: nn.Module, train_batches: Batches, test_batches: Batches) -> dict[str, float]:
    """Conditional utilization rates (Def. 2.1) of a two-branch ``model`` on ``test_batches``.

    A.1's uni-modal models f'_0, f'_1: in every MMTM the other modality's squeeze vector is replaced by its mean over
    ``train_batches`` (stored in the MMTMs' ``squeeze_mean_a/b`` buffers, overwriting earlier means). Returns the
    accuracies in percent of ŷ (``acc``), of each branch f0, f1 (``acc_branch0/1``) and of f'0, f'1
    (``acc_branch0/1_unimodal``), and ``u_m1_given_m0`` = (A(f0) − A(f'0)) / A(f0), ``u_m0_given_m1`` likewise,
    ``d_util`` = u(m1|m0) − u(m0|m1). A rate is negative where cutting the other modality helps a branch (the
    other modality misleads it at test time), so d_util can leave [−1, 1]. Batches are ``((x0, x1), y)``, e.g.
    from a ``DataLoader`` (moved to the model's device); evaluation mode, regular fusion, no gradient. The engine's
    ``test`` record is this function on the kept checkpoint."""
    if not (hasattr(model, "mmtms") and model.mmtms()):
        raise ValueError("utilization rates need a two-branch model joined by MMTMs (a TwoBranchNet)")
    device = next(model.parameters()).device
    compute_squeeze_means(model, _on(device, train_batches))
    accuracies = branch_accuracies(model, _on(device, test_batches), unimodal=True)
    return {**accuracies, **rates_from_accuracies(accuracies)}


def _on(device: torch.device, batches: Batches) -> Iterator[tuple[tuple[Tensor, ...], Tensor]]:
    for inputs, y in batches:
        yield tuple(x.to(device) for x in inputs), y.to(device)


class _DatasetSplit:
    """A ``Dataset`` of ``((x0, x1), y)`` as the engine's splits look to an algorithm (``len``, ``subset``,
    ``batches(batch_size, generator=None)``: shuffled by ``generator`` when given, on ``device``)."""

    def __init__(self, dataset: Dataset, device: torch.device):
        self.dataset, self.device = dataset, device

    def __len__(self) -> int:
        return len(self.dataset)

    def subset(self, indices: Tensor) -> _DatasetSplit:
        return _DatasetSplit(Subset(self.dataset, indices.tolist()), self.device)

    def batches(self, batch_size: int, *, generator: torch.Generator | None = None) -> Iterator:
        n = len(self)
        order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
        collated = (default_collate([self.dataset[i] for i in idx.tolist()]) for idx in order.split(batch_size))
        return _on(self.device, collated)


__all__ = [
    "MMTM",
    "Algorithm",
    "ConditionalSpeed",
    "ModelOutput",
    "TwoBranchNet",
    "make_algorithm",
    "two_branch",
    "utilization_rates",
]
