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


def hold_out(split, fraction: float, seed: int):
    """``(kept, held_out)``: ``round(fraction * len(split))`` samples drawn without replacement by a generator seeded
    with ``seed`` are held out, the rest kept; both in the split's order. For methods that estimate something on
    training data they never train on (G-Blending, Wang et al. 2020 §3.3)."""
    import torch

    n = len(split)
    k = round(fraction * n)
    if not 0 < k < n:
        raise ValueError(f"holding out {fraction} of {n} training samples leaves no sample on one side")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return split.subset(order[k:].sort().values), split.subset(order[:k].sort().values)


__all__ = ["DatasetBundle", "hold_out", "load_dataset"]
