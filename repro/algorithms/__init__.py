"""Training algorithms by name (an explicit registry; the engine never branches on the name)."""

from .balanced import Guided, RandomBalance
from .base import Algorithm, StepResult, seed_for
from .rubi import RUBi
from .vanilla import Vanilla

ALGORITHMS: dict[str, type[Algorithm]] = {
    "vanilla": Vanilla,
    "rubi": RUBi,
    "random": RandomBalance,
    "guided": Guided,
}

__all__ = ["ALGORITHMS", "Algorithm", "StepResult", "seed_for"]
