"""NVGesture clips streamed from ``data/nvgesture.h5`` (written by ``repro prep nvgesture``; layout in
data_prep.nvgesture), with the paper's sampling (A.4).

Training: 64 consecutive frames at a random offset, one random 224x224 crop at the same place for every frame
and both modalities, a random horizontal flip. Evaluation: the centre 64 frames and the centre crop. Crops are
7/8 of the stored frame side (224 of 256). Inputs reach the model as (B, C, T, H, W) float in [-1, 1], the range
of the I3D weights (Carreira & Zisserman 2017).

Modalities: ``rgb`` (3 channels) and ``depth`` (1); m0, m1 may be equal (``rgb,rgb``, ``depth,depth``: §5.2's
identical-modality study) or one alone.

The split is too big for memory (~32 GB at 256x256), so a torch DataLoader reads it: one h5py handle per worker
process, pinned memory when the device is CUDA, four batches prefetched per worker. Every random choice of an epoch
(order, offsets, crops, flips) is drawn up front in the main process from the caller's generator, so batches do not
depend on the worker count.

Where each step happens (the workers' CPU time is what limits a GPU's supply). The frame window and the crop are
taken in the worker: the crop's copy costs about what it saves in collating a quarter fewer bytes, and a quarter fewer
bytes are pinned and sent. The flip and the float conversion (4x the bytes) run on the device after the transfer, one
cheap kernel each; a flip in the worker's copy (negative strides) is slower. The timings: docs/nvgesture.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ..registry import DATASETS
from .hdf5 import DatasetBundle, check_prepared, damaged, open_prepared, provenance, read

SPEC = DATASETS["nvgesture"]
CLIP_FRAMES = 64  # A.4
CROP_FRACTION = 224 / 256  # A.4: 256x256 frames cropped to 224x224
#: Random horizontal flip in training (this package's choice; A.4 names none). Note: NVGesture has mirror-image
#: classes (move hand left / right); a flip maps one onto the other's motion with the label unchanged.
TRAIN_FLIP = True
#: Evaluation batch size: 2 x 64 x 224 x 224 inputs are ~40 MB a clip in float32.
EVAL_BATCH_SIZE = 16


class _Clips(Dataset):
    """Items are ``(index, offset, top, left, flip)`` tuples; each yields uint8 (T, H, W, C) arrays per stored
    modality (cropped, not flipped), the label and the flip. The HDF5 file is opened lazily, so each worker process
    gets its own handle. A clip that cannot be read (a chunk failing its checksum, the file replaced by a damaged one)
    raises :class:`~repro.data.hdf5.PreparedFileError` naming the file, the clip and the rebuild command; torch
    re-raises it in the main process, where it keeps that one line."""

    def __init__(self, path: Path, split: str, stored: tuple[str, ...], crop: int):
        self.path, self.split, self.stored, self.crop = path, split, stored, crop
        self._file: h5py.File | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_file": None}

    def __getitem__(self, item: tuple[int, int, int, int, bool]) -> tuple[tuple[Tensor, ...], int, bool]:
        index, t0, top, left, flip = item
        where = f"/{self.split} sample {index}"
        try:
            if self._file is None:
                self._file = h5py.File(self.path, "r")
            group = self._file[self.split]
            clips = []
            for m in self.stored:
                where = f"/{self.split}/{m}[{index}]"
                # whole frames (one contiguous read of the sample's chunk), then the crop: a cropped HDF5 selection
                # reads row by row and costs ~4x the CPU time
                frames = group[m][index, t0 : t0 + CLIP_FRAMES]
                clips.append(
                    torch.from_numpy(np.ascontiguousarray(frames[:, top : top + self.crop, left : left + self.crop]))
                )
            where = f"/{self.split}/label[{index}]"
            label = int(group["label"][index])
        except (OSError, KeyError) as exc:
            raise damaged(self.path, SPEC, exc, where) from None
        return tuple(clips), label, flip


class StreamedClipSplit:
    """One split of the NVGesture file, duck-typed like :class:`repro.data.memory.InMemorySplit`."""

    def __init__(
        self,
        path: str | Path,
        split: str,
        modalities: tuple[str, ...],
        limit: int = 0,
        workers: int = 0,
        device: torch.device | None = None,
    ):
        self.path, self.split, self.modalities = Path(path), split, modalities
        self.workers, self.device = workers, device or torch.device("cpu")
        with open_prepared(self.path, SPEC) as f:
            group = f[split]
            n = group["label"].shape[0] if limit <= 0 else min(limit, group["label"].shape[0])
            self.num_frames = np.asarray(read(group["num_frames"], slice(n)), dtype=np.int64)
            self.size = group["rgb"].shape[2]
        self.rows = np.arange(n)  # the file's row of each sample (all of them, or a subset's)
        self.crop = round(self.size * CROP_FRACTION)
        self.stored = tuple(dict.fromkeys(modalities))  # each stored modality read once, even for rgb,rgb

    def __len__(self) -> int:
        return len(self.num_frames)

    def to(self, device: torch.device) -> StreamedClipSplit:
        moved = StreamedClipSplit.__new__(StreamedClipSplit)
        moved.__dict__.update(self.__dict__, device=torch.device(device))
        return moved

    def subset(self, indices: Tensor) -> StreamedClipSplit:
        """The samples at ``indices`` (1-D int64), in that order."""
        idx = indices.cpu().numpy()
        part = StreamedClipSplit.__new__(StreamedClipSplit)
        part.__dict__.update(self.__dict__, num_frames=self.num_frames[idx], rows=self.rows[idx])
        return part

    def items(self, generator: torch.Generator | None) -> list[tuple[int, int, int, int, bool]]:
        """Each sample's (index, frame offset, crop top, crop left, flip), in batch order: random (training) when
        a generator is given, else centred and unflipped. Draw order: permutation, offsets, tops, lefts, flips."""
        n, span = len(self), self.size - self.crop
        room = np.maximum(self.num_frames - CLIP_FRAMES, 0)
        if generator is None:
            order, t0 = np.arange(n), room // 2
            top = left = np.full(n, span // 2)
            flip = np.zeros(n, dtype=bool)
        else:
            order = torch.randperm(n, generator=generator).numpy()
            u = torch.rand(n, generator=generator, dtype=torch.float64).numpy()
            t0 = np.floor(u * (room + 1)).astype(np.int64)
            top = torch.randint(0, span + 1, (n,), generator=generator).numpy()
            left = torch.randint(0, span + 1, (n,), generator=generator).numpy()
            flip = (torch.rand(n, generator=generator) < 0.5).numpy() & TRAIN_FLIP
        rows = self.rows
        return [(int(rows[i]), int(t0[i]), int(top[i]), int(left[i]), bool(flip[i])) for i in order]

    def loader(self, batch_size: int, generator: torch.Generator | None = None) -> DataLoader:
        """The DataLoader behind :meth:`batches`: uint8 (B, T, H, W, C) clips per stored modality (unflipped),
        labels, flips (B,) bool."""
        return DataLoader(
            _Clips(self.path, self.split, self.stored, self.crop),
            batch_size=batch_size,
            sampler=self.items(generator),
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
            prefetch_factor=4 if self.workers else None,
        )

    def batches(
        self, batch_size: int, *, generator: torch.Generator | None = None
    ) -> Iterator[tuple[tuple[Tensor, ...], Tensor]]:
        """Batches of (inputs per modality as (B, C, T, H, W) float in [-1, 1] on the device, labels)."""
        for clips, labels, flips in self.loader(batch_size, generator):
            flips = flips.to(self.device, non_blocking=True) if flips.any() else None
            by_name = {m: _to_input(c, flips, self.device) for m, c in zip(self.stored, clips, strict=True)}
            yield tuple(by_name[m] for m in self.modalities), labels.to(self.device, non_blocking=True)


def _to_input(clip: Tensor, flips: Tensor | None, device: torch.device) -> Tensor:
    """uint8 (B, T, H, W, C) -> float (B, C, T, H, W) in [-1, 1], flipped where ``flips`` (B,) says, both on the
    device (4x fewer bytes moved than float, and no host copy for the flip)."""
    x = clip.to(device, non_blocking=True)
    if flips is not None:
        x = torch.where(flips.view(-1, 1, 1, 1, 1), x.flip(3), x)
    x = x.permute(0, 4, 1, 2, 3).float()
    return x.div_(127.5).sub_(1.0).contiguous()


def load(
    path: str | Path, modalities: tuple[str, ...], train_limit: int = 0, eval_limit: int = 0, workers: int = 0
) -> DatasetBundle:
    """The three splits, streamed from the file by ``workers`` loader processes. A damaged file (or one of another
    format version) raises :class:`~repro.data.hdf5.PreparedFileError`, one line naming the file and its rebuild
    command: here for what is read now (attributes, frame counts), while training for a clip that fails to read."""
    path = check_prepared(path, modalities, SPEC)
    limits = {"train": train_limit, "val": eval_limit, "test": eval_limit}
    splits = {s: StreamedClipSplit(path, s, modalities, limits[s], workers) for s in ("train", "val", "test")}
    channels = tuple(SPEC.modalities[m] for m in modalities)
    with open_prepared(path, SPEC) as f:
        identity = provenance(f)
    return DatasetBundle(splits, channels, SPEC.num_classes, identity, eval_batch_size=EVAL_BATCH_SIZE)
