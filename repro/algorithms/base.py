"""The algorithm interface: one training step, the same for every method (DomainBed's ``update``).

The engine calls ``begin_epoch`` then ``training_step`` for each batch and never branches on the algorithm's
name. A subclass changes only what differs: the loss (RUBi, G-Blending, PMR), which fusion each step uses and what it
decides after a step (random, guided re-balancing), the step's inputs (ModDrop) or its gradients before the update
(OGM-GE). An algorithm that needs data besides its batches (prototypes, held-out losses) reads ``self.data``
(:class:`AlgorithmData`), which the engine sets before the first epoch; one that needs a held-out part of the
training split says how large in ``holdout_fraction``. An algorithm is an ``nn.Module`` holding the model, so its
state dict carries the model, the conditional-speed accumulators and any extra state (checkpointed for resume).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import RunConfig
from ..metrics.sparsity import l1_norm
from ..metrics.speed import ConditionalSpeed
from ..models.fusion import REGULAR, DeviceFusion, Fusion
from ..models.twobranch import ModelOutput


@dataclass
class AlgorithmData:
    """What an algorithm may read besides its batches: the training split it trains on, the held-out part of the
    training split (None unless ``holdout_fraction`` > 0; never trained on, never the validation or test split) and
    the batch size of evaluation passes. Splits have ``batches(batch_size, generator=None)`` and ``len``."""

    train: Any
    holdout: Any | None
    eval_batch_size: int


@dataclass
class StepResult:
    loss: Tensor  # detached scalar
    prediction: Tensor  # detached logits of y_hat, for the running training accuracy
    fusion: Fusion | DeviceFusion  # which kind of step this was (regular or re-balancing)


def seed_for(seed: int, *keys: object) -> int:
    """A stable 63-bit seed for one purpose (e.g. ``seed_for(s, "data", epoch)``), so each epoch's randomness is
    a pure function of (seed, epoch): a resumed run draws exactly what an uninterrupted one would."""
    digest = hashlib.sha256(repr((seed,) + keys).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class Algorithm(nn.Module):
    """Vanilla multi-modal learning: minimise L = CE(y, y_hat_0) + CE(y, y_hat_1) with regular steps (§2)."""

    def __init__(self, model: nn.Module, cfg: RunConfig):
        super().__init__()
        self.model = model
        self.cfg = cfg
        self.epoch = 0
        # Def. 4.1 is tracked for every two-branch run, whatever the algorithm, so d_speed can be compared.
        self.speed = ConditionalSpeed(model.parameter_groups(), cfg.log_base) if model.mmtms() else None
        self.autocast_dtype = torch.bfloat16 if cfg.precision == "bf16" else None
        self.data: AlgorithmData | None = None  # set by the engine (or a user's loop) before the first epoch

    #: The batched policy for packed runs (:class:`PackedPolicy` or a subclass), or None: not packable.
    packed_policy: type[PackedPolicy] | None = None

    # --- what subclasses override -------------------------------------------------------------------------
    def next_fusion(self) -> Fusion:
        """The kind of step to take next."""
        return REGULAR

    def loss(self, out: ModelOutput, y: Tensor) -> Tensor:
        """Sum of the modality-specific losses (one per branch)."""
        return sum(F.cross_entropy(logits, y) for logits in out.logits)

    def after_step(self, fusion: Fusion) -> None:
        """Called after every optimizer step, with the fusion the step used."""

    def step_inputs(self, inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """The inputs this step trains on (ModDrop drops one); the batch's by default."""
        return inputs

    def after_backward(self, out: ModelOutput, y: Tensor) -> None:
        """Called between the backward pass and the update, with the step's outputs: the place to change gradients
        (OGM-GE). Must not synchronise with the host per parameter."""

    def epoch_stats(self) -> dict[str, float]:
        """This algorithm's own statistics of the epoch just trained (recorded under ``algorithm`` in the epoch's
        entry); read once per epoch, so per-step tallies stay on the device until then."""
        return {}

    @property
    def holdout_fraction(self) -> float:
        """Fraction of the training split to hold out from training and hand over as ``data.holdout`` (G-Blending)."""
        return 0.0

    def evaluation_fusion(self, epoch: int) -> Fusion | None:
        """The fusion this algorithm's next training step would take, after training epoch ``epoch``: the state
        the authors' code evaluates validation and test in (it never resets its balancing callback's fusion
        before evaluating; docs/fidelity.md). None: the algorithm always steps regularly, so the standard
        evaluation is the reference evaluation too and no second validation pass is needed."""
        return None

    # --- shared ---------------------------------------------------------------------------------------------
    @property
    def warming_up(self) -> bool:
        """Alg. 1 / A.3: the first ``warmup_epochs`` epochs take regular steps only."""
        return self.epoch <= self.cfg.warmup_epochs

    def begin_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def training_step(self, inputs: tuple[Tensor, ...], y: Tensor, optimizer: torch.optim.Optimizer) -> StepResult:
        fusion = self.next_fusion()
        inputs = self.step_inputs(inputs)
        with torch.autocast(
            inputs[0].device.type, dtype=self.autocast_dtype or torch.bfloat16, enabled=self.autocast_dtype is not None
        ):
            out = self.model(*inputs, fusion=fusion)
            loss = self.loss(out, y)
            if self.cfg.l1 > 0:
                loss = loss + self.cfg.l1 * l1_norm(self.model)  # §5.3: L' = L + lambda ||theta||_1
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.after_backward(out, y)
        self.update(fusion, optimizer)
        self.after_step(fusion)
        return StepResult(loss.detach(), out.prediction.detach(), fusion)

    def update(self, fusion: Fusion, optimizer: torch.optim.Optimizer) -> None:
        """The optimizer step, and M's update after a regular step (Def. 4.1; M sums over regular steps, Alg. 1)."""
        track_speed = self.speed is not None and fusion.is_regular
        if track_speed:
            gradient_sq = self.speed.gradient_sq()
        optimizer.step()
        if track_speed:
            self.speed.update(gradient_sq)

    def d_speed(self) -> float | None:
        return float(self.speed.d_speed()) if self.speed is not None else None


class PackedPolicy:
    """How K packed runs of one algorithm choose their kind of step together, as tensors (:mod:`repro.engine.packed`):
    the batched twin of ``next_fusion`` and ``after_step``. This one takes regular steps only (vanilla); an algorithm
    that re-balances gives its own (``Algorithm.packed_policy``). The warm-up (Alg. 1, A.3) is per run: runs of one
    pack may be at different epochs after a resume."""

    def __init__(self, algorithms: list[Algorithm], epochs: list[int], device: torch.device):
        self.algorithms, self.epochs, self.device = algorithms, epochs, device
        self.k = len(algorithms)
        self.warming_up = [e <= a.cfg.warmup_epochs for a, e in zip(algorithms, epochs, strict=True)]
        self.warm = torch.tensor(self.warming_up, device=device)

    def step_kinds(self) -> Tensor:
        """(K,) long: each run's kind of step, -1 regular, j re-balance m_j; regular during a run's warm-up."""
        return torch.where(self.warm, -1, self._kinds())

    def _kinds(self) -> Tensor:
        return torch.full((self.k,), -1, device=self.device)

    def after_step(self, regular: Tensor, accumulated: Tensor) -> None:
        """After the K steps: ``regular`` (K,) bool, ``accumulated`` (K, 4) the runs' M (Def. 4.1)."""

    def write_back(self) -> None:
        """Each run's policy state into its algorithm, at the end of the epoch."""
