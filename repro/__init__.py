"""Reproduction of Wu et al. (ICML 2022), "Characterizing and overcoming the greedy nature of
learning in multi-modal deep neural networks".

Data flow: ``data_prep.<ds>`` -> ``data/<ds>.h5`` -> ``repro.data`` -> ``repro.engine`` (+ ``repro.algorithms``,
``repro.metrics``) -> ``results/<run>/record.json`` -> ``repro.report``.

The public API (:mod:`repro.api`, docs/own-model.md) uses the paper's fusion, algorithms and diagnostics on your own
model: ``repro.two_branch``, ``repro.make_algorithm``, ``repro.utilization_rates``, ... (``__all__``). Its names are
imported when first used (PEP 562), so ``import repro`` and the torch-free modules load no torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

#: The public names, all defined or re-exported by :mod:`repro.api` (semver-stable from 0.1.0).
__all__ = [
    "MMTM",
    "Algorithm",
    "ConditionalSpeed",
    "ModelOutput",
    "TwoBranchNet",
    "make_algorithm",
    "two_branch",
    "utilization_rates",
]

if TYPE_CHECKING:  # for type checkers and editors; at run time __getattr__ imports them
    from .api import (
        MMTM,
        Algorithm,
        ConditionalSpeed,
        ModelOutput,
        TwoBranchNet,
        make_algorithm,
        two_branch,
        utilization_rates,
    )


def __getattr__(name: str):
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(".api", __name__), name)
    globals()[name] = value  # imported once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
