"""Datasets by name: each returns its splits and the channel count of each requested modality."""

from __future__ import annotations

from dataclasses import dataclass

from . import cmnist, modelnet40, nvgesture
from .memory import InMemorySplit


@dataclass
class DatasetBundle:
    splits: dict[str, InMemorySplit]  # or any split with the same interface (len, to, batches)
    in_channels: tuple[int, ...]
    num_classes: int
    provenance: dict  # recipe hash and checksum of the prepared file
    eval_batch_size: int = 500  # batch size of evaluation passes (memory, not results)


def load_dataset(
    name: str, path: str, modalities: tuple[str, ...], train_limit: int = 0, eval_limit: int = 0, workers: int = 0
) -> DatasetBundle:
    """``workers``: loader processes for datasets streamed from disk (ignored by in-memory ones)."""
    if name == "cmnist":
        splits = cmnist.load_cmnist(path, modalities, train_limit, eval_limit)
        channels = tuple(cmnist.MODALITIES[m] for m in modalities)
        return DatasetBundle(splits, channels, cmnist.NUM_CLASSES, cmnist.provenance(path))
    if name == "nvgesture":
        splits = nvgesture.load_nvgesture(path, modalities, train_limit, eval_limit, workers)
        channels = tuple(nvgesture.MODALITIES[m] for m in modalities)
        return DatasetBundle(
            splits, channels, nvgesture.NUM_CLASSES, cmnist.provenance(path), eval_batch_size=nvgesture.EVAL_BATCH_SIZE
        )
    if name == "modelnet40":
        splits = modelnet40.load_modelnet40(path, modalities, train_limit, eval_limit)
        channels = tuple(modelnet40.MODALITIES[m] for m in modalities)
        return DatasetBundle(splits, channels, modelnet40.num_classes(path), modelnet40.provenance(path))
    raise ValueError(f"unknown dataset {name!r}")
