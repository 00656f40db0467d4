"""Which runs may train together in one pack (:mod:`repro.engine.packed`): many small runs in one process and one
set of kernels. No torch here: the sweep planner groups runs into packs before any process that trains imports it.

Runs in one pack share every setting but ``PACK_VARYING`` (seed, lr, alpha, window): one network, one data set,
one batch size and one number of steps per epoch. Packing covers the two-modality Colored-and-gray MNIST network with
the algorithms the registry marks packable (those with a batched policy); the others (RUBi: its own modules and
loss), uni-modal runs and the L1 penalty of §5.3 train alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable, Iterable
from typing import TypeVar

from ..config import RunConfig
from ..registry import ALGORITHMS

PACK_VARYING = ("seed", "lr", "alpha", "window")

T = TypeVar("T")


def why_not_packable(cfg: RunConfig) -> str | None:
    """None when ``cfg`` may join a pack, otherwise the reason it trains alone."""
    packable = [name for name, spec in ALGORITHMS.items() if spec.packable]
    if cfg.dataset != "cmnist" or len(cfg.modality_names) != 2 or cfg.algorithm not in packable:
        return f"packing supports two-modality CMNIST runs of {', '.join(packable)}"
    if cfg.l1 > 0:
        return "packing does not apply the L1 penalty of §5.3; train runs with --l1 alone"
    if (cfg.gate_mean, cfg.gate_mean_source) != ("regular-steps", "own"):
        return "packing keeps A.2's gate means only; runs with --gate-mean or --gate-mean-source train alone"
    return None


def pack_key(cfg: RunConfig) -> tuple | None:
    """Runs with equal keys may share a pack; None: the run trains alone."""
    if why_not_packable(cfg) is not None:
        return None
    return tuple(sorted((k, repr(v)) for k, v in _fixed(cfg).items()))


def check_packable(cfgs: list[RunConfig]) -> None:
    """Raise ValueError unless the runs may share one pack."""
    if not cfgs:
        raise ValueError("nothing to pack")
    fixed = [_fixed(c) for c in cfgs]
    for c, f in zip(cfgs[1:], fixed[1:], strict=True):
        diff = sorted(k for k in f if f[k] != fixed[0][k])
        if diff:
            raise ValueError(
                f"runs in one pack may differ only in {', '.join(PACK_VARYING)}; "
                f"seed {c.seed} differs in {', '.join(diff)}"
            )
    reason = why_not_packable(cfgs[0])
    if reason is not None:
        raise ValueError(reason)


def _fixed(cfg: RunConfig) -> dict:
    """The settings every run of a pack shares."""
    return {k: v for k, v in dataclasses.asdict(cfg).items() if k not in PACK_VARYING}


def group_into_packs(items: Iterable[T], key: Callable[[T], Hashable | None], size: int) -> list[list[T]]:
    """Consecutive packs of at most ``size`` items with equal, non-None keys, in the order of each group's first
    item; an item whose key is None is a pack of its own. ``size`` 1 leaves every item alone."""
    groups: dict[Hashable, list[T]] = {}
    units: list[list[T]] = []
    for item in items:
        k = key(item) if size > 1 else None
        if k is None:
            units.append([item])
        elif k in groups and len(groups[k]) < size:
            groups[k].append(item)
        else:
            groups[k] = [item]
            units.append(groups[k])
    return units
