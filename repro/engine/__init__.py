"""The training engine: one run (``train``) or K packed runs (``train_packed``), resumable."""

from .run import RunConflict, Trainer, make_deterministic, pick_device, small_weight_fraction, train

__all__ = ["RunConflict", "Trainer", "make_deterministic", "pick_device", "small_weight_fraction", "train"]
