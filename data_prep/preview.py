"""A contact sheet of a prepared ModelNet40 file: a few objects (one per class) x their 12 views, as one PNG, so a
person can check the renders (orientation, framing, shading) before hours of training (§5, MVCNN's 12 views)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from data_prep.common import PrepError


def write_preview(h5_path: str | Path, png: str | Path, objects: int = 8, tile: int = 96, split: str = "test") -> Path:
    """Rows: the first object of up to ``objects`` distinct classes in ``split``; columns: views 0..11
    (view 0 = front, view 6 = rear), each downscaled to ``tile`` pixels; the class name above each row."""
    from PIL import Image, ImageDraw

    h5_path, png = Path(h5_path), Path(png)
    try:
        with h5py.File(h5_path, "r") as f:
            if split not in f or len(f[split]["label"]) == 0:
                split = next(s for s in ("train", "test") if s in f and len(f[s]["label"]))
            labels = np.asarray(f[split]["label"])
            names = [n.decode() if isinstance(n, bytes) else n for n in f[split]["name"][:]]
            classes = json.loads(f.attrs["classes"])
            rows = [int(np.argmax(labels == c)) for c in np.unique(labels)][:objects]
            views = [np.asarray(f[split]["views"][i]) for i in rows]
    except (OSError, KeyError, StopIteration) as e:
        raise PrepError(f"{h5_path}: not a prepared ModelNet40 file ({e}); run `repro prep modelnet40` first") from e
    label_h = 14
    sheet = Image.new("L", (12 * tile, len(rows) * (tile + label_h)), color=64)
    draw = ImageDraw.Draw(sheet)
    for r, (i, v) in enumerate(zip(rows, views, strict=True)):
        y = r * (tile + label_h)
        draw.text((2, y + 1), f"{classes[labels[i]]} ({names[i]}, {split}): views 0..11, 0 = front, 6 = rear", fill=255)
        for k in range(12):
            sheet.paste(Image.fromarray(v[k]).resize((tile, tile), Image.BILINEAR), (k * tile, y + label_h))
    png.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(png, optimize=True)
    return png
