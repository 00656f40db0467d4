"""Reading a prepared file: the checks every reader makes first (known modality names, a file that exists), the
file's provenance for the run record, and what a reader returns (:class:`DatasetBundle`). Both checks fail with one
line that names the fix (``repro train`` prints it without a traceback)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py

from ..registry import DatasetSpec

PROVENANCE_KEYS = ("recipe_hash", "arrays_checksum", "source")


class DataRequestError(ValueError):
    """An unknown modality name for the dataset."""


@dataclass
class DatasetBundle:
    """A reader's result: the three splits, each modality's channel count, the class count and the file's
    provenance."""

    splits: dict[str, Any]  # an InMemorySplit, or any split with the same interface (len, to, batches)
    in_channels: tuple[int, ...]
    num_classes: int
    provenance: dict  # recipe hash and checksum of the prepared file
    eval_batch_size: int = 500  # batch size of evaluation passes (memory, not results)


def check_prepared(path: str | Path, modalities: Iterable[str], spec: DatasetSpec) -> Path:
    """``path`` as a Path, once every name in ``modalities`` is one of the dataset's and the file exists."""
    path, known = Path(path), list(spec.modalities)
    unknown = [m for m in modalities if m not in known]
    if unknown:
        names = ", ".join(known) if len(known) <= 6 else f"{', '.join(known[:3])} ... {known[-1]}"
        raise DataRequestError(f"unknown {spec.display} modality {unknown[0]!r}; choose from {names}")
    if not path.exists():
        raise FileNotFoundError(f"{path}: no prepared {spec.display}; run `{spec.prep_command.format(path=path)}`")
    return path


def provenance(path: str | Path) -> dict:
    """The prepared file's identity, copied into each run record (which data a run saw)."""
    with h5py.File(path, "r") as f:
        return {k: f.attrs[k] for k in PROVENANCE_KEYS if k in f.attrs}
