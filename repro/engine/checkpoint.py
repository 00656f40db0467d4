"""Checkpoints of the run folder (``checkpoint.pt``, ``best.pt``, ``best_reference.pt``: :mod:`repro.rundir`) and the
software versions a record names. Written atomically, as every file of a run.

Loading never runs code from the file: ``torch.load(weights_only=True)`` unpickles tensors and plain values only,
which is all the package saves (state dicts, the record, numbers and strings), plus :data:`ALLOWED`. So a results
folder from someone else (a shared disk, a downloaded archive) can be opened safely; a file that needs anything else
is refused with one line naming it.
"""

from __future__ import annotations

import pickle
import platform
from pathlib import Path
from typing import Any

import numpy
import torch
from torch.torch_version import TorchVersion

from .. import __version__
from ..rundir import atomic_write

#: The classes a checkpoint may hold beyond tensors and plain values: ``TorchVersion``, a ``str`` subclass that
#: records of earlier versions kept as ``versions["torch"]``.
ALLOWED = [TorchVersion]


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be loaded safely (or at all)."""


def save_torch(path: Path, obj: Any) -> None:
    atomic_write(path, lambda f: torch.save(obj, f))


def load_torch(path: Path, device: torch.device | str = "cpu") -> Any:
    try:
        with torch.serialization.safe_globals(ALLOWED):
            return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = next((line.strip() for line in str(exc).splitlines() if "Unsupported global" in line), "")
        raise CheckpointError(
            f"{path}: refused, it holds more than tensors and plain values ({detail or 'not a checkpoint'}); "
            "this package never saves such a file: delete it, or train the run again with --force"
        ) from None
    except (RuntimeError, EOFError) as exc:
        raise CheckpointError(f"{path}: unreadable ({str(exc).splitlines()[0]}); delete it to train again") from None


def versions() -> dict[str, str]:
    return {
        "repro": __version__,
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "numpy": numpy.__version__,
        "cuda": torch.version.cuda or "none",
    }
