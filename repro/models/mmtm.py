"""Multi-modal transfer module (Joze et al., 2020), as used by the paper (Fig. 1, A.1, A.2).

For feature maps A (C_A channels) and B (C_B channels) of the two branches:
    S_A, S_B = global average over every non-channel dimension (squeeze)
    Z = ReLU(W [S_A, S_B] + b)                      hidden size int(2 (C_A + C_B) / ratio), ratio 4
    E_A = W_A Z + b_A,  E_B = W_B Z + b_B          (excitation)
    outputs  A * sigma(E_A),  B * sigma(E_B)       channel-wise

Gate scale: the appendix (A.1) writes ``2 * sigma(E)``; both public implementations (MMTM's and the greedy
paper's reference code) use ``sigma(E)``. We follow the code, since the paper's numbers came from it.

Parameter groups (paper footnote 1): the shared squeeze layer ``squeeze`` belongs to both
theta'_0 and theta'_1; ``excite_a`` to theta'_0 only; ``excite_b`` to theta'_1 only.

Buffers (saved in the state dict, moved by ``.to()``):
    gate_mean_a/b, gate_count: running means of the gates sigma(E_A), sigma(E_B) that a re-balancing step puts in
        place of a branch's gates (A.2). What they average is set by :func:`configure_gate_means`:
        ``regular-steps`` (the default, A.2's D_passed): the samples of regular training steps only; never
            evaluation passes or re-balancing steps.
        ``all-passes`` (the reference code, ``src/balanced_mmtm.py``, ``MMTM_mitigate.forward``): every forward
            pass since the module was built (regular and re-balancing steps, validation and test passes), each
            pass's batch mean weighing one, the current pass included before its gates are replaced.
        and from which gate branch 1's mean is taken: ``own`` (default) or ``branch0``, the reference code's
        defect (``running_avg_weight_skeleton`` is updated with the *visual* gate ``vis_out``), possible only
        where both branches have the same width. The reference code also keeps the means outside the state dict;
        not copied.
    squeeze_mean_a/b: training-set means of S_A, S_B (A.1), filled by
        :func:`repro.metrics.utilization.compute_squeeze_means` before the uni-modal evaluation.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..config import GATE_MEAN_SOURCES, GATE_MEANS  # the option values (config is torch-free)
from .fusion import REGULAR, DeviceFusion, Fusion


class FusionConfigError(ValueError):
    """A fusion option that this model cannot take (e.g. ``--gate-mean-source branch0`` on unequal widths)."""


def squeeze(x: Tensor) -> Tensor:
    """Global average over every dimension after the channel dimension: (B, C, ...) -> (B, C)."""
    return x.flatten(2).mean(dim=2) if x.dim() > 2 else x


def _broadcast_gate(gate: Tensor, like: Tensor) -> Tensor:
    """(B, C) gate -> (B, C, 1, ..., 1) so that it scales every position of the feature map ``like``."""
    return gate.reshape(gate.shape + (1,) * (like.dim() - 2))


class MMTM(nn.Module):
    """The multi-modal transfer module joining two branches at one depth (Joze et al., 2020; the paper's Fig. 1).

    ``forward(a, b, fusion)`` takes the two branches' features there, maps (N, C_A, ...) and (N, C_B, ...) or
    vectors (N, C_A) and (N, C_B), and returns them gated channel-wise: ``a * sigma(E_A)``, ``b * sigma(E_B)``,
    where E_A, E_B are computed from both squeezed inputs (the module's docstring has the equations). ``fusion``
    (:class:`repro.models.fusion.Fusion`): regular; a re-balancing step on m_k (A.2), which replaces branch k's gates
    by their running means; or the cut of A.1, where the other modality's squeeze is its training-set mean.
    Parameters: ``squeeze`` (shared, in θ'_0 and θ'_1 of Def. 4.1), ``excite_a`` (θ'_0), ``excite_b`` (θ'_1);
    hidden width int(2 (C_A + C_B) / ratio)."""

    def __init__(self, channels_a: int, channels_b: int, ratio: float = 4.0):
        super().__init__()
        hidden = int(2 * (channels_a + channels_b) / ratio)
        self.squeeze = nn.Linear(channels_a + channels_b, hidden)
        self.excite_a = nn.Linear(hidden, channels_a)
        self.excite_b = nn.Linear(hidden, channels_b)
        self.register_buffer("gate_mean_a", torch.zeros(channels_a))
        self.register_buffer("gate_mean_b", torch.zeros(channels_b))
        self.register_buffer("gate_count", torch.zeros((), dtype=torch.long))
        self.register_buffer("squeeze_mean_a", torch.zeros(channels_a))
        self.register_buffer("squeeze_mean_b", torch.zeros(channels_b))
        self.gate_mean_mode = "regular-steps"  # see configure_gate_means
        self.gate_mean_source = "own"

    def gates(self, s_a: Tensor, s_b: Tensor, cut: bool = False) -> tuple[Tensor, Tensor]:
        """sigma(E_A), sigma(E_B) for squeeze vectors (B, C_A), (B, C_B); with ``cut``, the A.1 variant."""
        if cut:
            mean_a = self.squeeze_mean_a.expand_as(s_a)
            mean_b = self.squeeze_mean_b.expand_as(s_b)
            z_a = torch.relu(self.squeeze(torch.cat([s_a, mean_b], dim=1)))
            z_b = torch.relu(self.squeeze(torch.cat([mean_a, s_b], dim=1)))
        else:
            z_a = z_b = torch.relu(self.squeeze(torch.cat([s_a, s_b], dim=1)))
        return torch.sigmoid(self.excite_a(z_a)), torch.sigmoid(self.excite_b(z_b))

    @torch.no_grad()
    def _track_gates(self, gate_a: Tensor, gate_b: Tensor, where: Tensor | None = None) -> None:
        """Fold this pass's gates into the running means: a cumulative mean over samples (``regular-steps``) or
        over passes (``all-passes``). With ``where`` (a bool tensor) the update applies only where it holds,
        without a host sync; its added terms are then exactly zero, so the means equal the host-decided path's
        bit for bit."""
        units = 1 if self.gate_mean_mode == "all-passes" else gate_a.shape[0]
        source_b = gate_a if self.gate_mean_source == "branch0" else gate_b
        if where is None:
            self.gate_count += units
            weight = units / self.gate_count.float()  # float32 even under bf16 autocast (a bf16 count would drift)
        else:
            self.gate_count += where.long() * units
            weight = torch.where(where, units / self.gate_count.clamp(min=1).float(), 0.0)
        self.gate_mean_a += (gate_a.float().mean(0) - self.gate_mean_a) * weight
        self.gate_mean_b += (source_b.float().mean(0) - self.gate_mean_b) * weight

    def _tracks(self, fusion: Fusion) -> bool:
        """Does this (host-decided) pass feed the running gate means?"""
        if self.gate_mean_mode == "all-passes":
            return True
        return self.training and fusion.is_regular

    def forward(self, a: Tensor, b: Tensor, fusion: Fusion | DeviceFusion = REGULAR) -> tuple[Tensor, Tensor]:
        if isinstance(fusion, DeviceFusion):
            return self._forward_device(a, b, fusion.code)
        gate_a, gate_b = self.gates(squeeze(a), squeeze(b), cut=fusion.cut)
        if self._tracks(fusion):
            self._track_gates(gate_a.detach(), gate_b.detach())
        if fusion.rebalance == 0:
            gate_a = self.gate_mean_a.to(gate_a.dtype).expand_as(gate_a)
        elif fusion.rebalance == 1:
            gate_b = self.gate_mean_b.to(gate_b.dtype).expand_as(gate_b)
        return a * _broadcast_gate(gate_a, a), b * _broadcast_gate(gate_b, b)

    def _forward_device(self, a: Tensor, b: Tensor, code: Tensor) -> tuple[Tensor, Tensor]:
        """Regular or re-balancing (A.2) as selected by the device tensor ``code`` (see ``DeviceFusion``)."""
        gate_a, gate_b = self.gates(squeeze(a), squeeze(b))
        if self.gate_mean_mode == "all-passes":
            self._track_gates(gate_a.detach(), gate_b.detach())
        elif self.training:
            self._track_gates(gate_a.detach(), gate_b.detach(), where=code < 0)
        gate_a = torch.where(code == 0, self.gate_mean_a.to(gate_a.dtype), gate_a)
        gate_b = torch.where(code == 1, self.gate_mean_b.to(gate_b.dtype), gate_b)
        return a * _broadcast_gate(gate_a, a), b * _broadcast_gate(gate_b, b)


def configure_gate_means(model: nn.Module, mode: str = "regular-steps", source: str = "own") -> None:
    """Set what every MMTM of ``model`` averages into the gate means of a re-balancing step (see the module's
    docstring): ``mode`` in :data:`GATE_MEANS`, ``source`` in :data:`GATE_MEAN_SOURCES`. ``branch0`` is refused,
    naming the fusion point, where the two branches' widths differ."""
    if mode not in GATE_MEANS:
        raise FusionConfigError(f"unknown gate mean {mode!r}; choose from {', '.join(GATE_MEANS)}")
    if source not in GATE_MEAN_SOURCES:
        raise FusionConfigError(f"unknown gate-mean source {source!r}; choose from {', '.join(GATE_MEAN_SOURCES)}")
    for i, m in enumerate(model.mmtms()):
        width_a, width_b = m.gate_mean_a.numel(), m.gate_mean_b.numel()
        if source == "branch0" and width_a != width_b:
            raise FusionConfigError(
                f"--gate-mean-source branch0 needs equal branch widths at every fusion point, but MMTM {i} joins "
                f"{width_a} and {width_b} channels; use --gate-mean-source own"
            )
        m.gate_mean_mode, m.gate_mean_source = mode, source
