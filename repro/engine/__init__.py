"""The training engine: ``train(cfg, out)`` for one run, ``train_runs(cfgs, outs)`` for K runs packed into one network;
resumable. :mod:`.loop` is the one loop, :mod:`.run` one run's lifecycle, :mod:`.single` and :mod:`.packed` the two
steppers, :mod:`.packing` which runs may share a pack (torch-free: the sweep planner reads it).

The names below are imported from their modules when first used (PEP 562), so importing :mod:`.packing` does not
load torch through this package."""

from __future__ import annotations

import importlib

_EXPORTS = {
    "train": "loop",
    "train_runs": "loop",
    "Environment": "run",
    "EpochTally": "run",
    "Progress": "run",
    "Run": "run",
    "RunConflict": "run",
    "make_deterministic": "device",
    "pick_device": "device",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
