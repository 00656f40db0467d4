"""Datasets by name: each returns its splits and the channel count of each requested modality."""

from __future__ import annotations

from dataclasses import dataclass

from . import cmnist, modelnet40
from .memory import InMemorySplit


@dataclass
class DatasetBundle:
    splits: dict[str, InMemorySplit]
    in_channels: tuple[int, ...]
    num_classes: int
    provenance: dict  # recipe hash and checksum of the prepared file


def load_dataset(name: str, path: str, modalities: tuple[str, ...], train_limit: int = 0,
                 eval_limit: int = 0) -> DatasetBundle:
    if name == "cmnist":
        splits = cmnist.load_cmnist(path, modalities, train_limit, eval_limit)
        channels = tuple(cmnist.MODALITIES[m] for m in modalities)
        return DatasetBundle(splits, channels, cmnist.NUM_CLASSES, cmnist.provenance(path))
    if name == "modelnet40":
        splits = modelnet40.load_modelnet40(path, modalities, train_limit, eval_limit)
        channels = tuple(modelnet40.MODALITIES[m] for m in modalities)
        return DatasetBundle(splits, channels, modelnet40.num_classes(path), modelnet40.provenance(path))
    raise ValueError(f"unknown dataset {name!r}")
