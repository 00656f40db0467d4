"""A miniature ModelNet40 tree in the real layout and with the real files' quirks, built from trimesh primitives.

``<root>/<class>/{train,test}/<class>_NNNN.off``, three classes (written in non-alphabetical order), numbering
continued from train into test as in the published set. Every object is asymmetric (a primitive plus a small
sphere off to one side) so its front and rear views differ. Quirks, one object each:

* ``chair_0002``: the header fused with the counts (``OFF1046 900 0``);
* ``car_0003``: named ``car_0003.off.off``;
* ``car_0001``: a box written with quad faces (and one degenerate face);
* ``airplane_0002``: comments (whole-line and trailing) and blank lines;
* ``chair_0001``: very large coordinates (x 1e6, offset 1e7).

``bad=True`` adds ``airplane/train/airplane_0009.off``, truncated after its header.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh

CLASSES = ("chair", "airplane", "car")  # written in this order; labels must follow alphabetical order
N_TRAIN, N_TEST = 3, 1
BAD_FILE = "airplane/train/airplane_0009.off"


def _primitive(cls: str, k: int) -> trimesh.Trimesh:
    rng = np.random.default_rng(100 * len(cls) + k)
    if cls == "airplane":
        body = trimesh.creation.cylinder(radius=0.15, height=2.0, sections=16)
        body.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))
        wing = trimesh.creation.box((2.0, 0.4, 0.05))
        mesh = trimesh.util.concatenate([body, wing])
    elif cls == "car":
        mesh = trimesh.creation.box((1.0, 2.0, 0.6))
    else:  # chair
        seat = trimesh.creation.box((1.0, 1.0, 0.1))
        back = trimesh.creation.box((1.0, 0.1, 1.0)).apply_translation((0, 0.45, 0.5))
        mesh = trimesh.util.concatenate([seat, back])
    mesh.apply_scale(1.0 + 0.2 * rng.random())
    marker = trimesh.creation.icosphere(subdivisions=2, radius=0.25).apply_translation((0.2, -0.9, 0.3))
    return trimesh.util.concatenate([mesh, marker])


def _quads(mesh: trimesh.Trimesh) -> list[list[int]]:
    """A box's 12 triangles as 6 quads (vertices ordered around each face)."""
    quads = []
    for normal in np.unique(np.round(mesh.face_normals, 6), axis=0):
        tris = np.where((np.round(mesh.face_normals, 6) == normal).all(axis=1))[0]
        ids = np.unique(mesh.faces[tris])
        pts = mesh.vertices[ids]
        centre = pts.mean(axis=0)
        u = pts[0] - centre
        v = np.cross(normal, u)
        order = np.argsort(np.arctan2((pts - centre) @ v, (pts - centre) @ u))
        quads.append(ids[order].tolist())
    return quads


def off_text(vertices, faces: list[list[int]], fused: bool = False, comments: bool = False) -> str:
    lines = [] if fused else ["OFF"]
    counts = f"{len(vertices)} {len(faces)} 0"
    lines.append(f"OFF{counts}" if fused else counts)
    if comments:
        lines = ["OFF", "# written by the test suite", "", counts, ""]
    lines += [
        " ".join(f"{x:.6f}" for x in v) + (" # first vertex" if comments and i == 0 else "")
        for i, v in enumerate(vertices)
    ]
    lines += [" ".join(str(i) for i in [len(f), *f]) for f in faces]
    return "\n".join(lines) + "\n"


def write_mini_modelnet(root: Path, bad: bool = False) -> Path:
    for cls in CLASSES:
        for k in range(1, N_TRAIN + N_TEST + 1):
            split = "train" if k <= N_TRAIN else "test"
            name = f"{cls}_{k:04d}"
            mesh = _primitive(cls, k)
            vertices, faces = mesh.vertices, mesh.faces.tolist()
            fused = comments = False
            filename = f"{name}.off"
            if name == "car_0001":  # quads for the box part, triangles for the marker sphere
                box = trimesh.creation.box((1.0, 2.0, 0.6))
                sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.25).apply_translation((0.2, -0.9, 0.3))
                vertices = np.concatenate([box.vertices, sphere.vertices])
                faces = _quads(box) + (sphere.faces + len(box.vertices)).tolist() + [[0, 0, 1]]
            elif name == "chair_0002":
                fused = True
            elif name == "car_0003":
                filename = f"{name}.off.off"
            elif name == "airplane_0002":
                comments = True
            elif name == "chair_0001":
                vertices = vertices * 1e6 + 1e7
            folder = root / cls / split
            folder.mkdir(parents=True, exist_ok=True)
            (folder / filename).write_text(off_text(vertices, faces, fused=fused, comments=comments))
    if bad:
        (root / BAD_FILE).write_text("OFF\n8 12 0\n0 0 0\n1 0 0\n")
    return root


def expected_names(split: str) -> list[str]:
    """Object names in the output's order: classes alphabetical, then names."""
    ks = range(1, N_TRAIN + 1) if split == "train" else range(N_TRAIN + 1, N_TRAIN + N_TEST + 1)
    return [f"{cls}_{k:04d}" for cls in sorted(CLASSES) for k in ks]
