"""Describe any prepared HDF5 file of the project (CMNIST, ModelNet40, NVGesture), and check that it is intact.

Generic by design: every top-level group is a split, every dataset below it (at any depth, named by its path
relative to the split) an array whose first axis is the sample axis, so all arrays of a split must agree on
it. Root attributes are reported as plain JSON values, with ``recipe`` parsed back from its JSON string.

Integrity: :func:`verify` (``repro inspect PATH --verify``) reads every chunk of every dataset, so each chunk's
Fletcher-32 checksum is checked, and recomputes the stored ``arrays_checksum`` with the stage's own function;
:func:`quick_check` (``repro doctor``) opens the file, checks its format version and reads one chunk of each dataset.
Both fail with one line naming the file, what is wrong and the command that rebuilds it.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import h5py
import numpy as np

from data_prep.common import FORMAT_VERSIONS, PrepError, format_note, hdf5_problem, prep_command, row_blocks

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


def _unreadable(path: Path, exc: BaseException, dataset: str | None = None, where: str = "") -> PrepError:
    """The one-line error for a file h5py cannot read (``where``: the dataset or chunk being read)."""
    problem = hdf5_problem(exc)
    if problem == "a chunk fails its checksum" and where.startswith("chunk "):
        problem = f"{where} fails its checksum"
    elif where:
        problem += f" in {where}"
    if problem == "not an HDF5 file" and prep_command(path, dataset).startswith("repro prep <dataset>"):
        return PrepError(f"{path}: not an HDF5 file; point `repro inspect` at a file written by `repro prep`")
    return PrepError(f"{path}: damaged ({problem}); rebuild it with `{prep_command(path, dataset, force=True)}`")


def _open(path: str | Path) -> h5py.File:
    """``path`` opened for reading, or one line saying why it cannot be."""
    path = Path(path)
    if not path.exists():
        command = prep_command(path)
        if command.startswith("repro prep <dataset>"):  # the file name does not say which stage writes it
            raise PrepError(f"{path}: no such file; run the matching `repro prep ...` stage first or fix the path")
        raise PrepError(f"{path}: no such file; run `{command}` or fix the path")
    if not path.is_file():
        raise PrepError(f"{path}: not a file; point `repro inspect` at a file written by `repro prep`")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise _unreadable(path, e) from None


def _dataset_name(f: h5py.File) -> str | None:
    name = _plain(f.attrs.get("dataset"))
    return name if name in FORMAT_VERSIONS else None


def _check_format(f: h5py.File, path: Path) -> None:
    """A file a stage wrote in another format version than the stage writes now (the readers refuse it)."""
    dataset, version = _dataset_name(f), _plain(f.attrs.get("format_version"))
    if dataset and version is not None and version != FORMAT_VERSIONS[dataset]:
        raise PrepError(
            f"{path}: {format_note(dataset, version)}; this package reads "
            f"{format_note(dataset, FORMAT_VERSIONS[dataset])}: prepare it again with `{prep_command(path, dataset)}`"
        )


def _datasets(f: h5py.File) -> list[h5py.Dataset]:
    found = []
    f.visititems(lambda name, obj: found.append(obj) if isinstance(obj, h5py.Dataset) else None)
    return found


def _chunk_label(dataset: h5py.Dataset, chunk: tuple[slice, ...]) -> str:
    """``/train/mono[2000:3000]``, ``/train/views[17, 6]``: the chunk's place, trailing whole axes left out."""
    parts = [str(s.start) if s.stop - s.start == 1 else f"{s.start}:{s.stop}" for s in chunk]
    whole = [s.start == 0 and s.stop == n for s, n in zip(chunk, dataset.shape, strict=True)]
    while len(parts) > 1 and whole[len(parts) - 1]:
        parts.pop()
    return f"{dataset.name}[{', '.join(parts)}]"


def _read_every_chunk(dataset: h5py.Dataset, path: Path, name: str | None) -> int:
    """Read all of ``dataset`` (each chunk once, so each chunk's checksum is checked); the chunks read. A chunk that
    fails is named in the error."""
    if not dataset.shape or dataset.size == 0:
        dataset[()]
        return 0
    for rows in row_blocks(dataset):
        try:
            dataset[rows]
        except OSError as e:  # which chunk: read them one by one
            block = (rows,) + tuple(slice(0, n) for n in dataset.shape[1:])
            for chunk in dataset.iter_chunks(block) if dataset.chunks else ():
                try:
                    dataset[chunk]
                except OSError as e2:
                    raise _unreadable(path, e2, name, f"chunk {_chunk_label(dataset, chunk)}") from None
            raise _unreadable(path, e, name, dataset.name) from None
    return dataset.id.get_num_chunks() if dataset.chunks else 0


def verify(path: str | Path) -> dict:
    """Check a prepared file whole: its format version, every chunk of every dataset read (a chunk failing its
    Fletcher-32 checksum fails), and, for a file of a known stage, its ``arrays_checksum`` recomputed by that stage's
    ``arrays_checksum`` function and compared. Returns ``{"path", "dataset", "format_version", "chunks",
    "unchecked_chunks", "arrays_checksum"}`` (``unchecked_chunks``: chunks without a checksum filter;
    ``arrays_checksum``: "matches", or why it was not compared); raises :class:`PrepError` (one line naming the file,
    the problem and the rebuild command) when the file is damaged or of another format version. Reads the file
    twice (every chunk, then the checksummed arrays)."""
    path = Path(path)
    with _open(path) as f:
        dataset = _dataset_name(f)
        _check_format(f, path)
        chunks = unchecked = 0
        try:
            for d in _datasets(f):
                n = _read_every_chunk(d, path, dataset)
                chunks += n
                unchecked += 0 if d.fletcher32 else n
        except KeyError as e:  # a dataset's type or a link it cannot resolve
            raise _unreadable(path, e, dataset) from None
        stored = _plain(f.attrs.get("arrays_checksum"))
        if dataset is None or stored is None:
            compared = "not compared: " + ("no arrays_checksum attribute" if dataset else "not a file of a known stage")
        else:
            try:
                stage = importlib.import_module(f"data_prep.{dataset}")
            except ImportError as e:
                raise PrepError(f"{path}: cannot recompute its arrays_checksum ({e}); make install") from e
            try:
                recomputed = stage.arrays_checksum(f)
            except (OSError, KeyError) as e:
                raise _unreadable(path, e, dataset) from None
            if recomputed != stored:
                raise PrepError(
                    f"{path}: damaged (its arrays differ from those the stage wrote: arrays_checksum {recomputed[:12]}"
                    f", stored {stored[:12]}); rebuild it with `{prep_command(path, dataset, force=True)}`"
                )
            compared = "matches"
        version = _plain(f.attrs.get("format_version"))
    return {
        "path": str(path),
        "dataset": dataset,
        "format_version": version,
        "chunks": chunks,
        "unchecked_chunks": unchecked,
        "arrays_checksum": compared,
    }


def format_verified(result: dict) -> str:
    """One line for :func:`verify`'s result."""
    unchecked = f", {result['unchecked_chunks']} of them without a checksum" if result["unchecked_chunks"] else ""
    return (
        f"{result['path']}: ok ({result['chunks']} chunks read{unchecked}; arrays_checksum {result['arrays_checksum']})"
    )


def quick_check(path: str | Path) -> str:
    """A cheap check (``repro doctor``): the file opens, its attributes read, its format version is the stages', and
    the last row of every dataset reads (its chunks' checksums checked). Returns ``"format version N"``; raises
    :class:`PrepError` (one line) otherwise. ``repro inspect PATH --verify`` reads every chunk."""
    path = Path(path)
    with _open(path) as f:
        dataset = _dataset_name(f)
        try:
            dict(f.attrs)
            _check_format(f, path)
            for d in _datasets(f):
                if d.shape and d.size:
                    try:
                        d[-1:]  # the last row: its chunks, each checksum checked
                    except OSError as e:
                        raise _unreadable(path, e, dataset, d.name) from None
        except KeyError as e:
            raise _unreadable(path, e, dataset) from None
        return f"format version {_plain(f.attrs.get('format_version'))}"


def describe(path: str | Path) -> dict:
    """``{"path", "attrs", "splits": {name: {"count", "arrays": {name: {"shape", "dtype"}}}}}`` for one file.

    A split whose arrays disagree on their first axis gets ``"count": None`` and a ``"problem"`` string;
    datasets stored at the root (outside any split) are listed under ``"root_arrays"`` when there are any.
    """
    path = Path(path)
    dataset = None
    try:
        with _open(path) as f:
            dataset = _dataset_name(f)
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
    except (OSError, KeyError) as e:
        raise _unreadable(path, e, dataset) from None
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
