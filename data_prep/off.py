"""A reader for the OFF meshes of Princeton ModelNet40 (Wu et al. 2015), as the files really are.

Why our own reader rather than a mesh library's: the published files break the OFF grammar in ways a generic
loader either rejects or misreads, and a prep stage over 12,311 files must say *which* file is broken and how.
Handled here:

* the ``OFF`` keyword fused with the counts on the first line (``OFF1046 900 0``, e.g. monitor_0284.off), or the
  keyword missing altogether;
* ``#`` comments (whole lines or trailing) and blank lines anywhere;
* polygon faces (``4 i0 i1 i2 i3`` and larger), fan-triangulated; mixed face sizes in one file;
* extra values after a vertex or a face (colours) are ignored;
* degenerate faces (fewer than 3 vertices, or repeated indices) are dropped; very large coordinates are kept in
  float64 (the renderer centres and scales them before converting to float32).

Anything else (missing counts, a truncated file, a non-number, an index outside the vertex list, non-finite
coordinates, no face left) raises :class:`MeshError` with a one-line reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class MeshError(ValueError):
    """A mesh file that cannot be read; ``str()`` is one line: ``<file>: <reason>``."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


def _content_lines(text: str) -> list[str]:
    """Lines with comments stripped, blank lines dropped."""
    out = []
    for line in text.splitlines():
        if "#" in line:
            line = line.split("#", 1)[0]
        line = line.strip()
        if line:
            out.append(line)
    return out


def _numbers(lines: list[str], dtype, what: str, path) -> tuple[np.ndarray, np.ndarray]:
    """Tokens of ``lines`` as one flat array, and the token count per line."""
    tokens = [line.split() for line in lines]
    counts = np.fromiter((len(t) for t in tokens), dtype=np.int64, count=len(tokens))
    try:
        flat = np.array([x for t in tokens for x in t], dtype=dtype)
    except ValueError:
        raise MeshError(path, f"a {what} line holds something that is not a number") from None
    return flat, counts


def _parse_vertices(lines: list[str], path) -> np.ndarray:
    flat, counts = _numbers(lines, np.float64, "vertex", path)
    if (counts < 3).any():
        line = int(np.argmax(counts < 3))
        raise MeshError(path, f"vertex {line} has {counts[line]} coordinates, expected 3")
    if (counts == 3).all():
        vertices = flat.reshape(-1, 3)
    else:  # extra per-vertex values (colours): keep the first three of each line
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        vertices = flat[starts[:, None] + np.arange(3)]
    if not np.isfinite(vertices).all():
        raise MeshError(path, "a vertex coordinate is not finite (nan or inf)")
    return vertices


def _parse_faces(lines: list[str], n_vertices: int, path) -> np.ndarray:
    """Polygon face lines ``n i0 ... i(n-1) [extra]`` -> (T, 3) int64 triangles (fan triangulation)."""
    flat, counts = _numbers(lines, np.float64, "face", path)
    if not np.all(flat == np.round(flat)):
        raise MeshError(path, "a face line holds a non-integer index")
    flat = flat.astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    sizes = flat[starts]
    if (sizes + 1 > counts).any():
        bad = int(np.argmax(sizes + 1 > counts))
        raise MeshError(path, f"face {bad} announces {sizes[bad]} vertices but lists {counts[bad] - 1}")
    triangles = []
    for n in np.unique(sizes):
        if n < 3:  # points and edges: nothing to render
            continue
        rows = starts[sizes == n]
        idx = flat[rows[:, None] + 1 + np.arange(n)]  # (F_n, n) vertex indices
        fan = np.stack([np.repeat(idx[:, :1], n - 2, axis=1), idx[:, 1:-1], idx[:, 2:]], axis=2)
        triangles.append(fan.reshape(-1, 3))
    if not triangles:
        return np.zeros((0, 3), dtype=np.int64)
    tri = np.concatenate(triangles)
    if tri.size and (tri.min() < 0 or tri.max() >= n_vertices):
        worst = tri.min() if tri.min() < 0 else tri.max()
        raise MeshError(path, f"a face refers to vertex {worst}, the file has {n_vertices} vertices (0-based)")
    degenerate = (tri[:, 0] == tri[:, 1]) | (tri[:, 1] == tri[:, 2]) | (tri[:, 0] == tri[:, 2])
    return tri[~degenerate]


def parse_off(text: str, path: str | Path = "<string>") -> tuple[np.ndarray, np.ndarray]:
    """``(vertices (V, 3) float64, triangles (T, 3) int64)`` from the text of an OFF file."""
    lines = _content_lines(text)
    if not lines:
        raise MeshError(path, "the file is empty")
    first = lines[0]
    if first[:3].upper() in ("OFF",) or first[:4].upper() in ("COFF", "NOFF"):
        keyword = 4 if first[0].upper() in "CN" else 3
        rest = first[keyword:].split()
        body = lines[1:]
        if not rest:  # the usual layout: counts on the next line
            if not body:
                raise MeshError(path, "no vertex/face counts after the OFF keyword")
            rest, body = body[0].split(), body[1:]
    else:  # keyword missing: the counts come first
        rest, body = first.split(), lines[1:]
    try:
        counts = [int(x) for x in rest[:3]]
    except ValueError:
        raise MeshError(path, f"cannot read the counts line {' '.join(rest)!r}; expected 'NV NF NE'") from None
    if len(counts) < 2 or min(counts[:2]) < 0:
        raise MeshError(path, f"cannot read the counts line {' '.join(rest)!r}; expected 'NV NF NE'")
    n_vertices, n_faces = counts[:2]
    if len(body) < n_vertices + n_faces:
        raise MeshError(
            path,
            f"truncated: the header announces {n_vertices} vertices and {n_faces} faces, "
            f"the file has {len(body)} data lines",
        )
    if n_vertices == 0 or n_faces == 0:
        raise MeshError(path, f"no geometry ({n_vertices} vertices, {n_faces} faces)")
    vertices = _parse_vertices(body[:n_vertices], path)
    triangles = _parse_faces(body[n_vertices : n_vertices + n_faces], n_vertices, path)
    if len(triangles) == 0:
        raise MeshError(path, "every face is degenerate: nothing to render")
    return vertices, triangles


def read_off(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an OFF file (see the module docstring for what is tolerated)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise MeshError(path, f"cannot read ({e.strerror})") from None
    return parse_off(data.decode("latin-1"), path)
