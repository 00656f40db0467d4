"""Training algorithms, by the names of :data:`repro.registry.ALGORITHMS` (the engine never branches on a name)."""

from ..registry import ALGORITHMS as SPECS
from ..registry import load
from .base import Algorithm, StepResult, seed_for

#: name -> class, for every algorithm of the registry.
ALGORITHMS: dict[str, type[Algorithm]] = {name: load(spec.cls) for name, spec in SPECS.items()}

__all__ = ["ALGORITHMS", "Algorithm", "StepResult", "seed_for"]
