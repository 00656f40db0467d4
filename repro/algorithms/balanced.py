"""Balanced multi-modal learning: the guided algorithm (Alg. 1, §4.2) and its random variant (A.3).

Both take regular steps during the warm-up epoch(s), then mix in re-balancing steps (A.2): a step that
accelerates learning from m_k replaces branch k's MMTM gates by their running means over the regular steps so
far (see ``repro.models.mmtm``), so branch k fits the target from m_k alone during that step.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..config import RunConfig
from ..metrics.speed import speeds_from
from ..models.fusion import REBALANCE, REGULAR, DeviceFusion, Fusion
from .base import Algorithm, PackedPolicy, seed_for


def alg1_transition(
    rebalancing: Tensor,
    steps_in_window: Tensor,
    accelerated: Tensor,
    regular: Tensor,
    d: Tensor,
    alpha: float | Tensor,
    window: int | Tensor,
) -> tuple[Tensor, Tensor, Tensor]:
    """Alg. 1's state after a step, as tensor operations (elementwise, so also for K packed models at once):
    after a regular step with |d_speed| > alpha, re-balance for ``window`` steps the branch whose modality
    learns slowly (m0 if d_speed > 0, else m1); after a re-balancing step, count it and end the window."""
    trigger = regular & (d.abs() > alpha)  # NaN never triggers, as on the host
    steps = torch.where(trigger, 0, torch.where(regular, steps_in_window, steps_in_window + 1))
    rebalancing = trigger | (~regular & rebalancing & (steps != window))
    accelerated = torch.where(trigger, (~(d > 0)).long(), accelerated)
    return rebalancing, steps, accelerated


class GuidedPolicy(PackedPolicy):
    """Alg. 1 for K packed runs: the state machine of each run as (K,) tensors, each run with its own alpha and Q."""

    def __init__(self, algorithms: list[Guided], epochs: list[int], device: torch.device):
        super().__init__(algorithms, epochs, device)
        self.rebalancing = torch.stack([a.rebalancing for a in algorithms])
        self.steps_in_window = torch.stack([a.steps_in_window for a in algorithms])
        self.accelerated = torch.stack([a.accelerated for a in algorithms])
        self.alpha = torch.tensor([a.cfg.alpha for a in algorithms], dtype=torch.float64, device=device)
        self.window = torch.tensor([a.cfg.window for a in algorithms], device=device)
        self.log_base = algorithms[0].cfg.log_base

    def _kinds(self) -> Tensor:
        return torch.where(self.rebalancing, self.accelerated, -1)

    def after_step(self, regular: Tensor, accumulated: Tensor) -> None:
        d = speeds_from(accumulated, self.log_base)
        state = alg1_transition(
            self.rebalancing, self.steps_in_window, self.accelerated, regular, d[0] - d[1], self.alpha, self.window
        )
        old = (self.rebalancing, self.steps_in_window, self.accelerated)
        self.rebalancing, self.steps_in_window, self.accelerated = (
            torch.where(self.warm, o, n) for o, n in zip(old, state, strict=True)
        )

    def write_back(self) -> None:
        for j, a in enumerate(self.algorithms):
            a.rebalancing.copy_(self.rebalancing[j])
            a.steps_in_window.copy_(self.steps_in_window[j])
            a.accelerated.copy_(self.accelerated[j])


class RandomPolicy(PackedPolicy):
    """A.3 for K packed runs: each run draws its kinds of step from its own stream, as :class:`RandomBalance`."""

    def __init__(self, algorithms: list[RandomBalance], epochs: list[int], device: torch.device):
        super().__init__(algorithms, epochs, device)
        self.generators = [
            torch.Generator().manual_seed(seed_for(a.cfg.seed, "random-steps", e))
            for a, e in zip(algorithms, epochs, strict=True)
        ]

    def _kinds(self) -> Tensor:
        draws = [
            -1 if warm else int(torch.randint(3, (), generator=g)) - 1  # no draw in the warm-up (A.3)
            for g, warm in zip(self.generators, self.warming_up, strict=True)
        ]
        return torch.tensor(draws).to(self.device, non_blocking=True)


class Guided(Algorithm):
    """Alg. 1. In regular mode, after each regular step: if |d_speed| > alpha, switch to re-balancing for Q
    steps, accelerating m0 if d_speed > 0 (theta'_0 learns fast relative to theta_0: branch 0 leans on m1),
    else m1; then return to regular mode. M keeps accumulating over regular steps only.

    The state machine runs on the device: after the warm-up each step's kind is a tensor (``DeviceFusion``), and
    the d_speed test, the window counter and the choice of branch are tensor operations, so a training step never
    waits for the device. :class:`GuidedReference` is the same algorithm decided on the host, step by step; the
    tests hold the two equal (same kinds of step, same d_speed, same parameters)."""

    packed_policy = GuidedPolicy

    def __init__(self, model: nn.Module, cfg: RunConfig):
        super().__init__(model, cfg)
        if self.speed is None:
            raise ValueError("guided re-balancing needs a two-branch model")
        self.alpha, self.window = cfg.alpha, cfg.window
        # Buffers, so the state machine is saved with the checkpoint and a window can span a resume.
        self.register_buffer("rebalancing", torch.zeros((), dtype=torch.bool))
        self.register_buffer("steps_in_window", torch.zeros((), dtype=torch.long))
        self.register_buffer("accelerated", torch.zeros((), dtype=torch.long))
        self._excitations: _Excitations | None = None

    def next_fusion(self) -> Fusion | DeviceFusion:
        if self.warming_up:
            return REGULAR
        return DeviceFusion(torch.where(self.rebalancing, self.accelerated, -1))

    def update(self, fusion: Fusion | DeviceFusion, optimizer: torch.optim.Optimizer) -> None:
        if isinstance(fusion, DeviceFusion):
            self._device_decided_update(fusion, optimizer)
        else:
            super().update(fusion, optimizer)

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

    def evaluation_fusion(self, epoch: int) -> Fusion:
        """Alg. 1's state after the epoch's last step (regular after the warm-up epoch; one host sync)."""
        return REBALANCE[int(self.accelerated)] if bool(self.rebalancing) else REGULAR

    @torch.no_grad()
    def after_step(self, fusion: Fusion | DeviceFusion) -> None:
        if self.warming_up:
            return
        regular = torch.as_tensor(fusion.code, device=self.rebalancing.device) < 0
        state = alg1_transition(
            self.rebalancing,
            self.steps_in_window,
            self.accelerated,
            regular,
            self.speed.d_speed(),
            self.alpha,
            self.window,
        )
        for buffer, value in zip((self.rebalancing, self.steps_in_window, self.accelerated), state, strict=True):
            buffer.copy_(value)


class GuidedReference(Guided):
    """Alg. 1 decided on the host (synchronising on d_speed every step): the executable specification that
    :class:`Guided` is tested against. Not in the registry."""

    def next_fusion(self) -> Fusion:
        if self.warming_up or not bool(self.rebalancing):
            return REGULAR
        return REBALANCE[int(self.accelerated)]

    def after_step(self, fusion: Fusion) -> None:
        if self.warming_up:
            return
        if fusion.is_regular:
            d = float(self.speed.d_speed())
            if abs(d) > self.alpha:
                self.rebalancing.fill_(True)
                self.steps_in_window.zero_()
                self.accelerated.fill_(0 if d > 0 else 1)
        else:
            self.steps_in_window += 1
            if int(self.steps_in_window) == self.window:
                self.rebalancing.fill_(False)


class RandomBalance(Algorithm):
    """A.3: after the warm-up, each step is drawn uniformly from {regular, re-balance m0, re-balance m1}."""

    CHOICES = (REGULAR, REBALANCE[0], REBALANCE[1])
    packed_policy = RandomPolicy

    def __init__(self, model: nn.Module, cfg: RunConfig):
        super().__init__(model, cfg)
        if self.speed is None:
            raise ValueError("random re-balancing needs a two-branch model")
        self.generator = torch.Generator()

    def begin_epoch(self, epoch: int) -> None:
        super().begin_epoch(epoch)
        self.generator.manual_seed(seed_for(self.cfg.seed, "random-steps", epoch))

    def next_fusion(self) -> Fusion:
        if self.warming_up:
            return REGULAR
        return self.CHOICES[int(torch.randint(3, (), generator=self.generator))]

    def evaluation_fusion(self, epoch: int) -> Fusion:
        """A kind drawn uniformly, as the reference code's callback draws one after every step past the warm-up
        (regular after a warm-up epoch). The draw comes from a stream of its own, seeded by (seed, epoch), so the
        training steps' draws, and the records of runs made before this existed, do not change."""
        if epoch <= self.cfg.warmup_epochs:
            return REGULAR
        generator = torch.Generator().manual_seed(seed_for(self.cfg.seed, "evaluation-state", epoch))
        return self.CHOICES[int(torch.randint(3, (), generator=generator))]


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
