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

    def batches(self, batch_size: int, *, generator: torch.Generator | None = None
                ) -> Iterator[tuple[tuple[Tensor, ...], Tensor]]:
        """Batches of (inputs in [0, 1] as float32 channels-last, labels); shuffled when a generator is given.
        The permutation is drawn on the CPU from ``generator`` so it does not depend on the device."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
        order = order.to(self.labels.device)
        for idx in order.split(batch_size):
            images = [x.index_select(0, idx) for x in self.images]
            if self.flip and generator is not None:
                for k, x in enumerate(images):
                    mask = (torch.rand(len(idx), generator=generator) < 0.5).to(x.device)
                    images[k] = torch.where(mask[:, None, None, None], x.flip(3), x)
            inputs = tuple((x.float() / 255.0).contiguous(memory_format=torch.channels_last) for x in images)
            yield inputs, self.labels.index_select(0, idx)
