"""ModelNet40 as 12 rendered views per object (Wu et al., ICML 2022, §5: "front and rear views", after MVCNN).

Input: the Princeton ModelNet40 tree as distributed, ``<raw>/<class>/{train,test}/<class>_NNNN.off`` (40 classes,
9,843 train / 2,468 test objects; ``car_0021.off.off`` counts as ``car_0021``), read by :mod:`data_prep.off` and
rendered by :mod:`data_prep.render`; or (``--from-images``) one of MVCNN's published image sets
(:mod:`data_prep.mvcnn_images`). The paper's two modalities are views 0 (front) and 6 (rear); all 12 are stored.

Output (``data/modelnet40.h5``): groups ``/train`` and ``/test`` with ``views`` (N, 12, 224, 224) uint8 (one chunk
per image, lzf, so reading two views reads only those), ``label`` (N,) int64 (index into ``classes``) and ``name``
(N,) str (``airplane_0001``); objects ordered by class, then name. Every chunk of ``views`` and ``label`` carries its
Fletcher-32 checksum (a damaged chunk fails to read). Root attributes: ``dataset``,
``format_version``, ``recipe`` (JSON), ``recipe_hash``, ``source`` (``meshes``, ``modelnet40_images_new_12x`` or
``modelnet40v1``), ``classes`` (JSON list, alphabetical: label order), ``skipped`` (JSON list of
``{"file", "error"}``, the meshes ``--skip-bad`` left out), ``renderer`` (the OpenGL renderer used),
``arrays_checksum`` (sha256 over each split's labels then views, train first; recomputed by ``repro inspect
--verify``: :func:`arrays_checksum`) and ``created_by``. Format version 2 (1: no chunk checksums); a file of another
version is prepared again, saying why. The validation split (20% of train) is drawn at load time
(``repro.data.modelnet40``).

Resumable: objects are rendered in chunks, each saved atomically under ``<out>.parts/`` (with the recipe it
belongs to); a killed stage started again skips the finished chunks. The HDF5 file appears under its real name
only when complete (``atomic_h5``), then the parts are deleted. Re-running with the same recipe (same tree
listing, same rendering) is a no-op.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from tqdm import tqdm

from data_prep import mvcnn_images, render
from data_prep.common import (
    CHUNK_CHECKSUM,
    CHUNK_CHECKSUM_RECIPE,
    FORMAT_VERSIONS,
    PrepError,
    atomic_h5,
    canonical_json,
    created_by,
    hash_dataset,
    is_up_to_date,
    recipe_hash,
    stale_reason,
)
from data_prep.off import MeshError, read_off

SPLITS = ("train", "test")
DEFAULT_OUT = Path("data/modelnet40.h5")
FORMAT_VERSION = FORMAT_VERSIONS["modelnet40"]  # 2: Fletcher-32 chunk checksums (data_prep.common.FORMAT_HISTORY)
#: The parts' own format (rendered views in .npz files, keyed by the recipe): the HDF5 file's format version and its
#: chunk checksums do not concern them, so parts rendered before the version changed are kept.
PARTS_FORMAT = 1
CHUNK = 32  # objects per resumable part
#: The 40 classes of the published dataset, alphabetical (= label order).
CLASSES = (
    "airplane",
    "bathtub",
    "bed",
    "bench",
    "bookshelf",
    "bottle",
    "bowl",
    "car",
    "chair",
    "cone",
    "cup",
    "curtain",
    "desk",
    "door",
    "dresser",
    "flower_pot",
    "glass_box",
    "guitar",
    "keyboard",
    "lamp",
    "laptop",
    "mantel",
    "monitor",
    "night_stand",
    "person",
    "piano",
    "plant",
    "radio",
    "range_hood",
    "sink",
    "sofa",
    "stairs",
    "stool",
    "table",
    "tent",
    "toilet",
    "tv_stand",
    "vase",
    "wardrobe",
    "xbox",
)
#: FOR TESTS: the stage SIGKILLs itself after writing this many parts (a real kill at a known point).
KILL_AFTER_PARTS_ENV = "REPRO_PREP_KILL_AFTER_PARTS"


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


@dataclass(frozen=True)
class Item:
    """One object: its split, label, name and source files (one OFF file, or 12 images in view order)."""

    split: str
    label: int
    name: str
    files: tuple[str, ...]  # relative to the raw root


def _classes(root: Path, hint: str) -> list[str]:
    if not root.is_dir():
        raise PrepError(f"{root}: no such directory; pass {hint} the folder holding airplane/, bathtub/, ...")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and any((p / s).is_dir() for s in SPLITS))
    if not classes:
        raise PrepError(
            f"{root}: no <class>/train or <class>/test folders; pass {hint} the ModelNet40 root "
            f"(the folder holding airplane/, bathtub/, ...)"
        )
    return classes


def _mesh_name(filename: str) -> str | None:
    """``car_0021.off`` and ``car_0021.off.off`` -> ``car_0021``; None for a file that is not a mesh."""
    if not filename.lower().endswith(".off"):
        return None
    while filename.lower().endswith(".off"):
        filename = filename[:-4]
    return filename


def list_meshes(root: Path) -> tuple[list[str], list[Item]]:
    """Classes (alphabetical) and every object of the tree, ordered by split, class, name."""
    classes = _classes(root, "--raw")
    items = []
    for split in SPLITS:
        for label, cls in enumerate(classes):
            folder = root / cls / split
            found: dict[str, str] = {}
            for f in sorted(folder.iterdir()) if folder.is_dir() else []:
                name = _mesh_name(f.name)
                if name is None or not f.is_file():
                    continue
                if name in found:
                    raise PrepError(f"{folder}: both {found[name]} and {f.name} are object {name}; remove one")
                found[name] = f.name
            items += [Item(split, label, n, (f"{cls}/{split}/{found[n]}",)) for n in sorted(found)]
    return classes, items


def listing_hash(root: Path, items: list[Item]) -> str:
    """sha256 over every source file's relative path and size: the recipe changes when the tree does."""
    h = hashlib.sha256()
    for item in items:
        for rel in item.files:
            h.update(f"{rel}\t{(root / rel).stat().st_size}\n".encode())
    return h.hexdigest()


def build_recipe(source: str, classes: list[str], items: list[Item], listing: str, size: int, skip_bad: bool) -> dict:
    counts = {s: sum(i.split == s for i in items) for s in SPLITS}
    return {
        "dataset": "modelnet40",
        "format_version": FORMAT_VERSION,
        "source": source,
        "classes": classes,
        "counts_listed": counts,
        "listing_sha256": listing,
        "size": size,
        "render": render.recipe(size) if source == "meshes" else None,
        "order": "split, class (alphabetical), name",
        "skip_bad": bool(skip_bad),
        **({"resize": mvcnn_images.RESIZE} if source != "meshes" else {}),  # images of another size than --size
        "chunk_checksum": CHUNK_CHECKSUM_RECIPE,
    }


def arrays_checksum(f) -> str:
    """The ``arrays_checksum`` of an open file, recomputed from its arrays as :func:`_assemble` computes it (each
    split's labels, then its views; reading every chunk, so each chunk's Fletcher-32 checksum is checked too)."""
    hasher = hashlib.sha256()
    for split in SPLITS:
        hash_dataset(hasher, f[split]["label"])
        hash_dataset(hasher, f[split]["views"])
    return hasher.hexdigest()


# --- the per-chunk work (runs in worker processes when --workers > 1) ----------------------------------------
_WORKER: dict = {}


def _init_worker(source: str, root: str, size: int, one_thread: bool = False) -> None:
    if one_thread:  # one of several processes: one llvmpipe thread each, unless the user chose otherwise
        os.environ.setdefault("LP_NUM_THREADS", "1")
    _WORKER.update(
        source=source, root=Path(root), size=size, renderer=render.ViewRenderer(size) if source == "meshes" else None
    )


def _load_views(item: Item) -> np.ndarray:
    """The 12 views of one object; raises MeshError (or mvcnn_images.ImageSetError) naming the file."""
    root, size = _WORKER["root"], _WORKER["size"]
    if _WORKER["source"] != "meshes":
        return mvcnn_images.read_views([root / f for f in item.files], size)
    path = root / item.files[0]
    vertices, triangles = read_off(path)
    try:
        return _WORKER["renderer"].render(vertices, triangles)
    except ValueError as e:
        raise MeshError(path, str(e)) from None


def _render_part(job: tuple[list[Item], str, bool]) -> tuple[str, int, list]:
    """Render one chunk and save it atomically as a part; a bad object fails it unless ``skip_bad``."""
    items, part, skip_bad = job
    views, index, bad = [], [], []
    for k, item in enumerate(items):
        try:
            views.append(_load_views(item))
            index.append(k)
        except (MeshError, mvcnn_images.ImageSetError) as e:
            if not skip_bad:
                raise PrepError(f"{e}; fix or delete the file, or pass --skip-bad to leave it out") from None
            bad.append({"file": item.files[0], "error": getattr(e, "reason", str(e))})
    size = _WORKER["size"]
    array = np.stack(views) if views else np.zeros((0, render.NUM_VIEWS, size, size), np.uint8)
    tmp = Path(f"{part}.tmp-{os.getpid()}.npz")
    np.savez_compressed(tmp, views=array, index=np.asarray(index, np.int64), bad=json.dumps(bad))
    os.replace(tmp, part)
    return part, len(items), bad


# --- the stage ---------------------------------------------------------------------------------------------
def _parts_dir(out: Path, recipe: dict) -> Path:
    """``<out>.parts/`` holding parts of this recipe (``skip_bad``, the file's format version and its chunk checksums
    aside: :data:`PARTS_FORMAT`); parts of another recipe are wiped."""
    parts = out.with_name(out.name + ".parts")
    rendering = {k: v for k, v in recipe.items() if k not in ("skip_bad", "chunk_checksum")}
    key = recipe_hash({**rendering, "format_version": PARTS_FORMAT})
    stamp = parts / "recipe_hash"
    if parts.exists() and (not stamp.exists() or stamp.read_text().strip() != key):
        shutil.rmtree(parts)
    parts.mkdir(parents=True, exist_ok=True)
    stamp.write_text(key + "\n")
    return parts


def _load_part(path: Path, views: bool = False) -> tuple[np.ndarray | None, np.ndarray, list] | None:
    """``(views or None, index, bad)`` of a part; None when it is damaged (a crash mid-write): render it again.
    Views are decompressed only when asked for, so listing parts stays cheap."""
    try:
        with np.load(path) as z:
            return (z["views"] if views else None), z["index"], json.loads(str(z["bad"]))
    except Exception:
        return None


def _run_jobs(jobs, workers, source, root, size, progress, log):
    """Render the missing parts (in ``workers`` processes), with a progress bar in objects and views/s."""
    total = sum(len(items) for items, _, _ in jobs)
    kill_after = int(os.environ.get(KILL_AFTER_PARTS_ENV, "0"))
    t0, done = time.perf_counter(), 0
    bar = tqdm(
        total=total, desc="render" if source == "meshes" else "read", unit="obj", disable=None if progress else True
    )  # a bar on terminals; the views/s line is logged anyway
    if workers > 1:
        import multiprocessing as mp

        pool = mp.get_context("spawn").Pool(workers, _init_worker, (source, str(root), size, True))
        results = pool.imap(_render_part, jobs)
    else:
        pool = None
        _init_worker(source, str(root), size)
        results = map(_render_part, jobs)
    try:
        for n_parts, (_, n, _) in enumerate(results, 1):
            done += n
            bar.update(n)
            bar.set_postfix_str(f"{done * render.NUM_VIEWS / (time.perf_counter() - t0):.0f} views/s")
            if kill_after and n_parts >= kill_after:
                os.kill(os.getpid(), signal.SIGKILL)
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
        elif _WORKER.get("renderer") is not None:
            _WORKER["renderer"].release()
            _WORKER["renderer"] = None
    seconds = time.perf_counter() - t0
    if total:
        log(
            f"{'rendered' if source == 'meshes' else 'read'} {total} objects ({total * render.NUM_VIEWS} views) "
            f"in {seconds:.1f} s: {total * render.NUM_VIEWS / seconds:.1f} views/s"
        )


def _assemble(
    out: Path,
    parts: list[tuple[str, Path]],
    items: list[Item],
    recipe: dict,
    rhash: str,
    classes: list[str],
    renderer: str,
) -> tuple[dict, list]:
    """Write the HDF5 file from the parts, atomically, one part in memory at a time; returns the counts per
    split and the skipped files."""
    by_split = {s: [i for i in items if i.split == s] for s in SPLITS}
    kept: dict[str, list] = {s: [] for s in SPLITS}  # (part path, [items kept]) in order
    skipped = []
    for split, path in parts:
        part = _load_part(path)
        if part is None:
            raise PrepError(f"{path}: damaged part; delete it and run the stage again")
        start = int(path.stem.split("-")[1])
        kept[split].append((path, [by_split[split][start + int(k)] for k in part[1]]))
        skipped += part[2]
    counts = {s: sum(len(chosen) for _, chosen in kept[s]) for s in SPLITS}
    size = recipe["size"]
    checksum = hashlib.sha256()
    with atomic_h5(out) as f:
        for split in SPLITS:
            g = f.create_group(split)
            n = counts[split]
            chosen = [i for _, c in kept[split] for i in c]
            label = np.asarray([i.label for i in chosen], np.int64)
            g.create_dataset("label", data=label, **({"chunks": True, **CHUNK_CHECKSUM} if n else {}))
            g.create_dataset("name", data=np.asarray([i.name for i in chosen], dtype=object), dtype=h5py.string_dtype())
            checksum.update(label.tobytes())
            views = g.create_dataset(
                "views",
                (n, render.NUM_VIEWS, size, size),
                np.uint8,
                **({"chunks": (1, 1, size, size), "compression": "lzf", **CHUNK_CHECKSUM} if n else {}),
            )
            row = 0
            for path, c in kept[split]:
                part = _load_part(path, views=True)
                if part is None:
                    raise PrepError(f"{path}: damaged part; delete it and run the stage again")
                array = part[0]
                views[row : row + len(c)] = array
                checksum.update(np.ascontiguousarray(array).tobytes())
                row += len(c)
        f.attrs.update(
            {
                "dataset": "modelnet40",
                "format_version": FORMAT_VERSION,
                "recipe": canonical_json(recipe),
                "recipe_hash": rhash,
                "source": recipe["source"],
                "classes": json.dumps(classes),
                "skipped": json.dumps(skipped),
                "renderer": renderer,
                "arrays_checksum": checksum.hexdigest(),
                "created_by": created_by(__name__),
            }
        )
    return counts, skipped


def prepare_modelnet40(
    out: str | Path = DEFAULT_OUT,
    *,
    raw: str | Path | None = None,
    from_images: str | Path | None = None,
    skip_bad: bool = False,
    size: int = 224,
    workers: int = 1,
    chunk: int = CHUNK,
    force: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = _stderr,
) -> Path:
    """Build ``out`` from the mesh tree ``raw`` or the MVCNN image set ``from_images``; a no-op when up to date."""
    out = Path(out)
    if (raw is None) == (from_images is None):
        raise PrepError("give exactly one of --raw (the ModelNet40 mesh tree) and --from-images (an MVCNN image set)")
    if size < 8 or workers < 1 or chunk < 1:
        raise PrepError(f"--size >= 8, --workers >= 1 and chunk >= 1 needed, got {size}, {workers}, {chunk}")
    if raw is not None:
        root, source = Path(raw), "meshes"
        classes, items = list_meshes(root)
    else:
        root = Path(from_images)
        classes = _classes(root, "--from-images")
        source, items = mvcnn_images.list_image_set(root, classes, SPLITS, Item)
    if not items:
        raise PrepError(f"{root}: no objects found under <class>/train or <class>/test")
    recipe = build_recipe(source, classes, items, listing_hash(root, items), size, skip_bad)
    rhash = recipe_hash(recipe)
    if not force and is_up_to_date(out, recipe):
        log(f"{out}: up to date (recipe_hash {rhash[:12]}), nothing to do; pass --force to rebuild")
        return out
    if not force and (stale := stale_reason(out, recipe)):
        log(stale)

    if classes != list(CLASSES):
        log(f"note: {root} has {len(classes)} classes, not the 40 of ModelNet40; labels follow its folders")
    t0 = time.perf_counter()
    parts_dir = _parts_dir(out, recipe)
    jobs, parts = [], []
    for split in SPLITS:
        split_items = [i for i in items if i.split == split]
        for start in range(0, len(split_items), chunk):
            part = parts_dir / f"{split}-{start:06d}.npz"
            parts.append((split, part))
            loaded = _load_part(part) if part.exists() else None
            if loaded is None or (loaded[2] and not skip_bad):
                jobs.append((split_items[start : start + chunk], str(part), skip_bad))
    if len(jobs) < len(parts):
        log(f"{out}: resuming, {len(parts) - len(jobs)} of {len(parts)} parts already in {parts_dir}")
    _run_jobs(jobs, workers, source, root, size, progress, log)
    renderer_name = "none (pre-rendered images)"
    if source == "meshes":
        renderer_name = _renderer_name()
    counts, skipped = _assemble(out, parts, items, recipe, rhash, classes, renderer_name)
    shutil.rmtree(parts_dir, ignore_errors=True)
    log(
        f"{out}: wrote train/test = {counts['train']}/{counts['test']} objects x 12 views from {source} "
        f"({len(skipped)} skipped, recipe_hash {rhash[:12]}) in {time.perf_counter() - t0:.1f} s"
    )
    for s in skipped:
        log(f"  skipped {s['file']}: {s['error']}")
    return out


def _renderer_name() -> str:
    r = render.ViewRenderer(16, samples=0)
    try:
        return r.renderer_name
    finally:
        r.release()
