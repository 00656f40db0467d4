"""Helpers shared by every prep stage (CMNIST now; ModelNet40 and NVGesture later).

A prep stage turns a raw dataset into one HDF5 file. Three rules hold for all of them (design notes, habit 5):

* the output is written atomically: into ``<out>.tmp-<pid>`` next to the target, then ``os.replace``d, so a
  crash never leaves a half-written file under the real name;
* the output carries the *recipe* it was built from (a JSON-able dict of parameters) and its hash, in the root
  attributes ``recipe`` and ``recipe_hash``;
* re-running a stage whose output already carries the same ``recipe_hash`` does nothing.

Errors a user can fix are :class:`PrepError` with a one-line message naming the file and the fix.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

#: Distribution name from pyproject.toml, recorded in every output's ``created_by`` attribute.
PACKAGE_NAME = "greedy-multimodal-repro"


class PrepError(Exception):
    """A data-preparation failure the user can act on; the message is one line naming the file and the fix."""


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
