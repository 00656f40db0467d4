"""Modality dropout (ModDrop; Neverova, Wolf, Taylor and Nebout, "ModDrop: adaptive multi-modal gesture
recognition", 2015, §3.3): train the fused network while inputs of whole modalities go missing, so that no branch
can count on the other.

Each training step, with probability ``p`` (``--moddrop-p``), one modality's input is dropped (set to zero) for the
whole batch, the modality drawn uniformly; otherwise both are kept. Neverova et al. drop each modality independently
per sample; the per-step draw is the form this package's issue specifies and keeps every batch one kind of step, as
re-balancing steps are. Both branch losses are still minimised (§2's L): the dropped branch learns from the other
modality through the MMTMs alone, which is the point. Default p = 0.5 (ours: the paper reports no single value).

The draws come from a CPU generator seeded with (seed, epoch): a resumed run draws what an uninterrupted one would,
and a draw never waits for the device.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import Algorithm, seed_for


def drop_draws(seed: int, epoch: int, steps: int, p: float) -> list[int | None]:
    """The first ``steps`` draws of an epoch's stream: the modality dropped at each step, or None (a hand
    computation's reference for tests and readers)."""
    stream = torch.Generator().manual_seed(seed_for(seed, "moddrop", epoch))
    return [_draw(stream, p) for _ in range(steps)]


def _draw(stream: torch.Generator, p: float) -> int | None:
    u = torch.rand(2, generator=stream, dtype=torch.float64)
    return None if u[0].item() >= p else (0 if u[1].item() < 0.5 else 1)


class ModDrop(Algorithm):
    def begin_epoch(self, epoch: int) -> None:
        super().begin_epoch(epoch)
        self._stream = torch.Generator().manual_seed(seed_for(self.cfg.seed, "moddrop", epoch))
        self._dropped = [0, 0]
        self._steps = 0

    def step_inputs(self, inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        k = _draw(self._stream, self.cfg.moddrop_p)
        self._steps += 1
        if k is None:
            return inputs
        self._dropped[k] += 1
        return tuple(torch.zeros_like(x) if i == k else x for i, x in enumerate(inputs))

    def epoch_stats(self) -> dict[str, float]:
        steps = max(self._steps, 1)
        return {"dropped_m0": self._dropped[0] / steps, "dropped_m1": self._dropped[1] / steps}
