"""Checkpoints of the run folder (``checkpoint.pt``, ``best.pt``, ``best_reference.pt``: :mod:`repro.rundir`) and the
software versions a record names. Written atomically, as every file of a run."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import numpy
import torch

from .. import __version__
from ..rundir import atomic_write


def save_torch(path: Path, obj: Any) -> None:
    atomic_write(path, lambda f: torch.save(obj, f))


def load_torch(path: Path, device: torch.device | str = "cpu") -> Any:
    return torch.load(path, map_location=device, weights_only=False)


def versions() -> dict[str, str]:
    return {
        "repro": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "cuda": torch.version.cuda or "none",
    }
