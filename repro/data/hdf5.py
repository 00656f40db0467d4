"""Reading a prepared file: the checks every reader makes first (known modality names, a file that exists), the file
opened so that whatever HDF5 says is wrong with it becomes one line (:func:`open_prepared`), the file's provenance for
the run record, and what a reader returns (:class:`DatasetBundle`). Every failure is one line that names the file and
the command that writes it again (``repro train`` prints it without a traceback)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py

from data_prep.common import FORMAT_VERSIONS, format_note, hdf5_problem

from ..registry import DatasetSpec

PROVENANCE_KEYS = ("recipe_hash", "arrays_checksum", "source")


class DataRequestError(ValueError):
    """The data a run asks for cannot be served: an unknown modality name for the dataset, or (the subclass
    :class:`PreparedFileError`) a prepared file that cannot be read."""


class PreparedFileError(DataRequestError):
    """A prepared file that cannot be read: truncated, not HDF5, a chunk failing its checksum, a group or dataset
    missing, or another format version. The message is one line naming the file and the command that rebuilds it.

    Raised in a DataLoader worker, it reaches the main process as ``PreparedFileError(text)`` where torch's ``text``
    adds the worker's traceback to the message: only the message's own line is kept."""

    def __init__(self, message: str = "") -> None:
        if "\nOriginal Traceback" in message:  # torch's ExceptionWrapper.reraise: keep the original's last line
            last = message.rstrip().splitlines()[-1]
            message = last.split(f"{type(self).__name__}: ", 1)[-1]
        super().__init__(message)


@dataclass
class DatasetBundle:
    """A reader's result: the three splits, each modality's channel count, the class count and the file's
    provenance."""

    splits: dict[str, Any]  # an InMemorySplit, or any split with the same interface (len, to, batches)
    in_channels: tuple[int, ...]
    num_classes: int
    provenance: dict  # recipe hash and checksum of the prepared file
    eval_batch_size: int = 500  # batch size of evaluation passes (memory, not results)


def prep_command(spec: DatasetSpec, path: str | Path, *, force: bool = False) -> str:
    """The command that writes ``path`` (``--force``: again, over a damaged file that may look up to date)."""
    return spec.prep_command.format(path=path) + (" --force" if force else "")


def missing(path: str | Path, spec: DatasetSpec) -> FileNotFoundError:
    """The one-line error for a prepared file that is not there."""
    return FileNotFoundError(f"{path}: no prepared {spec.display}; run `{prep_command(spec, path)}`")


def damaged(path: str | Path, spec: DatasetSpec, exc: BaseException, where: str = "") -> PreparedFileError:
    """The one-line error for a prepared file HDF5 cannot read (``exc`` from h5py; ``where``: what was being read)."""
    problem = hdf5_problem(exc) + (f" in {where}" if where else "")
    return PreparedFileError(
        f"{path}: damaged prepared {spec.display} ({problem}); rebuild it with `{prep_command(spec, path, force=True)}`"
    )


def check_prepared(path: str | Path, modalities: Iterable[str], spec: DatasetSpec) -> Path:
    """``path`` as a Path, once every name in ``modalities`` is one of the dataset's and the file exists."""
    path, known = Path(path), list(spec.modalities)
    unknown = [m for m in modalities if m not in known]
    if unknown:
        names = ", ".join(known) if len(known) <= 6 else f"{', '.join(known[:3])} ... {known[-1]}"
        raise DataRequestError(f"unknown {spec.display} modality {unknown[0]!r}; choose from {names}")
    if not path.exists():
        raise missing(path, spec)
    return path


def check_format(f: h5py.File, path: str | Path, spec: DatasetSpec) -> None:
    """Refuse a file a stage wrote in another format version than the one this package reads (a file without a
    ``format_version``, written by hand in the stage's layout, is read as it is)."""
    version = f.attrs.get("format_version")
    expected = FORMAT_VERSIONS[spec.name]
    if version is not None and version != expected:
        raise PreparedFileError(
            f"{path}: prepared {spec.display} of {format_note(spec.name, int(version))}; this package reads "
            f"{format_note(spec.name, expected)}: prepare it again with `{prep_command(spec, path)}`"
        )


@contextmanager
def open_prepared(path: str | Path, spec: DatasetSpec) -> Iterator[h5py.File]:
    """The prepared file, open for reading, its format version checked; h5py's errors inside the ``with`` block (a
    truncated file, not HDF5, a chunk failing its checksum, a missing group or dataset) become
    :class:`PreparedFileError`, and a missing file ``FileNotFoundError``, each one line naming the rebuild command."""
    try:
        f = h5py.File(path, "r")
    except FileNotFoundError:
        raise missing(path, spec) from None
    except OSError as exc:
        raise damaged(path, spec, exc) from None
    with f:
        check_format(f, path, spec)
        try:
            yield f
        except (OSError, KeyError) as exc:
            raise damaged(path, spec, exc, getattr(exc, "where", "")) from None


def read(dataset: h5py.Dataset, selection: Any = ()) -> Any:
    """``dataset[selection]``; an error reading it (a chunk failing its checksum) says which dataset, for
    :func:`open_prepared`'s message."""
    try:
        return dataset[selection]
    except OSError as exc:
        exc.where = dataset.name
        raise


def provenance(f: h5py.File) -> dict:
    """The open prepared file's identity, copied into each run record (which data a run saw)."""
    return {k: f.attrs[k] for k in PROVENANCE_KEYS if k in f.attrs}
