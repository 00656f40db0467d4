"""Training algorithms, by the names of :data:`repro.registry.ALGORITHMS` (the engine never branches on a name)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from ..registry import ALGORITHMS as SPECS
from ..registry import load
from .base import Algorithm, AlgorithmData, PackedPolicy, StepResult, seed_for


class _ClassesByName(Mapping):
    """name -> class of every algorithm in the registry, looked up when asked (an entry added to the registry at
    run time is found too)."""

    def __getitem__(self, name: str) -> type[Algorithm]:
        if name not in SPECS:
            raise KeyError(name)
        return load(SPECS[name].cls)

    def __iter__(self) -> Iterator[str]:
        return iter(SPECS)

    def __len__(self) -> int:
        return len(SPECS)


ALGORITHMS: Mapping[str, type[Algorithm]] = _ClassesByName()

__all__ = ["ALGORITHMS", "Algorithm", "AlgorithmData", "PackedPolicy", "StepResult", "seed_for"]
