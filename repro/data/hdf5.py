"""The checks every dataset loader makes before reading: known modality names, and a prepared file that exists.
Both fail with one line that names the fix (``repro train`` prints it without a traceback)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


class DataRequestError(ValueError):
    """An unknown modality name for the dataset."""


def check_request(
    path: str | Path, modalities: Iterable[str], known: Iterable[str], dataset: str, prep_command: str
) -> Path:
    """``path`` as a Path, once every name in ``modalities`` is in ``known`` and the file exists.

    ``prep_command`` is the command that writes the file, with ``{path}`` where the output goes."""
    path, known = Path(path), list(known)
    unknown = [m for m in modalities if m not in known]
    if unknown:
        names = ", ".join(known) if len(known) <= 6 else f"{', '.join(known[:3])} ... {known[-1]}"
        raise DataRequestError(f"unknown {dataset} modality {unknown[0]!r}; choose from {names}")
    if not path.exists():
        raise FileNotFoundError(f"{path}: no prepared {dataset}; run `{prep_command.format(path=path)}`")
    return path
