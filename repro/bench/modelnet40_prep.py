"""Measure the ModelNet40 stage (§5; MVCNN's 12 views) on synthetic meshes of a chosen size, to size a full run.

``repro bench modelnet40-prep --faces 10000 --objects 64`` writes a tree of bumpy, asymmetric
closed meshes (``faces`` triangles each, in the real layout) to a temporary folder, runs the real stage on it
(OFF parsing, rendering, resumable parts, HDF5 assembly) and prints views/s (wall clock, and per CPU-second: the
figure that does not depend on other load) and the compressed bytes per object, with the extrapolation to the
12,311 objects of ModelNet40. Real meshes differ in size and in how well their
renders compress; the numbers scale with the face count you choose.
"""

from __future__ import annotations

import os
import re
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from data_prep.modelnet40 import prepare_modelnet40

FULL_OBJECTS = 9_843 + 2_468  # ModelNet40's train + test objects


def bumpy_sphere(faces: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A UV sphere of about ``faces`` triangles with random low-frequency bumps and an elongated side."""
    n = max(4, int(np.sqrt(faces / 4)))
    theta, phi = np.meshgrid(
        np.linspace(0, np.pi, n + 1)[1:-1], np.linspace(0, 2 * np.pi, 2 * n, endpoint=False), indexing="ij"
    )
    k = rng.integers(2, 6, size=3)
    r = 1 + 0.15 * np.sin(k[0] * theta) * np.cos(k[1] * phi + rng.random() * 6) + 0.3 * (np.cos(phi) > 0.7)
    pts = np.stack([r * np.sin(theta) * np.cos(phi), 1.5 * r * np.sin(theta) * np.sin(phi), r * np.cos(theta)], -1)
    vertices = np.concatenate([pts.reshape(-1, 3), [[0, 0, 1], [0, 0, -1]]]) * rng.uniform(10, 1000)
    rows, cols = n - 1, 2 * n
    idx = np.arange(rows * cols).reshape(rows, cols)
    a, b = idx[:-1], np.roll(idx[:-1], -1, axis=1)
    c, d = idx[1:], np.roll(idx[1:], -1, axis=1)
    tris = [np.stack([a, c, b], -1).reshape(-1, 3), np.stack([b, c, d], -1).reshape(-1, 3)]
    top, bottom = rows * cols, rows * cols + 1
    tris.append(np.stack([np.full(cols, top), idx[0], np.roll(idx[0], -1)], -1))
    tris.append(np.stack([np.full(cols, bottom), np.roll(idx[-1], -1), idx[-1]], -1))
    return vertices, np.concatenate(tris)


def write_tree(root: Path, objects: int, faces: int, classes: int = 8, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for i in range(objects):
        cls = f"class{i % classes:02d}"
        split = "test" if i % 5 == 4 else "train"
        folder = root / cls / split
        folder.mkdir(parents=True, exist_ok=True)
        v, t = bumpy_sphere(faces, rng)
        lines = ["OFF", f"{len(v)} {len(t)} 0"] + [f"{x:.6f} {y:.6f} {z:.6f}" for x, y, z in v]
        lines += [f"3 {a} {b} {c}" for a, b, c in t]
        (folder / f"{cls}_{i:04d}.off").write_text("\n".join(lines) + "\n")


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the rendering workers), all threads."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run(objects: int, faces: int, workers: int) -> dict:
    """Run the real stage on ``objects`` synthetic meshes of about ``faces`` triangles with ``workers`` rendering
    processes, in a temporary folder; the figures of the module's docstring, as one dict."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ModelNet40"
        write_tree(root, objects, faces)
        mesh_bytes = sum(f.stat().st_size for f in root.rglob("*.off"))
        log: list[str] = []
        cpu0 = _cpu_seconds()
        t0 = time.perf_counter()
        out = prepare_modelnet40(Path(tmp) / "m.h5", raw=root, workers=workers, progress=False, log=log.append)
        seconds = time.perf_counter() - t0
        cpu = _cpu_seconds() - cpu0
        rate = float(re.search(r"([\d.]+) views/s", "\n".join(log)).group(1))
        per_object = out.stat().st_size / objects
    return {
        "objects": objects,
        "faces_per_mesh": faces,
        "workers": workers,
        "off_bytes_per_mesh": round(mesh_bytes / objects),
        "render_views_per_s": rate,
        "stage_seconds": round(seconds, 1),
        "stage_cpu_seconds": round(cpu, 1),
        "views_per_cpu_s": round(objects * 12 / cpu, 1),
        "h5_bytes_per_object": round(per_object),
        "full_dataset_hours": round(FULL_OBJECTS * 12 / rate / 3600, 2),
        "full_dataset_cpu_hours": round(FULL_OBJECTS * 12 * cpu / (objects * 12) / 3600, 2),
        "load_average_1min": os.getloadavg()[0],
        "full_dataset_h5_gb": round(FULL_OBJECTS * per_object / 1e9, 2),
    }
