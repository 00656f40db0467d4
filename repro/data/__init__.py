"""Datasets by name (:data:`repro.registry.DATASETS`): each reader returns its splits and the channel count of each
requested modality as a :class:`DatasetBundle`."""

from __future__ import annotations

from ..registry import dataset, load
from .hdf5 import DatasetBundle


def load_dataset(
    name: str, path: str, modalities: tuple[str, ...], train_limit: int = 0, eval_limit: int = 0, workers: int = 0
) -> DatasetBundle:
    """``workers``: loader processes for datasets streamed from disk (ignored by in-memory ones)."""
    reader = load(dataset(name).loader)
    return reader(path, modalities, train_limit, eval_limit, workers)


__all__ = ["DatasetBundle", "load_dataset"]
