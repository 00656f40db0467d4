"""Balanced multi-modal learning: the guided algorithm (Alg. 1, §4.2) and its random variant (A.3).

Both take regular steps during the warm-up epoch(s), then mix in re-balancing steps (A.2): a step that
accelerates learning from m_k replaces branch k's MMTM gates by their running means over the regular steps so
far (see ``repro.models.mmtm``), so branch k fits the target from m_k alone during that step.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..config import RunConfig
from ..models.fusion import REBALANCE, REGULAR, DeviceFusion, Fusion
from .base import Algorithm, seed_for


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


class Guided(Algorithm):
    """Alg. 1. In regular mode, after each regular step: if |d_speed| > alpha, switch to re-balancing for Q
    steps, accelerating m0 if d_speed > 0 (theta'_0 learns fast relative to theta_0: branch 0 leans on m1),
    else m1; then return to regular mode. M keeps accumulating over regular steps only.

    The state machine runs on the device: after the warm-up each step's kind is a tensor (``DeviceFusion``), and
    the d_speed test, the window counter and the choice of branch are tensor operations, so a training step never
    waits for the device. :class:`GuidedReference` is the same algorithm decided on the host, step by step; the
    tests hold the two equal (same kinds of step, same d_speed, same parameters)."""

    def __init__(self, model: nn.Module, cfg: RunConfig):
        super().__init__(model, cfg)
        if self.speed is None:
            raise ValueError("guided re-balancing needs a two-branch model")
        self.alpha, self.window = cfg.alpha, cfg.window
        # Buffers, so the state machine is saved with the checkpoint and a window can span a resume.
        self.register_buffer("rebalancing", torch.zeros((), dtype=torch.bool))
        self.register_buffer("steps_in_window", torch.zeros((), dtype=torch.long))
        self.register_buffer("accelerated", torch.zeros((), dtype=torch.long))

    def next_fusion(self) -> Fusion | DeviceFusion:
        if self.warming_up:
            return REGULAR
        return DeviceFusion(torch.where(self.rebalancing, self.accelerated, -1))

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
