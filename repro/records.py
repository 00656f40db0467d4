"""Run records and checkpoints on disk, always written atomically (temp file in the same folder, then rename),
so a run killed at any moment leaves either the previous or the new version, never half of one."""

from __future__ import annotations

import json
import math
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .atomic import atomic_write, atomic_write_text

if TYPE_CHECKING:
    import torch
# torch is imported where it is used: the sweep planner and launchers read and write records without it.

RECORD_NAME = "record.json"
CHECKPOINT_NAME = "checkpoint.pt"  # state after the last completed epoch (for resume)
BEST_NAME = "best.pt"  # model with the best validation accuracy so far
BEST_REFERENCE_NAME = "best_reference.pt"  # model with the best validation accuracy in its training state
DONE_NAME = "done"  # marker written last, when the record is final (what Make targets depend on)


def _jsonable(x: Any) -> Any:
    """NaN and infinities become null (JSON has no NaN); everything else as is."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def write_json(path: Path, obj: dict) -> None:
    text = json.dumps(_jsonable(obj), indent=2, allow_nan=False) + "\n"
    atomic_write_text(path, text)


def read_json(path: Path) -> dict:
    with open(path) as f:
        return json.load(f)


def save_torch(path: Path, obj: Any) -> None:
    import torch

    atomic_write(path, lambda f: torch.save(obj, f))


def load_torch(path: Path, device: torch.device | str = "cpu") -> Any:
    import torch

    return torch.load(path, map_location=device, weights_only=False)


def versions() -> dict[str, str]:
    import numpy
    import torch

    return {
        "repro": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "cuda": torch.version.cuda or "none",
    }
