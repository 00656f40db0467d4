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

from ..config import RunConfig
from ..metrics.speed import ConditionalSpeed
from ..models.fusion import REGULAR, DeviceFusion, Fusion
from ..models.twobranch import ModelOutput


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
        self.autocast_dtype = torch.bfloat16 if cfg.precision == "bf16" else None
        self._excitations: _Excitations | None = None

    # --- what subclasses override -------------------------------------------------------------------------
    def next_fusion(self) -> Fusion:
        """The kind of step to take next."""
        return REGULAR

    def loss(self, out: ModelOutput, y: Tensor) -> Tensor:
        """Sum of the modality-specific losses (one per branch)."""
        return sum(F.cross_entropy(logits, y) for logits in out.logits)

    def after_step(self, fusion: Fusion) -> None:
        """Called after every optimizer step, with the fusion the step used."""

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
        with torch.autocast(
            inputs[0].device.type, dtype=self.autocast_dtype or torch.bfloat16, enabled=self.autocast_dtype is not None
        ):
            out = self.model(*inputs, fusion=fusion)
            loss = self.loss(out, y)
            if self.cfg.l1 > 0:
                loss = loss + self.cfg.l1 * l1_norm(self.model)  # §5.3: L' = L + lambda ||theta||_1
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if isinstance(fusion, DeviceFusion):
            self._device_decided_update(fusion, optimizer)
        else:
            track_speed = self.speed is not None and fusion.is_regular  # M sums over regular steps (Alg. 1)
            if track_speed:
                gradient_sq = self.speed.gradient_sq()
            optimizer.step()
            if track_speed:
                self.speed.update(gradient_sq)
        self.after_step(fusion)
        return StepResult(loss.detach(), out.prediction.detach(), fusion)

    def _device_decided_update(self, fusion: DeviceFusion, optimizer: torch.optim.Optimizer) -> None:
        """The optimizer step and the M update of a step whose kind only the device knows (no host sync).

        It reproduces the host-decided step exactly: there, a re-balancing step on m_k leaves branch k's
        excitation layers without gradient (their gates were replaced by constants), so SGD skips them, momentum
        included; here they get zero gradients, and their values and momentum buffers are put back afterwards
        wherever the step was re-balancing on their branch. M grows only on regular steps (Alg. 1)."""
        regular = fusion.code < 0
        gradient_sq = self.speed.gradient_sq()
        if self._excitations is None:
            self._excitations = _Excitations(self.model)
        with torch.no_grad():
            frozen = self._excitations.frozen(fusion.code)
            tensors = self._excitations.tensors(optimizer)
            saved = _flat(tensors)
        optimizer.step()
        with torch.no_grad():
            _assign(tensors, torch.where(frozen[: saved.numel()], saved, _flat(tensors)))
        self.speed.update(gradient_sq, where=regular)

    def d_speed(self) -> float | None:
        return float(self.speed.d_speed()) if self.speed is not None else None


def _flat(tensors: list[Tensor]) -> Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def _assign(tensors: list[Tensor], flat: Tensor) -> None:
    torch._foreach_copy_(
        tensors, [v.view_as(t) for v, t in zip(flat.split([t.numel() for t in tensors]), tensors, strict=True)]
    )


class _Excitations:
    """Every MMTM's excitation parameters for branch 0 (theta'_0 only) and branch 1, flattened in one order, with
    masks saying which elements belong to which branch; their SGD momentum buffers follow in the same order."""

    def __init__(self, model: nn.Module):
        self.params = [
            p for k in (0, 1) for m in model.mmtms() for p in (m.excite_a if k == 0 else m.excite_b).parameters()
        ]
        branch = torch.cat(
            [
                torch.full((p.numel(),), k)
                for k in (0, 1)
                for m in model.mmtms()
                for p in (m.excite_a if k == 0 else m.excite_b).parameters()
            ]
        )
        branch = branch.to(self.params[0].device)
        self.branch = torch.cat([branch, branch])  # parameters, then their momentum buffers

    def tensors(self, optimizer: torch.optim.Optimizer) -> list[Tensor]:
        """The parameters, then their momentum buffers where the optimizer has them all (not before its first
        step, when no re-balancing step can happen yet)."""
        buffers = [optimizer.state.get(p, {}).get("momentum_buffer") for p in self.params]
        if any(b is None for b in buffers):
            return list(self.params)
        return list(self.params) + buffers

    def frozen(self, code: Tensor) -> Tensor:
        """Per element: does this step leave it untouched (re-balancing on its branch)?"""
        return self.branch == code
