"""Read the training engine's run records (``<run dir>/record.json``) for the reports.

Reports are built from the results directory alone (Table 1, §5.4). A record counts as finished when its
``status`` is ``"done"`` and it carries a numeric ``test.acc``; anything else is skipped with a warning that
names the file, so one broken or unfinished run never stops a report.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

RECORD_NAME = "record.json"

#: Key added to every loaded record: its path relative to the results directory, POSIX-style. Used to order
#: records deterministically and to name them in notes without machine-specific absolute paths.
PATH_KEY = "_path"


@dataclass(frozen=True)
class Skipped:
    """A ``record.json`` that was not loaded: ``path`` relative to the results directory, and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"skipped {self.path}: {self.reason}"


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


def scan_records(results_dir: str | Path) -> tuple[list[dict], list[Skipped]]:
    """Find every ``record.json`` under ``results_dir`` (recursively), sorted by relative path.

    Returns ``(records, skipped)``: the finished records, each with :data:`PATH_KEY` added, and one
    :class:`Skipped` per file that is not valid JSON, not finished, or lacks ``test.acc``. Logs nothing.
    """
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
    """The finished run records under ``results_dir``, sorted by path; each skipped file is logged (warning).

    Every returned dict is the parsed ``record.json`` plus :data:`PATH_KEY` (its path relative to
    ``results_dir``).
    """
    records, skipped = scan_records(results_dir)
    for s in skipped:
        log.warning("skipped run record %s: %s", Path(results_dir) / s.path, s.reason)
    return records
