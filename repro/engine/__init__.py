"""The training engine: ``train(cfg, out)`` for one run, ``train_runs(cfgs, outs)`` for K runs packed into one network;
resumable. :mod:`.loop` is the one loop, :mod:`.run` one run's lifecycle, :mod:`.single` and :mod:`.packed` the two
steppers, :mod:`.packing` which runs may share a pack."""

from .device import make_deterministic, pick_device
from .loop import train, train_runs
from .run import Environment, EpochTally, Progress, Run, RunConflict

__all__ = [
    "Environment",
    "EpochTally",
    "Progress",
    "Run",
    "RunConflict",
    "make_deterministic",
    "pick_device",
    "train",
    "train_runs",
]
