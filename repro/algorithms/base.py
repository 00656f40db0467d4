"""The algorithm interface: one training step, the same for every method (DomainBed's ``update``).

The engine calls ``begin_epoch`` then ``training_step`` for each batch and never branches on the algorithm's
name. A subclass changes only what differs: the loss (RUBi), or which fusion each step uses and what it decides
after a step (random, guided re-balancing). An algorithm is an ``nn.Module`` holding the model, so its state dict
carries the model, the conditional-speed accumulators and any extra state (checkpointed for resume).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..hparams import RunConfig
from ..metrics.speed import ConditionalSpeed
from ..models.fusion import REGULAR, Fusion
from ..models.twobranch import ModelOutput


@dataclass
class StepResult:
    loss: Tensor  # detached scalar
    prediction: Tensor  # detached logits of y_hat, for the running training accuracy
    fusion: Fusion  # which kind of step this was (regular or re-balancing)


def seed_for(seed: int, *keys: object) -> int:
    """A stable 63-bit seed for one purpose (e.g. ``seed_for(s, "data", epoch)``), so each epoch's randomness is
    a pure function of (seed, epoch): a resumed run draws exactly what an uninterrupted one would."""
    digest = hashlib.sha256(repr((seed,) + keys).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def l1_norm(model: nn.Module) -> Tensor:
    """||theta||_1 over all model parameters (§5.3; θ "stands for all model parameters", fusion included)."""
    return torch.stack([p.abs().sum() for p in model.parameters()]).sum()


class Algorithm(nn.Module):
    """Vanilla multi-modal learning: minimise L = CE(y, y_hat_0) + CE(y, y_hat_1) with regular steps (§2)."""

    def __init__(self, model: nn.Module, cfg: RunConfig):
        super().__init__()
        self.model = model
        self.cfg = cfg
        self.epoch = 0
        # Def. 4.1 is tracked for every two-branch run, whatever the algorithm, so d_speed can be compared.
        self.speed = ConditionalSpeed(model.parameter_groups(), cfg.log_base) if model.mmtms() else None

    # --- what subclasses override -------------------------------------------------------------------------
    def next_fusion(self) -> Fusion:
        """The kind of step to take next."""
        return REGULAR

    def loss(self, out: ModelOutput, y: Tensor) -> Tensor:
        """Sum of the modality-specific losses (one per branch)."""
        return sum(F.cross_entropy(logits, y) for logits in out.logits)

    def after_step(self, fusion: Fusion) -> None:
        """Called after every optimizer step, with the fusion the step used."""

    # --- shared ---------------------------------------------------------------------------------------------
    @property
    def warming_up(self) -> bool:
        """Alg. 1 / A.3: the first ``warmup_epochs`` epochs take regular steps only."""
        return self.epoch <= self.cfg.warmup_epochs

    def begin_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def training_step(self, inputs: tuple[Tensor, ...], y: Tensor, optimizer: torch.optim.Optimizer) -> StepResult:
        fusion = self.next_fusion()
        out = self.model(*inputs, fusion=fusion)
        loss = self.loss(out, y)
        if self.cfg.l1 > 0:
            loss = loss + self.cfg.l1 * l1_norm(self.model)  # §5.3: L' = L + lambda ||theta||_1
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        track_speed = self.speed is not None and fusion.is_regular  # M sums over regular steps (Alg. 1)
        if track_speed:
            gradient_sq = self.speed.gradient_sq()
        optimizer.step()
        if track_speed:
            self.speed.update(gradient_sq)
        self.after_step(fusion)
        return StepResult(loss.detach(), out.prediction.detach(), fusion)

    def d_speed(self) -> float | None:
        return float(self.speed.d_speed()) if self.speed is not None else None
