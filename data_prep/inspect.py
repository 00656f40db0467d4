"""Describe any prepared HDF5 file of the project (CMNIST now; ModelNet40 and NVGesture later).

Generic by design: every top-level group is a split, every dataset below it (at any depth, named by its path
relative to the split) an array whose first axis is the sample axis, so all arrays of a split must agree on
it. Root attributes are reported as plain JSON values, with ``recipe`` parsed back from its JSON string.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from data_prep.common import PrepError

# Conventional splits are listed first, any others after them, alphabetically.
_SPLIT_ORDER = {"train": 0, "val": 1, "test": 2}
# Root attributes stored as JSON strings, reported parsed.
_JSON_ATTRS = ("recipe", "classes", "skipped")


def _label_counts(group: h5py.Group, classes) -> dict | None:
    """Samples per label of a 1-D integer ``label`` array, keyed by class name when the file lists them."""
    label = group.get("label")
    if not isinstance(label, h5py.Dataset) or label.ndim != 1 or label.dtype.kind not in "iu":
        return None
    counts = np.bincount(np.asarray(label[:]).astype(np.int64)) if len(label) else np.zeros(0, np.int64)
    names = classes if isinstance(classes, list) and len(classes) >= len(counts) else None
    return {(names[i] if names else str(i)): int(c) for i, c in enumerate(counts) if c or names}


def _plain(value):
    """An HDF5 attribute value as a JSON-able Python value."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()] if value.dtype.kind in "SO" else value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _attrs(obj) -> dict:
    out = {}
    for key in sorted(obj.attrs):
        value = _plain(obj.attrs[key])
        if key in _JSON_ATTRS and isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                pass  # report the raw string rather than fail on a malformed recipe
        out[key] = value
    return out


def _arrays(group: h5py.Group) -> dict:
    found = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            found[name] = {"shape": list(obj.shape), "dtype": str(obj.dtype)}

    group.visititems(visit)
    return found


def describe(path: str | Path) -> dict:
    """``{"path", "attrs", "splits": {name: {"count", "arrays": {name: {"shape", "dtype"}}}}}`` for one file.

    A split whose arrays disagree on their first axis gets ``"count": None`` and a ``"problem"`` string;
    datasets stored at the root (outside any split) are listed under ``"root_arrays"`` when there are any.
    """
    path = Path(path)
    if not path.exists():
        raise PrepError(f"{path}: no such file; run the matching `repro prep ...` stage first or fix the path")
    if not path.is_file() or not h5py.is_hdf5(path):
        raise PrepError(f"{path}: not an HDF5 file; point `repro inspect` at a file written by `repro prep`")
    try:
        with h5py.File(path, "r") as f:
            result = {"path": str(path), "attrs": _attrs(f), "splits": {}}
            root_arrays = {
                k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in f.items() if isinstance(v, h5py.Dataset)
            }
            if root_arrays:
                result["root_arrays"] = root_arrays
            groups = [k for k in f if isinstance(f[k], h5py.Group)]
            for name in sorted(groups, key=lambda k: (_SPLIT_ORDER.get(k, len(_SPLIT_ORDER)), k)):
                group = f[name]
                arrays = _arrays(group)
                lengths = {a["shape"][0] if a["shape"] else None for a in arrays.values()}
                split = {"count": 0, "arrays": arrays}
                if len(lengths) == 1 and None not in lengths:
                    split["count"] = lengths.pop()
                elif arrays:
                    split["count"] = None
                    split["problem"] = "arrays disagree on the sample count: " + ", ".join(
                        f"{k}={a['shape'][0] if a['shape'] else 'scalar'}" for k, a in arrays.items()
                    )
                labels = _label_counts(group, result["attrs"].get("classes"))
                if labels is not None:
                    split["labels"] = labels
                group_attrs = _attrs(group)
                if group_attrs:
                    split["attrs"] = group_attrs
                result["splits"][name] = split
    except OSError as e:
        raise PrepError(f"{path}: cannot read HDF5 ({e}); the file is damaged, rebuild it with --force") from e
    return result


def format_text(desc: dict) -> str:
    """A human-readable rendering of :func:`describe`'s result."""
    lines = [desc["path"]]
    for name, split in desc["splits"].items():
        count = split["count"] if split["count"] is not None else "?"
        lines.append(f"  {name}: {count} samples")
        if "problem" in split:
            lines.append(f"    PROBLEM: {split['problem']}")
        width = max((len(k) for k in split["arrays"]), default=0)
        for key, a in split["arrays"].items():
            lines.append(f"    {key:<{width}}  {tuple(a['shape'])!s:<20} {a['dtype']}")
        if "labels" in split:
            lines.append("    labels: " + ", ".join(f"{k} {v}" for k, v in split["labels"].items()))
        for key, value in split.get("attrs", {}).items():
            lines.append(f"    @{key} = {json.dumps(value)}")
    for key, a in desc.get("root_arrays", {}).items():
        lines.append(f"  (root) {key}  {tuple(a['shape'])} {a['dtype']}")
    lines.append("  attributes:")
    for key, value in desc["attrs"].items():
        if isinstance(value, dict):  # e.g. the recipe: one line per entry, values compact
            lines.append(f"    {key}:")
            lines.extend(f"      {k}: {json.dumps(v, sort_keys=True)}" for k, v in sorted(value.items()))
        else:
            lines.append(f"    {key}: {json.dumps(value)}")
    return "\n".join(lines)
