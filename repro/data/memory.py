"""A split held in memory as uint8 tensors (on the training device), batched without a DataLoader.

For small datasets (Colored-and-gray MNIST: 50,000 x 28 x 28 images) the whole split fits on the device once;
each batch is gathered and converted to float there, which is faster than any loader.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor


class InMemorySplit:
    """Images per modality as (N, C, H, W) uint8 tensors (channels-last memory), labels as (N,) int64.

    ``flip``: in training mode (a generator given), flip each image horizontally with probability 1/2, drawn
    from the generator, independently per modality (ModelNet40, as the reference code's per-view transform)."""

    def __init__(self, images: tuple[Tensor, ...], labels: Tensor, flip: bool = False):
        if any(x.shape[0] != labels.shape[0] for x in images):
            raise ValueError("every modality must have one image per label")
        self.images, self.labels, self.flip = images, labels, flip

    def __len__(self) -> int:
        return self.labels.shape[0]

    def to(self, device: torch.device) -> InMemorySplit:
        moved: dict[int, Tensor] = {}  # identical modalities (e.g. front,front) share one copy on the device
        for x in self.images:
            if id(x) not in moved:
                moved[id(x)] = x.to(device)
        return InMemorySplit(tuple(moved[id(x)] for x in self.images), self.labels.to(device), self.flip)

    def subset(self, indices: Tensor) -> InMemorySplit:
        """The samples at ``indices`` (1-D int64, on any device), in that order."""
        idx = indices.to(self.labels.device)
        return InMemorySplit(tuple(x.index_select(0, idx) for x in self.images), self.labels[idx], self.flip)

    def batches(
        self, batch_size: int, *, generator: torch.Generator | None = None
    ) -> Iterator[tuple[tuple[Tensor, ...], Tensor]]:
        """Batches of (inputs in [0, 1] as float32 channels-last, labels); shuffled when a generator is given.
        The permutation and the flips are drawn on the CPU from ``generator`` (so they do not depend on the
        device) and moved to the device once per epoch: no host-device copy, and so no synchronisation, per batch."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
        flips = self._draw_flips(order, batch_size, generator)
        order = order.to(self.labels.device)
        for start, idx in zip(range(0, n, batch_size), order.split(batch_size), strict=True):
            images = [x.index_select(0, idx) for x in self.images]
            if flips is not None:
                mask = flips[start : start + len(idx), :, None, None, None]
                images = [torch.where(mask[:, k], x.flip(3), x) for k, x in enumerate(images)]
            inputs = tuple((x.float() / 255.0).contiguous(memory_format=torch.channels_last) for x in images)
            yield inputs, self.labels.index_select(0, idx)

    def stacked_batches(
        self, generators: list[torch.Generator], batch_size: int
    ) -> Iterator[tuple[tuple[Tensor, ...], Tensor]]:
        """Batches of K runs at once, one shuffled order per generator (as :meth:`batches` draws it): inputs per
        modality (K, B, C, H, W) float in [0, 1], labels (B, K). For packed runs (``repro.engine.packed``)."""
        if self.flip:
            raise ValueError("stacked batches do not draw flips (packing covers Colored-and-gray MNIST)")
        n, k = len(self), len(generators)
        orders = torch.stack([torch.randperm(n, generator=g) for g in generators]).to(self.labels.device)
        for idx in orders.split(batch_size, dim=1):
            b, flat = idx.shape[1], idx.reshape(-1)
            inputs = tuple(x.index_select(0, flat).view(k, b, *x.shape[1:]).float() / 255.0 for x in self.images)
            yield inputs, self.labels.index_select(0, flat).view(k, b).T

    def _draw_flips(self, order: Tensor, batch_size: int, generator: torch.Generator | None) -> Tensor | None:
        """(N, modalities) bool on the device, in batch order: batch by batch, one draw of the batch's size per
        modality (the order in which these draws were once made inside the batch loop, so runs keep their flips)."""
        if not self.flip or generator is None:
            return None
        per_batch = [
            torch.stack([torch.rand(len(idx), generator=generator) < 0.5 for _ in self.images], 1)
            for idx in order.split(batch_size)
        ]
        return torch.cat(per_batch).to(self.labels.device)
