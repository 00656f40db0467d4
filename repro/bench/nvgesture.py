"""NVGesture throughput figures of docs/nvgesture.md: ``repro bench nvgesture --data FILE``.

    loader_clips_per_s      training clips (64 frames, both modalities, random crop, uint8; the flips are applied
                            on the device, by ``batches``) delivered per second by the DataLoader, per worker count,
                            over ``--epochs`` passes of the train split (the first batch, which starts the workers,
                            included)
    loader_cpu_ms_per_clip  CPU milliseconds per uint8 clip, read in this process (the cost per worker)
    loader_clips_per_s_float_on_cpu
                            the same through ``batches``, float inputs converted on the CPU (one thread)
    step_seconds            one guided training step (forward, backward, SGD; batch ``--batch``) of the two-branch
                            I3D+MMTM model on random clips of ``--frames`` x ``--side`` x ``--side``, per thread count

Reads the file as the engine does (repro.data.nvgesture); the model step needs no data. Prints one JSON object.
"""

from __future__ import annotations

import os
import time

import torch

from ..algorithms import ALGORITHMS
from ..config import resolve
from ..data.nvgesture import load
from ..models import build_model
from ..registry import DATASETS

SPEC = DATASETS["nvgesture"]
MODALITIES = tuple(SPEC.modalities)  # rgb, depth


def loader_cpu_ms_per_clip(path: str, epochs: int, batch: int) -> float:
    """CPU time (this process, no workers) per uint8 training clip: what one worker spends, whatever the load."""
    train = load(path, MODALITIES, workers=0).splits["train"]
    clips, start = 0, time.process_time()
    for epoch in range(epochs):
        for _, labels, _ in train.loader(batch, torch.Generator().manual_seed(epoch)):
            clips += len(labels)
    return 1000 * (time.process_time() - start) / clips


def loader_clips_per_s(path: str, workers: int, epochs: int, batch: int, convert: bool) -> float:
    """Clips per second from the DataLoader (uint8, what a GPU receives), or with ``convert`` through
    ``batches`` (float inputs in [-1, 1], converted here on the CPU: on a GPU that happens on the device)."""
    train = load(path, MODALITIES, workers=workers).splits["train"]
    clips, start = 0, time.perf_counter()
    for epoch in range(epochs):
        gen = torch.Generator().manual_seed(epoch)
        batches = train.batches(batch, generator=gen) if convert else train.loader(batch, gen)
        for batch_ in batches:
            clips += len(batch_[1])
    return clips / (time.perf_counter() - start)


def step_seconds(frames: int, side: int, batch: int, steps: int) -> float:
    cfg = resolve("nvgesture", algorithm="guided")
    torch.manual_seed(0)
    (c0, *_), (c1, *_) = SPEC.input_shapes
    model = build_model("nvgesture", (c0, c1), SPEC.num_classes)
    alg = ALGORITHMS["guided"](model, cfg)
    alg.begin_epoch(cfg.warmup_epochs + 1)
    opt = torch.optim.SGD(alg.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    x0, x1 = (torch.rand(batch, c, frames, side, side) * 2 - 1 for c in (c0, c1))
    y = torch.arange(batch) % SPEC.num_classes
    alg.training_step((x0, x1), y, opt)  # warm-up step, not timed
    start = time.perf_counter()
    for _ in range(steps):
        alg.training_step((x0, x1), y, opt)
    return (time.perf_counter() - start) / steps


def run(
    data: str | None,
    workers: list[int],
    epochs: int,
    threads: list[int],
    frames: int,
    side: int,
    batch: int,
    steps: int,
) -> dict:
    """The figures of the module's docstring, as one dict: the loader's with ``data`` (a prepared file), the model
    step's always (no data needed)."""
    result = {"cpu_count": os.cpu_count(), "batch": batch}
    if data:
        torch.set_num_threads(1)
        result["loader_cpu_ms_per_clip"] = round(loader_cpu_ms_per_clip(data, epochs, batch), 1)
        for convert in (False, True):
            result["loader_clips_per_s" + ("_float_on_cpu" if convert else "")] = {
                w: round(loader_clips_per_s(data, w, epochs, batch, convert), 1) for w in workers
            }
    result["clip"] = [frames, side, side]
    result["step_seconds"] = {}
    for t in threads:
        torch.set_num_threads(t)
        result["step_seconds"][t] = round(step_seconds(frames, side, batch, steps), 3)
    return result
