"""The NVGesture loader (A.4 sampling) on a small file in the stage's layout whose pixels say where they are from:
rgb = (frame, row, column), depth = column, so every offset, crop and flip can be read back from a batch."""

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from repro.data import load_dataset
from repro.data.nvgesture import CLIP_FRAMES
from repro.data.nvgesture import load as load_nvgesture

SIZE, FRAMES = 32, 80  # crop 28 (7/8)
NUM_FRAMES = [80, 80, 64, 80, 72, 80, 80, 64, 80, 80]


def _write(path: Path) -> Path:
    t, y, x = np.meshgrid(np.arange(FRAMES), np.arange(SIZE), np.arange(SIZE), indexing="ij")
    rgb = np.stack([t, y, x], axis=-1).astype(np.uint8)
    depth = x[..., None].astype(np.uint8)
    n = len(NUM_FRAMES)
    with h5py.File(path, "w") as f:
        for split in ("train", "val", "test"):
            g = f.create_group(split)
            g["rgb"] = np.broadcast_to(rgb, (n,) + rgb.shape)
            g["depth"] = np.broadcast_to(depth, (n,) + depth.shape)
            g["label"] = np.arange(n, dtype=np.int64) % 25
            g["num_frames"] = np.array(NUM_FRAMES, dtype=np.int32)
        f.attrs["recipe_hash"] = "test"
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return _write(tmp_path_factory.mktemp("nvg") / "layout.h5")


def _decode(x_rgb: torch.Tensor) -> np.ndarray:
    """(B, 3, T, H, W) in [-1, 1] back to uint8 (B, T, H, W, 3)."""
    return ((x_rgb + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 4, 1).numpy()


def _all(split, batch_size=4, seed=None):
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    return list(split.batches(batch_size, generator=gen))


def test_training_clips_are_random_consecutive_crops_shared_by_both_modalities(data):
    train = load_nvgesture(data, ("rgb", "depth")).splits["train"]
    flips, offsets = set(), set()
    for seed in range(4):
        for (rgb, depth), labels in _all(train, seed=seed):
            assert rgb.shape[1:] == (3, CLIP_FRAMES, 28, 28) and depth.shape[1:] == (1, CLIP_FRAMES, 28, 28)
            assert rgb.dtype == torch.float32 and rgb.min() >= -1 and rgb.max() <= 1
            for clip, d, label in zip(_decode(rgb), _decode(depth.expand(-1, 3, -1, -1, -1)), labels, strict=True):
                t, y, x = clip[..., 0], clip[..., 1], clip[..., 2]
                t0, top = int(t[0, 0, 0]), int(y[0, 0, 0])
                assert (t == t0 + np.arange(CLIP_FRAMES)[:, None, None]).all()  # 64 consecutive frames
                assert t0 + CLIP_FRAMES <= NUM_FRAMES[int(label)]  # inside the valid (padded) frames
                assert (y == top + np.arange(28)[:, None]).all() and 0 <= top <= SIZE - 28
                row = x[0, 0]
                flipped = bool(row[0] > row[-1])
                assert (np.abs(np.diff(row.astype(int))) == 1).all() and 0 <= row.min() <= row.max() < SIZE
                assert (d[..., 0] == x).all()  # depth cropped (and flipped) exactly as the RGB
                flips.add(flipped)
                offsets.add(t0)
    assert flips == {True, False} and len(offsets) > 5


def test_batches_are_deterministic_and_independent_of_workers(data):
    train = load_nvgesture(data, ("rgb", "depth")).splits["train"]
    first, again = _all(train, seed=3), _all(train, seed=3)
    with_workers = _all(load_nvgesture(data, ("rgb", "depth"), workers=2).splits["train"], seed=3)
    for a, b, c in zip(first, again, with_workers, strict=True):
        assert torch.equal(a[1], b[1]) and torch.equal(a[1], c[1])
        assert all(torch.equal(u, v) and torch.equal(u, w) for u, v, w in zip(a[0], b[0], c[0], strict=True))
    other = _all(train, seed=4)
    assert any(not torch.equal(a[0][0], b[0][0]) for a, b in zip(first, other, strict=True))


def test_evaluation_takes_the_centre_frames_and_crop_in_order(data):
    test = load_nvgesture(data, ("rgb", "depth")).splits["test"]
    batches = _all(test, batch_size=3)
    labels = torch.cat([y for _, y in batches])
    assert labels.tolist() == list(range(len(NUM_FRAMES)))
    clips = np.concatenate([_decode(x[0]) for x, _ in batches])
    for clip, n in zip(clips, NUM_FRAMES, strict=True):
        assert clip[0, 0, 0].tolist() == [(n - CLIP_FRAMES) // 2, 2, 2]  # centre 64 frames, crop at (2, 2) of 32
        assert clip[0, 0, -1, 2] == 29  # not flipped


def test_identical_modalities_limits_and_bundle(data):
    bundle = load_dataset("nvgesture", str(data), ("depth", "depth"), train_limit=3, eval_limit=2)
    assert bundle.in_channels == (1, 1) and bundle.num_classes == 25 and bundle.eval_batch_size < 500
    assert [len(bundle.splits[s]) for s in ("train", "val", "test")] == [3, 2, 2]
    (a, b), _ = next(bundle.splits["train"].batches(2, generator=torch.Generator().manual_seed(0)))
    assert torch.equal(a, b) and a.shape == (2, 1, CLIP_FRAMES, 28, 28)
    assert bundle.provenance["recipe_hash"] == "test"
    with pytest.raises(ValueError, match="unknown NVGesture modality 'flow'"):
        load_nvgesture(data, ("rgb", "flow"))
    with pytest.raises(FileNotFoundError, match="repro prep nvgesture"):
        load_nvgesture(data.with_name("missing.h5"), ("rgb", "depth"))
