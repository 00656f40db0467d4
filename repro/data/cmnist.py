"""Colored-and-gray MNIST from ``data/cmnist.h5`` (written by ``repro prep cmnist``; layout in data_prep.cmnist).

Modalities: ``mono`` (m0, the coloured image, 3 channels) and ``gray`` (m1, 1 channel); any one or two of them,
identical pairs included (``gray,gray`` for the paper's identical-modality study, §5.2).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import torch

from ..registry import DATASETS
from .hdf5 import DatasetBundle, check_prepared, open_prepared, provenance, read
from .memory import InMemorySplit

SPEC = DATASETS["cmnist"]


def _read(f: h5py.File, split: str, modalities: tuple[str, ...], limit: int) -> InMemorySplit:
    group = f[split]
    n = group["label"].shape[0] if limit <= 0 else min(limit, group["label"].shape[0])
    arrays = {m: np.asarray(read(group[m], slice(n))) for m in set(modalities)}
    labels = torch.from_numpy(np.asarray(read(group["label"], slice(n))).astype(np.int64))
    # (N, H, W, C) uint8 viewed as (N, C, H, W): exactly the channels-last memory layout, no copy.
    tensors = {m: torch.from_numpy(a).permute(0, 3, 1, 2) for m, a in arrays.items()}
    return InMemorySplit(tuple(tensors[m] for m in modalities), labels)


def load(
    path: str | Path, modalities: tuple[str, ...], train_limit: int = 0, eval_limit: int = 0, workers: int = 0
) -> DatasetBundle:
    """The three splits in memory (``workers`` unused: nothing is streamed). A damaged file (or one of another format
    version) raises :class:`~repro.data.hdf5.PreparedFileError`, one line naming the file and its rebuild command."""
    path = check_prepared(path, modalities, SPEC)
    with open_prepared(path, SPEC) as f:
        limits = {"train": train_limit, "val": eval_limit, "test": eval_limit}
        splits = {split: _read(f, split, modalities, limit) for split, limit in limits.items()}
        identity = provenance(f)
    return DatasetBundle(splits, tuple(SPEC.modalities[m] for m in modalities), SPEC.num_classes, identity)
