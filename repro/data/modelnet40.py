"""ModelNet40 views from ``data/modelnet40.h5`` (written by ``repro prep modelnet40``; layout in
data_prep.modelnet40), for the paper's front/rear task (§5; MVCNN's 12 views).

Modalities are view names: ``front`` (view 0, m0) and ``rear`` (view 6, m1), the reference code's choice, or
``view0`` ... ``view11``; any pair, identical ones included (``front,front`` for §5.2's identical-modality study).
Each is a 1-channel 224x224 gray image. Only the selected views are read from the file.

Splits: 20% of the published train set, drawn with a fixed seed (:data:`VAL_SEED`), is the validation set (model
selection); the rest trains; the published test set is the test set. Training batches get a random horizontal
flip per image and modality (the reference code's augmentation).
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import torch

from ..registry import DATASETS
from .hdf5 import DatasetBundle, check_prepared, open_prepared, provenance, read
from .memory import InMemorySplit

NUM_VIEWS = 12
VIEWS = {"front": 0, "rear": 6, **{f"view{k}": k for k in range(NUM_VIEWS)}}
SPEC = DATASETS["modelnet40"]
VAL_FRACTION = 0.2
VAL_SEED = 10  # the reference code's random_seed_for_validation


def num_classes(path: str | Path) -> int:
    with open_prepared(path, SPEC) as f:
        return len(json.loads(f.attrs["classes"]))


def validation_indices(n_train: int, seed: int = VAL_SEED) -> np.ndarray:
    """Sorted indices of the published train set held out for validation: floor(20% n) drawn without replacement
    by numpy's PCG64 seeded with ``seed``."""
    n_val = int(np.floor(VAL_FRACTION * n_train))
    return np.sort(np.random.default_rng(seed).permutation(n_train)[:n_val])


def _read_views(group: h5py.Group, views: list[int], rows: np.ndarray) -> dict[int, torch.Tensor]:
    """{view: (len(rows), 1, H, W) uint8} for the distinct views asked for."""
    out = {}
    for v in sorted(set(views)):
        column = np.asarray(read(group["views"], np.s_[:, v]))  # reads only this view's chunks
        out[v] = torch.from_numpy(np.ascontiguousarray(column[rows]))[:, None]
    return out


def load(
    path: str | Path, modalities: tuple[str, ...], train_limit: int = 0, eval_limit: int = 0, workers: int = 0
) -> DatasetBundle:
    """The selected views of the three splits in memory (``workers`` unused: nothing is streamed). A damaged file (or
    one of another format version) raises :class:`~repro.data.hdf5.PreparedFileError`, one line naming the file and
    its rebuild command."""
    path = check_prepared(path, modalities, SPEC)
    views = [VIEWS[m] for m in modalities]
    with open_prepared(path, SPEC) as f:
        n_train = f["train"]["label"].shape[0]
        val_rows = validation_indices(n_train)
        train_rows = np.setdiff1d(np.arange(n_train), val_rows)
        test_rows = np.arange(f["test"]["label"].shape[0])
        cut = {"train": (train_rows, train_limit), "val": (val_rows, eval_limit), "test": (test_rows, eval_limit)}
        splits = {}
        for name, (rows, limit) in cut.items():
            rows = rows[:limit] if limit > 0 else rows
            group = f["test" if name == "test" else "train"]
            images = _read_views(group, views, rows)
            labels = torch.from_numpy(np.asarray(read(group["label"]))[rows].astype(np.int64))
            splits[name] = InMemorySplit(tuple(images[v] for v in views), labels, flip=name == "train")
        classes, identity = len(json.loads(f.attrs["classes"])), provenance(f)
    channels = tuple(SPEC.modalities[m] for m in modalities)
    return DatasetBundle(splits, channels, classes, identity)
