"""The sweeps' results as rows (no matplotlib): each study's manifest (``<results>/studies/<study>-<budget>.json``,
written by the launchers: members and swept values) and one row per finished two-branch run of it, read from
``<results>/runs/<name>/record.json``. The study figures and the conjecture report both read them from here.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from pathlib import Path

from ..rundir import is_number, manifest_paths, read_record, why_unusable


def manifests(results_dir: str | Path) -> dict[str, dict]:
    """``{name: manifest}`` for every sweep manifest under ``results_dir``, in name order (name: the file's stem,
    ``<study>-<budget>``)."""
    return {path.stem: json.loads(path.read_text()) for path in manifest_paths(results_dir)}


def load_rows(results_dir: str | Path, manifest: dict) -> tuple[list[dict], Counter]:
    """One row per finished two-branch run of the manifest: its manifest entry (dataset, algorithm, modalities,
    pair, params) plus ``d_util``, ``d_speed``, ``acc``, ``r_f`` and ``acc_reference`` (``test_reference.acc``)
    from its record (None where not finite). Also why the other members are left out: ``not started``,
    ``unfinished``, ``failed``, ``no finite d_util``."""
    rows, left_out = [], Counter()
    for run in manifest["runs"]:
        record = read_record(Path(results_dir) / run["dir"])
        if record is None:
            left_out["not started"] += 1
            continue
        test = record.get("test") or {}
        if record.get("status") == "failed":
            left_out["failed"] += 1
        elif why_unusable(record) is not None:
            left_out["unfinished"] += 1
        elif not is_number(test.get("d_util")):
            left_out["no finite d_util"] += 1
        else:
            row = {k: run[k] for k in ("dataset", "algorithm", "modalities", "pair")}
            row.update(run["params"])
            row.update({k: test[k] if is_number(test.get(k)) else None for k in ("d_util", "d_speed", "acc", "r_f")})
            reference = record.get("test_reference") or {}
            row["acc_reference"] = reference["acc"] if is_number(reference.get("acc")) else None
            rows.append(row)
    return rows, left_out


def by_dataset(rows: list[dict]) -> dict[str, list[dict]]:
    """The rows grouped by dataset, datasets in name order."""
    out = defaultdict(list)
    for r in rows:
        out[r["dataset"]].append(r)
    return dict(sorted(out.items()))


def pair_name(modalities: str) -> str:
    """``mono,gray`` -> ``mono+gray``."""
    return modalities.replace(",", "+")


def mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)
