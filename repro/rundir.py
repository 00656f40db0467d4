"""The run folder: what one training run leaves on disk, written and read here only (torch-free at import).

A run folder holds

* ``record.json`` (:data:`RECORD_NAME`): the run's record, rewritten atomically after every epoch; its shape is made by
  :func:`new_record` and written down as a JSON Schema in ``docs/record.schema.json``;
* ``checkpoint.pt``: the full training state after the last completed epoch (for resume; written and read by
  :mod:`repro.engine.checkpoint`, the only module here that needs torch);
* ``best.pt`` / ``best_reference.pt``: the model with the best validation accuracy under the standard / reference
  evaluation protocol (docs/fidelity.md);
* ``done``: an empty marker written last, when the record is final (what Make targets depend on);
* in a sweep, ``.lock`` (the run's ``flock``) and ``train.log`` (its output).

A sweep's results folder holds ``runs/<name>/`` (:data:`RUNS_DIR`) and one manifest per study in ``studies/``
(:data:`MANIFEST_DIR`).

Every write is atomic (a temporary file in the target's folder, then a rename), so a process killed at any moment
leaves the old file or the new one, never half of one.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    from .config import RunConfig

log = logging.getLogger(__name__)

RECORD_NAME = "record.json"
CHECKPOINT_NAME = "checkpoint.pt"  # state after the last completed epoch (for resume)
BEST_NAME = "best.pt"  # model with the best validation accuracy so far
BEST_REFERENCE_NAME = "best_reference.pt"  # model with the best validation accuracy in its training state
DONE_NAME = "done"  # marker written last, when the record is final
LOCK_NAME = ".lock"
LOG_NAME = "train.log"
RUN_FILES = (DONE_NAME, RECORD_NAME, CHECKPOINT_NAME, BEST_NAME, BEST_REFERENCE_NAME)  # what --force replaces

RUNS_DIR = "runs"  # a sweep's run folders: <results>/runs/<name>
MANIFEST_DIR = "studies"  # a sweep's manifests: <results>/studies/<study>-<budget>.json

#: Key added to every record loaded by :func:`scan_records`: its path relative to the results folder, POSIX-style,
#: to order records deterministically and name them without machine-specific absolute paths.
PATH_KEY = "_path"


# --- atomic writes ----------------------------------------------------------------------------------------------
def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Permissions of a file created normally (0666 less the umask); mkstemp alone would leave 0600, so results on a
#: shared cluster folder would be unreadable by the rest of the group.
_FILE_MODE = 0o666 & ~_umask()


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


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
    atomic_write_text(path, json.dumps(_jsonable(obj), indent=2, allow_nan=False) + "\n")


def read_json(path: Path) -> dict:
    with open(path) as f:
        return json.load(f)


# --- the record -------------------------------------------------------------------------------------------------
def new_record(
    cfg: RunConfig, *, device: str | None = None, data_provenance: dict | None = None, versions: dict | None = None
) -> dict:
    """The record of a run that has not trained yet: its identity, then what training fills in (``epochs``, the
    kept checkpoints, ``test`` and ``test_reference``). ``device`` None: made outside a training process (a run that
    failed before it could start), so without versions or timing."""
    record = {
        "dataset": cfg.dataset,
        "setting": cfg.setting,
        "algorithm": cfg.algorithm,
        "seed": cfg.seed,
        "modalities": list(cfg.modality_names),
        "spec_hash": cfg.spec_hash(),
        "config": dataclasses.asdict(cfg),
    }
    if device is None:
        return {**record, "status": "pending", "error": None, "epochs": []}
    return {
        **record,
        "versions": versions or {},
        "data_provenance": data_provenance or {},
        "device": device,
        "status": "running",
        "error": None,
        "epochs": [],
        "best_epoch": None,
        "best_val_acc": None,
        "stopped": None,
        "test": None,
        "best_reference_epoch": None,
        "best_reference_val_acc": None,
        "test_reference": None,
        "timing": {"epoch_seconds": [], "test_seconds": None},
    }


def read_record(run_dir: Path) -> dict | None:
    """The run's record, or None when it has none (or a damaged one, which a rerun rewrites)."""
    try:
        return json.loads((Path(run_dir) / RECORD_NAME).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def state_of(record: dict | None) -> str:
    """``pending`` (no record), ``done``, ``failed``, or ``partial`` (running when killed, or interrupted: resumes)."""
    if record is None:
        return "pending"
    status = record.get("status")
    if status in ("done", "failed"):
        return status
    return "partial"


def is_number(x: Any) -> bool:
    """True for a finite int/float that is not a bool (JSON ``true`` must not pass as an accuracy)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def why_unusable(record: Any) -> str | None:
    """Why a parsed record cannot be reported (unfinished, no numeric ``test.acc``), or None if it can."""
    if not isinstance(record, dict):
        return f"not a JSON object ({type(record).__name__})"
    if record.get("status") != "done":
        return f"status is {record.get('status')!r}, not 'done'"
    test = record.get("test")
    if not isinstance(test, dict) or "acc" not in test:
        return "no test.acc"
    if not is_number(test["acc"]):
        return f"test.acc is not a finite number ({test['acc']!r})"
    return None


@dataclass(frozen=True)
class Skipped:
    """A ``record.json`` that was not loaded: ``path`` relative to the results folder, and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"skipped {self.path}: {self.reason}"


def scan_records(results_dir: str | Path) -> tuple[list[dict], list[Skipped]]:
    """Every finished ``record.json`` under ``results_dir`` (recursively, sorted by relative path), each with
    :data:`PATH_KEY` added, and one :class:`Skipped` per file that is not valid JSON, not finished or lacks
    ``test.acc``. Logs nothing."""
    root = Path(results_dir)
    if not root.is_dir():
        raise NotADirectoryError(f"results directory not found: {root}")
    found = sorted((p.relative_to(root).as_posix(), p) for p in root.rglob(RECORD_NAME) if p.is_file())
    records: list[dict] = []
    skipped: list[Skipped] = []
    for rel, path in found:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            skipped.append(Skipped(rel, f"invalid JSON ({exc.__class__.__name__})"))
            continue
        reason = why_unusable(record)
        if reason is not None:
            skipped.append(Skipped(rel, reason))
            continue
        record[PATH_KEY] = rel
        records.append(record)
    return records, skipped


def load_records(results_dir: str | Path) -> list[dict]:
    """The finished records under ``results_dir`` (:func:`scan_records`); each skipped file is logged (warning)."""
    records, skipped = scan_records(results_dir)
    for s in skipped:
        log.warning("skipped run record %s: %s", Path(results_dir) / s.path, s.reason)
    return records


def manifest_paths(results_dir: str | Path) -> list[Path]:
    """The sweep manifests under ``results_dir``, sorted."""
    return sorted((Path(results_dir) / MANIFEST_DIR).glob("*.json"))
