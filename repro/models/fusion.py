"""How the fusion modules of a two-branch network behave during one forward pass.

Every model in ``repro.models`` takes a :class:`Fusion` argument and hands it to each of its MMTMs, so the
algorithms (A.2, A.3) and the metrics (A.1) can switch cross-modal flow without knowing the architecture.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass(frozen=True)
class Fusion:
    """Fusion behaviour for one forward pass.

    rebalance: ``None`` for a regular step; ``k`` (0 or 1) for a re-balancing step that accelerates learning
        from modality m_k (A.2): branch k's MMTM gates are replaced by their running means over the samples
        of the regular steps so far, so branch k must fit the target from m_k alone during that step.
    cut: derive f'_0 and f'_1 (A.1): in every MMTM the *other* modality's squeeze vector is replaced by its
        training-set mean, cutting cross-modal flow; one pass then yields both uni-modal predictions.
    """

    rebalance: int | None = None
    cut: bool = False

    def __post_init__(self) -> None:
        if self.rebalance not in (None, 0, 1):
            raise ValueError(f"rebalance must be None, 0 or 1, got {self.rebalance!r}")
        if self.cut and self.rebalance is not None:
            raise ValueError("a forward pass cannot both cut cross-modal flow and re-balance")

    @property
    def is_regular(self) -> bool:
        """A regular step (Alg. 1): both branches use their own gates; running gate means are updated."""
        return self.rebalance is None and not self.cut

    @property
    def code(self) -> int:
        """-1 for a regular step (or a cut pass), k for a re-balancing step on m_k (as :class:`DeviceFusion`)."""
        return -1 if self.rebalance is None else self.rebalance

    @property
    def state(self) -> str:
        """The name a record gives this fusion as a training state: ``regular``, ``rebalance_m0``, ``rebalance_m1``."""
        if self.cut:
            raise ValueError("the cut of A.1 is an evaluation, not a training state")
        return STATE_NAMES[self.code + 1]


@dataclass(frozen=True)
class DeviceFusion:
    """A training step's fusion decided on the device (Alg. 1 without host synchronisation).

    code: integer tensor, -1 for a regular step, k for a re-balancing step on m_k. One forward graph serves all
        three kinds: each MMTM selects gate or running mean with ``torch.where`` and masks its running-mean update,
        so the host never needs the value (the step can be captured in a CUDA graph). Under ``torch.func.vmap``
        ``code`` may hold one value per packed model. Reading ``rebalance`` or ``is_regular`` synchronises: they
        are for tests and inspection, not for the training step.
    """

    code: Tensor
    cut = False

    @property
    def rebalance(self) -> int | None:
        k = int(self.code)
        return None if k < 0 else k

    @property
    def is_regular(self) -> bool:
        return int(self.code) < 0


REGULAR = Fusion()
CUT = Fusion(cut=True)
REBALANCE = (Fusion(rebalance=0), Fusion(rebalance=1))
STATE_NAMES = ("regular", "rebalance_m0", "rebalance_m1")


def fusion_for_state(name: str) -> Fusion:
    """The fusion of a training state named in a record (the inverse of :attr:`Fusion.state`)."""
    if name not in STATE_NAMES:
        raise ValueError(f"unknown training state {name!r}; known: {', '.join(STATE_NAMES)}")
    return (REGULAR, *REBALANCE)[STATE_NAMES.index(name)]
