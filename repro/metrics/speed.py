"""Conditional learning speed (Def. 4.1), accumulated online over the regular steps.

    mu(theta; i) = ||G||^2 / ||theta_(i)||^2      G: gradient at step i, theta_(i): the value after step i
    M(theta)     = sum of mu over regular steps (warm-up included; Alg. 1)
    s(m1|m0) = log M(theta'_0) / M(theta_0),   s(m0|m1) = log M(theta'_1) / M(theta_1)
    d_speed  = s(m1|m0) - s(m0|m1)

A group's norm is taken over all its parameters together (the sum of their squared norms), as the reference code
does. The logarithm's base is an option, default 10: the reference code uses log10 and the paper's thresholds
alpha (0.1, 0.01) were tuned with it.

Fused: the squared norms of every parameter come from one ``torch._foreach_norm`` call and are summed into the
four groups by one matrix product with a fixed membership matrix; nothing is copied to the host, so a step costs
a handful of kernels whatever the number of parameters (the reference code synchronises twice per parameter).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..models.twobranch import GROUP_NAMES


def _squared_norms(tensors: list[Tensor]) -> Tensor:
    """(P,) float32 vector of squared L2 norms, in one fused kernel launch per device and dtype."""
    return torch.stack(torch._foreach_norm(tensors)).float().pow(2)


class ConditionalSpeed(nn.Module):
    """Accumulates M(theta_0), M(theta'_0), M(theta_1), M(theta'_1) of Def. 4.1; its state lives in buffers
    (checkpointed). Every algorithm keeps one (``algorithm.speed``; ``algorithm.d_speed()`` reads it); to track
    d_speed in a loop without one, around each regular step::

        speed = ConditionalSpeed(model.parameter_groups())   # once; log base 10 as the reference code
        loss.backward()
        g = speed.gradient_sq()                               # G of step i, before the update
        optimizer.step()
        speed.update(g)                                       # mu(theta; i) with theta after the update
        float(speed.d_speed())                                # s(m1|m0) - s(m0|m1) so far
    """

    def __init__(self, groups: dict[str, list[nn.Parameter]], log_base: float = 10.0):
        super().__init__()
        unique: dict[int, nn.Parameter] = {}
        for name in GROUP_NAMES:
            for p in groups[name]:
                unique.setdefault(id(p), p)
        self.params = list(unique.values())
        index = {id(p): j for j, p in enumerate(self.params)}
        membership = torch.zeros(len(GROUP_NAMES), len(self.params))
        for g, name in enumerate(GROUP_NAMES):
            for p in groups[name]:
                membership[g, index[id(p)]] = 1.0
        device = self.params[0].device
        self.register_buffer("membership", membership.to(device), persistent=False)
        self.register_buffer("accumulated", torch.zeros(len(GROUP_NAMES), dtype=torch.float64, device=device))
        self.log_base = float(log_base)

    def gradient_sq(self) -> Tensor:
        """||G||^2 per parameter, to be taken after ``backward`` and before the optimizer step.
        A parameter without a gradient in this step contributes zero."""
        grads = [p.grad if p.grad is not None else torch.zeros((), device=p.device, dtype=p.dtype) for p in self.params]
        return _squared_norms(grads)

    @torch.no_grad()
    def update(self, gradient_sq: Tensor, where: Tensor | None = None) -> None:
        """Add mu(theta; i) of each group, with ||theta_(i)||^2 read now (after the optimizer step).
        ``where``: a bool tensor; when given, add only if it holds (a device-decided regular step, no host sync)."""
        weight_sq = _squared_norms([p.detach() for p in self.params])
        mu = ((self.membership @ gradient_sq) / (self.membership @ weight_sq)).double()
        if where is not None:
            mu = torch.where(where, mu, 0.0)
        self.accumulated += mu

    def speeds(self) -> Tensor:
        """(s(m1|m0), s(m0|m1)) as a device tensor (no host synchronisation)."""
        return speeds_from(self.accumulated, self.log_base)

    def d_speed(self) -> Tensor:
        s = self.speeds()
        return s[0] - s[1]


def speeds_from(m: Tensor, log_base: float) -> Tensor:
    """(s(m1|m0), s(m0|m1)) from M in GROUP_NAMES order along the last dimension of ``m`` (first dimension of
    the result), so that K packed models' (K, 4) accumulators give (2, K) with the same arithmetic as one."""
    m = m.movedim(-1, 0)
    return torch.stack([torch.log(m[1] / m[0]), torch.log(m[3] / m[2])]) / math.log(log_base)
