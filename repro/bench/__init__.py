"""Benchmarks, run by ``repro bench`` (the commands are in :mod:`repro.cli.tools`; the logic is here):

    steps            training-step ratios (guided / vanilla, packed / separate), an epoch, the d_speed statistics
                     (``repro bench``)
    loader           a prepared file's loader against the model (``repro bench --data FILE``)
    nvgesture        NVGesture's DataLoader and I3D training step (``repro bench nvgesture``)
    modelnet40_prep  the ModelNet40 prep stage on synthetic meshes (``repro bench modelnet40-prep``)

Each module returns a dict the command prints as one JSON object. This package imports torch only in its modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def sync(device: torch.device) -> None:
    """Wait for the work queued on ``device``, so that a timer reads finished work (nothing to wait for on a CPU)."""
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)
