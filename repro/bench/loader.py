"""Loader throughput for ``repro bench --data FILE``: how many training samples per second the
dataset's loader delivers to the device, as the engine reads them, to set against the model's samples per second.

CMNIST and ModelNet40 are held on the device as uint8 (:class:`repro.data.memory.InMemorySplit`: gather, flip and
conversion there); NVGesture streams from HDF5 through a DataLoader (:mod:`repro.data.nvgesture`: one file handle
per worker process, pinned memory on CUDA, prefetching; the crop is taken in the worker, the flip and the float
conversion on the device: the module's docstring gives the measurements behind that split).
"""

from __future__ import annotations

import time

import torch

from ..config import resolve
from ..data import load_dataset
from ..registry import DATASETS
from . import sync


def loader_throughput(
    dataset: str, data: str, device: torch.device, batch_size: int, workers: int, max_batches: int
) -> dict:
    """Training batches of ``data``'s train split, drawn as in ``repro train`` (shuffled, augmented, on
    ``device``), for at most ``max_batches`` batches after one untimed batch; samples per second. Raises
    ValueError (or FileNotFoundError) with a message naming the file."""
    bundle = load_dataset(dataset, data, resolve(dataset).modality_names, workers=workers)  # the paper's pair
    train = bundle.splits["train"].to(device)
    samples, start = 0, None
    for i, (inputs, labels) in enumerate(train.batches(batch_size, generator=torch.Generator().manual_seed(0))):
        if i == 0:  # starts the workers, allocates: not timed
            shapes = [list(x.shape[1:]) for x in inputs]
            sync(device)
            start = time.perf_counter()
            continue
        samples += labels.shape[0]
        if i >= max_batches:
            break
    sync(device)
    if start is None or samples == 0:
        raise ValueError(f"{data} has fewer than two training batches of {batch_size} samples")
    seconds = time.perf_counter() - start
    return {
        "loader_samples_per_s": samples / seconds,
        "loader_batches": samples // batch_size,
        "loader_workers": 0 if DATASETS[dataset].in_memory else workers,  # in memory: no DataLoader workers
        "loader_input_shapes": shapes,
    }
