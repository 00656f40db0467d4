"""Small synthetic inputs for engine tests: a CMNIST-layout HDF5 file and a toy two-branch network.

The file follows ``data_prep.cmnist``'s layout (groups train/val/test with mono, gray, label). Digits are replaced
by class-dependent squares so a few epochs learn them; like Colored MNIST, train colours follow the label and
val/test colours do not.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
from torch import nn

from repro.models.twobranch import Branch, TwoBranchNet


def write_tiny_cmnist(path: Path, n_train: int = 256, n_eval: int = 64, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    palette = rng.random((10, 3))
    with h5py.File(path, "w") as f:
        for split, n, correlated in (("train", n_train, True), ("val", n_eval, False), ("test", n_eval, False)):
            y = rng.integers(0, 10, n)
            gray = np.zeros((n, 28, 28, 1), np.uint8)
            for i, label in enumerate(y):
                r, c = 2 + 4 * (label % 5), 2 + 12 * (label // 5)
                gray[i, r : r + 8, c : c + 8, 0] = 200
            color_class = y if correlated else rng.integers(0, 10, n)
            mono = np.round(gray / 255.0 * palette[color_class][:, None, None, :] * 255).astype(np.uint8)
            g = f.create_group(split)
            g["mono"], g["gray"], g["label"] = mono, gray, y.astype(np.int64)
    return path


def toy_two_branch(features: int = 3, classes: int = 4) -> TwoBranchNet:
    """Branches of one linear stage each (features -> features), one MMTM, linear heads."""

    def branch() -> Branch:
        return Branch([nn.Linear(features, features)], pool=nn.Identity(), head=nn.Linear(features, classes))

    return TwoBranchNet(branch(), branch(), fuse_after=[0], fuse_channels=[features], mmtm_ratio=1.0)
