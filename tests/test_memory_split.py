"""InMemorySplit (CMNIST, ModelNet40): order and flips drawn up front, once per epoch, give the batches that drawing
them batch by batch gave (the flips' draw order is part of a run's reproducibility)."""

import torch

from repro.data.memory import InMemorySplit


def _reference_batches(images, labels, batch_size, generator):
    """The former loop: the permutation, then per batch one draw of the batch's size per modality."""
    order = torch.randperm(len(labels), generator=generator)
    for idx in order.split(batch_size):
        out = []
        for x in images:
            x = x.index_select(0, idx)
            mask = torch.rand(len(idx), generator=generator) < 0.5
            out.append(torch.where(mask[:, None, None, None], x.flip(3), x).float() / 255.0)
        yield out, labels.index_select(0, idx)


def test_flips_drawn_per_epoch_match_flips_drawn_per_batch():
    g = torch.Generator().manual_seed(0)
    images = tuple(torch.randint(256, (45, 1, 5, 7), dtype=torch.uint8, generator=g) for _ in range(2))
    labels = torch.arange(45)
    split = InMemorySplit(images, labels, flip=True)
    got = list(split.batches(8, generator=torch.Generator().manual_seed(3)))
    want = list(_reference_batches(images, labels, 8, torch.Generator().manual_seed(3)))
    assert len(got) == len(want) == 6
    flipped = 0
    for (inputs, y), (ref_inputs, ref_y) in zip(got, want, strict=True):
        assert torch.equal(y, ref_y)
        for a, b, x in zip(inputs, ref_inputs, images, strict=True):
            assert torch.equal(a, b)
            flipped += int((a != x.index_select(0, y).float() / 255.0).flatten(1).any(1).sum())
    assert 0 < flipped < 90  # some images of each epoch flipped, not all
    evaluation = list(split.batches(8))  # no generator: in order, no flips
    assert torch.equal(torch.cat([y for _, y in evaluation]), labels)
    assert torch.equal(torch.cat([x[0] for x, _ in evaluation]), images[0].float() / 255.0)
