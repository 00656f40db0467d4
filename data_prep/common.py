"""Helpers shared by every prep stage (CMNIST, ModelNet40, NVGesture).

A prep stage turns a raw dataset into one HDF5 file. These rules hold for all of them:

* the output is written atomically: into ``<out>.tmp-<pid>`` next to the target, then ``os.replace``d, so a
  crash never leaves a half-written file under the real name;
* the output carries the *recipe* it was built from (a JSON-able dict of parameters) and its hash, in the root
  attributes ``recipe`` and ``recipe_hash``;
* re-running a stage whose output already carries the same ``recipe_hash`` does nothing;
* every chunked dataset carries HDF5's Fletcher-32 checksum per chunk (:data:`CHUNK_CHECKSUM`), so a read of a
  damaged chunk fails instead of returning garbage, and the file carries its ``format_version``
  (:data:`FORMAT_HISTORY`): the readers refuse another, the stage prepares a file of another again and says why.

Errors a user can fix are :class:`PrepError` with a one-line message naming the file and the fix.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

#: Distribution name from pyproject.toml, recorded in every output's ``created_by`` attribute.
PACKAGE_NAME = "greedy-multimodal-repro"


class PrepError(Exception):
    """A data-preparation failure the user can act on; the message is one line naming the file and the fix."""


#: Each stage's output format versions, and what each changed. A file of another version is prepared again by the
#: stage (which says why) and refused by the readers (``repro.data``), naming the command that prepares it again.
FORMAT_HISTORY = {
    "cmnist": {1: "no chunk checksums", 2: "Fletcher-32 chunk checksums"},
    "modelnet40": {1: "no chunk checksums", 2: "Fletcher-32 chunk checksums"},
    "nvgesture": {
        1: "libswscale resize, no chunk checksums",
        2: "OpenCV resize, no chunk checksums",
        3: "OpenCV resize, Fletcher-32 chunk checksums",
    },
}
#: The format version each stage writes (and the readers read): the newest of :data:`FORMAT_HISTORY`.
FORMAT_VERSIONS = {name: max(history) for name, history in FORMAT_HISTORY.items()}
#: The command that writes each dataset's file at ``{path}`` (``repro.registry``'s ``prep_command``, which
#: ``data_prep`` does not import; tests/test_integrity.py holds them equal).
PREP_COMMANDS = {
    "cmnist": "repro prep cmnist --out {path}",
    "modelnet40": "repro prep modelnet40 --raw DIR --out {path}",
    "nvgesture": "repro prep nvgesture --raw DIR --out {path}",
}
#: Filters of every chunked dataset a stage writes: HDF5's Fletcher-32 checksum of each (compressed) chunk, 4 bytes a
#: chunk, checked on every read. Without it, random bytes written over an LZF chunk decompress without error.
CHUNK_CHECKSUM = {"fletcher32": True}
#: How the recipes name it (a key of each recipe: changing it prepares the files again).
CHUNK_CHECKSUM_RECIPE = "fletcher32 per chunk (HDF5 filter, checked on every read)"


def format_note(dataset: str, version) -> str:
    """``"format version 2 (Fletcher-32 chunk checksums)"``; the note is left out for a version the stage never
    wrote."""
    note = FORMAT_HISTORY.get(dataset, {}).get(version)
    return f"format version {version}" + (f" ({note})" if note else "")


def prep_command(path: str | os.PathLike, dataset: str | None = None, *, force: bool = False) -> str:
    """The command that writes ``path`` again: the stage of ``dataset``, else of the dataset the file name says
    (``cmnist.h5``), else a pattern. ``force``: with ``--force`` (a damaged file may still look up to date)."""
    dataset = dataset if dataset in PREP_COMMANDS else Path(path).stem if Path(path).stem in PREP_COMMANDS else None
    command = PREP_COMMANDS[dataset] if dataset else "repro prep <dataset> --out {path}"
    return command.format(path=path) + (" --force" if force else "")


def hdf5_problem(exc: BaseException) -> str:
    """What an h5py error says about a file, in a few words for a one-line message: truncated, not HDF5, a chunk
    failing its checksum (or its decompression), a missing group, dataset or attribute."""
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    text = str(exc).strip().strip("\"'")
    if match := re.search(r"truncated file: eof = (\d+).*stored_eof = (\d+)", text):
        return f"truncated: {int(match[1]):,} of its {int(match[2]):,} bytes"
    if "file signature not found" in text:
        return "not an HDF5 file"
    if "filter returned failure" in text or "checksum" in text.lower():
        return "a chunk fails its checksum"
    if match := re.search(r"object '([^']+)' doesn't exist", text):
        return f"no {match[1]!r} in it"
    if match := re.search(r"can't locate attribute: '([^']+)'", text):
        return f"no attribute {match[1]!r}"
    return " ".join(text.split())  # one line whatever h5py said


def canonical_json(obj) -> str:
    """JSON with sorted keys and no whitespace, so equal recipes always serialize (and hash) identically."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def recipe_hash(recipe: dict) -> str:
    """sha256 (hex) of the canonical JSON of ``recipe``."""
    return hashlib.sha256(canonical_json(recipe).encode("utf-8")).hexdigest()


def sha256_arrays(*arrays: np.ndarray) -> str:
    """sha256 over the C-order bytes of ``arrays``, in order (dtypes and shapes are the caller's contract)."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def created_by(stage: str) -> str:
    """Value of the ``created_by`` root attribute: package name, version and the stage module. The version is the
    installed distribution's (``data_prep`` does not import ``repro``)."""
    try:
        version = importlib.metadata.version(PACKAGE_NAME)
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never installed
        version = "unknown"
    return f"{PACKAGE_NAME} {version} ({stage})"


def stale_reason(out: str | os.PathLike, recipe: dict) -> str | None:
    """Why an existing ``out`` is prepared again (another format version, or the recipe keys that differ); None when
    there is no readable file there (or it is up to date)."""
    try:
        with h5py.File(out, "r") as f:
            stored = json.loads(f.attrs.get("recipe", "{}"))
    except (OSError, ValueError, TypeError):
        return None
    if not isinstance(stored, dict) or recipe_hash(stored) == recipe_hash(recipe):
        return None
    dataset, old, new = recipe.get("dataset"), stored.get("format_version"), recipe.get("format_version")
    if old != new:
        return f"{out}: {format_note(dataset, old)}; this stage writes {format_note(dataset, new)}: preparing it again"
    keys = sorted(k for k in recipe.keys() | stored.keys() if recipe.get(k) != stored.get(k))
    return f"{out}: prepared with another recipe ({', '.join(keys)} differ): preparing it again"


def row_blocks(dataset: h5py.Dataset, max_bytes: int = 64 << 20) -> Iterator[slice]:
    """Slices of ``dataset``'s first axis, whole chunks each (a chunk is read once) and about ``max_bytes`` of data
    at most (one chunk row at least), in order."""
    n = dataset.shape[0] if dataset.shape else 0
    row_bytes = max(dataset.dtype.itemsize * int(np.prod(dataset.shape[1:], dtype=np.int64)), 1)
    step = dataset.chunks[0] if dataset.chunks else 1
    rows = max(step, max_bytes // row_bytes // step * step)
    for start in range(0, n, rows):
        yield slice(start, min(start + rows, n))


def hash_dataset(hasher, dataset: h5py.Dataset) -> None:
    """Feed ``dataset``'s C-order bytes to ``hasher`` (as ``sha256_arrays`` of the whole array), read in blocks."""
    if not dataset.shape:
        hasher.update(np.ascontiguousarray(dataset[()]).tobytes())
        return
    for rows in row_blocks(dataset):
        hasher.update(np.ascontiguousarray(dataset[rows]).tobytes())


def is_up_to_date(path: str | os.PathLike, recipe: dict) -> bool:
    """True when ``path`` exists, opens as HDF5 and its root attribute ``recipe_hash`` matches ``recipe``."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as f:
            stored = f.attrs.get("recipe_hash")
    except OSError:
        return False
    if isinstance(stored, bytes):
        stored = stored.decode("utf-8")
    return stored == recipe_hash(recipe)


def temp_path_for(out: str | os.PathLike) -> Path:
    """The temporary name ``<out>.tmp-<pid>`` used while ``out`` is being written."""
    out = Path(out)
    return out.with_name(f"{out.name}.tmp-{os.getpid()}")


@contextmanager
def atomic_h5(out: str | os.PathLike) -> Iterator[h5py.File]:
    """Open a new HDF5 file for writing that appears under ``out`` only if the ``with`` body succeeds.

    Writes go to ``<out>.tmp-<pid>`` in the same directory (same filesystem, so ``os.replace`` is atomic). On
    any exception (KeyboardInterrupt included) the temp file is removed and the exception re-raised; ``out``
    is untouched.
    """
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PrepError(f"{out}: cannot create directory {out.parent} ({e.strerror}); choose another --out") from e
    tmp = temp_path_for(out)
    try:
        f = h5py.File(tmp, "w")
    except OSError as e:
        raise PrepError(f"{out}: cannot write {tmp} ({e}); check permissions or choose another --out") from e
    try:
        try:
            yield f
        finally:
            f.close()
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
