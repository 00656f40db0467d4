"""MVCNN's published 12-view image sets of ModelNet40 (Su et al., ICCV 2015), for ``--from-images``.

Two sets circulate:

* ``modelnet40_images_new_12x``: ``<class>/<split>/<name>.obj.shaded_v001.png`` ... ``v012.png``, black
  background; the set the greedy paper's reference code trains on (views v001 and v007 as front and rear);
* ``modelnet40v1``: ``<class>/<split>/<name>_001.jpg`` ... ``_012.jpg``, white background.

Images are stored as published, converted to 8-bit gray (PIL's ``convert("L")``) and, if their size differs from
the recipe's, resized with OpenCV's ``cv2.resize`` (``INTER_LINEAR``, :data:`RESIZE`; the resize NVGesture's frames
get too, data_prep.video); the output's ``source`` attribute says which set was used.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from data_prep.common import PrepError

NUM_VIEWS = 12
#: How a view whose size differs from the recipe's is resized (before: PIL's bilinear filter).
RESIZE = "OpenCV cv2.resize INTER_LINEAR of the 8-bit gray image"
PATTERNS = {
    "modelnet40_images_new_12x": re.compile(r"^(?P<name>.+)\.obj\.shaded_v(?P<view>\d{3})\.png$"),
    "modelnet40v1": re.compile(r"^(?P<name>.+)_(?P<view>\d{3})\.jpg$"),
}


class ImageSetError(ValueError):
    """An object of an image set that cannot be read; ``str()`` is ``<file>: <reason>``."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


def _detect(root: Path, classes: list[str], splits) -> str:
    for cls in classes:
        for split in splits:
            folder = root / cls / split
            for f in sorted(folder.iterdir()) if folder.is_dir() else []:
                for source, pattern in PATTERNS.items():
                    if pattern.match(f.name):
                        return source
    raise PrepError(
        f"{root}: no MVCNN images found (expected <class>/<split>/<name>.obj.shaded_v001.png or "
        f"<name>_001.jpg); point --from-images at modelnet40_images_new_12x or modelnet40v1"
    )


def list_image_set(root: Path, classes: list[str], splits, item_type) -> tuple[str, list]:
    """``(source, items)``: the set's name and one ``item_type(split, label, name, files)`` per object, files in
    view order (an object with a view missing keeps the files it has; reading it then fails, naming it)."""
    source = _detect(root, classes, splits)
    pattern = PATTERNS[source]
    items = []
    for split in splits:
        for label, cls in enumerate(classes):
            folder = root / cls / split
            objects: dict[str, dict[int, str]] = {}
            for f in sorted(folder.iterdir()) if folder.is_dir() else []:
                m = pattern.match(f.name)
                if m:
                    objects.setdefault(m["name"], {})[int(m["view"])] = f"{cls}/{split}/{f.name}"
            for name in sorted(objects):
                views = objects[name]
                files = tuple(views[v] for v in sorted(views))
                items.append(item_type(split, label, name, files))
    return source, items


def read_views(paths: list[Path], size: int) -> np.ndarray:
    """(12, size, size) uint8 gray images of one object, in view order (resized as :data:`RESIZE` says)."""
    import cv2
    from PIL import Image, UnidentifiedImageError

    if len(paths) != NUM_VIEWS:
        raise ImageSetError(paths[0], f"the object has {len(paths)} views, expected {NUM_VIEWS}")
    out = np.empty((NUM_VIEWS, size, size), np.uint8)
    for k, path in enumerate(paths):
        try:
            with Image.open(path) as im:
                gray = np.asarray(im.convert("L"))
            out[k] = (
                gray if gray.shape == (size, size) else cv2.resize(gray, (size, size), interpolation=cv2.INTER_LINEAR)
            )
        except (OSError, UnidentifiedImageError) as e:
            raise ImageSetError(path, f"cannot read the image ({e})") from None
    return out
