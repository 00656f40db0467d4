"""NVGesture (Molchanov et al., CVPR 2016) as Wu et al. (ICML 2022, §5.1, A.4) use it: RGB and depth clips.

Input, as NVIDIA distributes it (``--raw DIR``): the split lists ``nvgesture_{train,test}_correct_cvpr2016_v2.lst``
and ``Video_data/class_XX/subjectN_rM/{sk_color,sk_depth}.avi``. One list line per sample::

    path:./Video_data/class_01/subject3_r0 depth:sk_depth:146:226 color:sk_color:146:226 duo_left:... label:1

``START:END`` is the gesture's frame window (80 frames, END exclusive); labels are 1-25 in the lists, 0-24 here.
Where the color and depth windows differ (four training lines, by one frame) the color window is used for both
modalities, as the paper does (A.4). Frames are resized to 256x256 (A.4) as NVIDIA's reader ``readdata.py`` does
("as Joze et al. (2020)"): OpenCV's ``cv2.resize``, ``INTER_LINEAR``; colour in RGB order, depth the reader's channel
(data_prep.video). A clip shorter than 64 frames is zero-padded on both sides to 64 (A.4). 20% of the training list,
stratified by class, is held out as validation (§5.1) with a fixed seed.

Output (``data/nvgesture.h5``): groups ``/train``, ``/val``, ``/test`` with ``rgb`` (N,T,256,256,3) uint8,
``depth`` (N,T,256,256,1) uint8, chunked one sample per chunk, T = the longest padded clip (80); ``num_frames``
(N,) int32, the valid frames at the start of each clip (padding included), zeros after them; ``label`` (N,) int64
(0-based); ``window`` (N,2) int32, the listed color window; ``list_line`` (N,) int32, the line in its list;
``path`` (N,) the sample's folder; ``frames_read`` (N,) int32, the window's frames found in the videos (fewer
than 80 only where a video ends inside its window; the clip is then cut there and padded as a short one);
``sample_sha256`` (N,) of each sample's rgb+depth bytes. Every chunk of the numeric arrays carries its Fletcher-32
checksum (a damaged chunk fails to read). Root attributes as every stage (``recipe``, ``recipe_hash``,
``arrays_checksum``: sha256 over each split's ``sample_sha256`` then ``label``, recomputed from the clips by ``repro
inspect --verify``, :func:`arrays_checksum`; ``source``, ``created_by``), and ``decoder`` and ``resizer`` (the PyAV
and OpenCV versions). A file of another ``format_version`` (1: libswscale's resize; 2: no chunk checksums) is
prepared again by the next run, which says so.

Resumable: the file is written as ``<out>.partial`` with all its space allocated up front (uncompressed chunks of a
fixed size, checksums included, so a write changes no HDF5 metadata; with the checksum filter HDF5 writes every
chunk at allocation, zeros: about a second a GB) and a per-sample ``done`` flag set after the sample's data is
flushed. A killed run started again with the same command continues from the first sample not done; only a complete
file is renamed to ``<out>``.
"""

from __future__ import annotations

import hashlib
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import h5py
import numpy as np
from tqdm import tqdm

from data_prep.common import (
    CHUNK_CHECKSUM,
    CHUNK_CHECKSUM_RECIPE,
    FORMAT_VERSIONS,
    PrepError,
    canonical_json,
    created_by,
    is_up_to_date,
    recipe_hash,
    stale_reason,
)
from data_prep.video import RESIZE, read_window

LIST_FILES = {"train": "nvgesture_train_correct_cvpr2016_v2.lst", "test": "nvgesture_test_correct_cvpr2016_v2.lst"}
SPLITS = ("train", "val", "test")
NUM_CLASSES = 25
MIN_FRAMES = 64  # clips shorter than this are zero-padded on both sides (A.4)
FRAME_SIZE = 256  # frames resized to FRAME_SIZE x FRAME_SIZE (A.4)
VAL_FRACTION = 0.2  # of the training list, per class (§5.1)
DEFAULT_SEED = 0
DEFAULT_OUT = Path("data/nvgesture.h5")
#: 3: Fletcher-32 chunk checksums; 2: frames resized by OpenCV (INTER_LINEAR, as NVIDIA's reader), depth = the
#: reader's channel (blue); 1: libswscale bilinear resize (up to 17 grey levels from the reader's frames). A file of
#: another version is prepared again (data_prep.common.FORMAT_HISTORY).
FORMAT_VERSION = FORMAT_VERSIONS["nvgesture"]
MODALITIES = {"rgb": ("sk_color.avi", 3), "depth": ("sk_depth.avi", 1)}

_WINDOW = re.compile(r"^(\w+):(\d+):(\d+)$")
_LINE_FORMAT = "path:./Video_data/class_XX/subjectN_rM depth:sk_depth:START:END color:sk_color:START:END ... label:N"


@dataclass(frozen=True)
class Sample:
    """One list line: the sample's folder relative to --raw, the color window [start, end), the 0-based label."""

    path: str
    start: int
    end: int
    label: int
    list_line: int


def parse_line(text: str, where: str) -> Sample:
    """One list line (``where`` = ``"<list>:<line number>"`` for the error message)."""
    fields: dict[str, str] = {}
    for token in text.split():
        key, sep, value = token.partition(":")
        if not sep or not value:
            raise PrepError(f"{where}: malformed token {token!r}; expected {_LINE_FORMAT!r}")
        fields[key] = value
    missing = [k for k in ("path", "color", "depth", "label") if k not in fields]
    if missing:
        raise PrepError(f"{where}: no {', '.join(missing)} field; expected {_LINE_FORMAT!r}")
    path = fields["path"].removeprefix("./")
    if not path.startswith("Video_data/") or ".." in path.split("/"):
        raise PrepError(f"{where}: path {fields['path']!r} is not under ./Video_data/; expected {_LINE_FORMAT!r}")
    match = _WINDOW.match(fields["color"])
    if not match or int(match[2]) >= int(match[3]):
        raise PrepError(f"{where}: color window {fields['color']!r} is not sk_color:START:END with START < END")
    if not fields["label"].isdigit() or not 1 <= int(fields["label"]) <= NUM_CLASSES:
        raise PrepError(f"{where}: label {fields['label']!r} is not an integer 1-{NUM_CLASSES}")
    line_no = int(where.rsplit(":", 1)[1])
    return Sample(path, int(match[2]), int(match[3]), int(fields["label"]) - 1, line_no)


def read_list(path: Path) -> list[Sample]:
    """The samples of a split list, in list order; blank lines (the final newline) are skipped."""
    if not path.is_file():
        raise PrepError(f"{path}: missing split list; --raw must be the NVGesture folder holding {path.name}")
    try:
        lines = path.read_text(encoding="ascii").split("\n")
    except (UnicodeDecodeError, OSError) as e:
        raise PrepError(f"{path}: cannot read the split list ({e}); download it again") from e
    samples = [parse_line(line, f"{path}:{i}") for i, line in enumerate(lines, start=1) if line.strip()]
    if not samples:
        raise PrepError(f"{path}: the split list is empty; download it again")
    return samples


def split_validation(samples: list[Sample], fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """Hold out ``round(fraction * n_c)`` samples of each class c as validation (§5.1), drawn with
    ``numpy.random.default_rng(seed)`` class by class in label order; both parts keep list order."""
    rng = np.random.default_rng(seed)
    labels = np.array([s.label for s in samples])
    held = np.zeros(len(samples), dtype=bool)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        n_val = int(np.floor(fraction * len(members) + 0.5))
        held[rng.permutation(members)[:n_val]] = True
    pairs = list(zip(samples, held, strict=True))
    return [s for s, h in pairs if not h], [s for s, h in pairs if h]


def pad_frames(n: int, minimum: int = MIN_FRAMES) -> tuple[int, int]:
    """Zero frames (before, after) that pad an n-frame clip to ``minimum`` frames, split evenly (A.4)."""
    total = max(minimum - n, 0)
    return total // 2, total - total // 2


def build_recipe(raw: Path, *, seed: int, size: int) -> tuple[dict, dict[str, list[Sample]]]:
    """The recipe (everything the output depends on except the videos' bytes) and the samples per split."""
    parts = {name: read_list(raw / file) for name, file in LIST_FILES.items()}
    train, val = split_validation(parts["train"], VAL_FRACTION, seed)
    recipe = {
        "dataset": "nvgesture",
        "format_version": FORMAT_VERSION,
        "lists_sha256": {n: hashlib.sha256((raw / f).read_bytes()).hexdigest() for n, f in LIST_FILES.items()},
        "frame_size": int(size),
        "min_frames": MIN_FRAMES,
        "padding": "zeros on both sides, floor half before",
        "window": "color START:END of the list line (END exclusive) for both modalities",
        "decode": "PyAV, sequential from frame 0, yuv to rgb24 at native size",
        "resize": f"{RESIZE} to frame_size x frame_size",
        "depth": "blue channel of the decode of sk_depth.avi (channel 0 of OpenCV's BGR, as NVIDIA's readdata.py)",
        "color": "RGB order (NVIDIA's readdata.py keeps OpenCV's BGR; the I3D weights expect RGB)",
        "val_fraction": VAL_FRACTION,
        "val_rule": "per class round(val_fraction * n), numpy default_rng(seed).permutation per class in label order",
        "seed": int(seed),
        "chunk_checksum": CHUNK_CHECKSUM_RECIPE,
    }
    return recipe, {"train": train, "val": val, "test": parts["test"]}


def sample_digest(clips: dict[str, np.ndarray]) -> bytes:
    """A sample's ``sample_sha256``: sha256 (hex, ASCII) over its clips' bytes in :data:`MODALITIES` order."""
    digest = hashlib.sha256()
    for modality in MODALITIES:
        digest.update(np.ascontiguousarray(clips[modality]).tobytes())
    return digest.hexdigest().encode()


def _arrays_checksum(f: h5py.File, digests: dict[str, np.ndarray]) -> str:
    """sha256 over each split's sample digests then its labels, splits in :data:`SPLITS` order."""
    hasher = hashlib.sha256()
    for name in SPLITS:
        hasher.update(b"".join(digests[name]))
        hasher.update(np.ascontiguousarray(f[name]["label"][:]).tobytes())
    return hasher.hexdigest()


def arrays_checksum(f: h5py.File) -> str:
    """The ``arrays_checksum`` of an open file, recomputed from its clips (each sample's digest from its rgb and depth
    arrays, not the stored ``sample_sha256``), so it equals the stored one only when every clip and label is as the
    stage wrote it; reads every chunk, so each chunk's Fletcher-32 checksum is checked too."""
    digests = {
        name: [sample_digest({m: f[name][m][i] for m in MODALITIES}) for i in range(len(f[name]["label"]))]
        for name in SPLITS
    }
    return _arrays_checksum(f, digests)


def _check_videos(raw: Path, splits: dict[str, list[Sample]]) -> None:
    missing = [
        (s, f)
        for part in splits.values()
        for s in part
        for f, _ in MODALITIES.values()
        if not (raw / s.path / f).is_file()
    ]
    if missing:
        s, f = missing[0]
        split_of = "test" if any(s is t for t in splits["test"]) else "train"
        raise PrepError(
            f"{raw / s.path / f}: missing video (line {s.list_line} of {LIST_FILES[split_of]}; "
            f"{len(missing)} of the listed videos are missing); put the complete NVGesture "
            f"Video_data/ under --raw"
        )


def _checked(group: h5py.Group, name: str, data=None, *, shape=None, chunks=True) -> None:
    """A dataset whose chunks carry Fletcher-32 checksums, all of them allocated (and written) now: they are not
    compressed, so a later write rewrites a chunk in place and never touches HDF5 metadata."""
    layout = {"shape": shape, "dtype": np.uint8} if data is None else {"data": data}
    if not (shape or np.shape(data))[0]:  # no sample: nothing to chunk
        group.create_dataset(name, **layout)
        return
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    group.create_dataset(name, chunks=chunks, dcpl=dcpl, **layout, **CHUNK_CHECKSUM)


def _create(partial: Path, recipe: dict, splits: dict[str, list[Sample]], frames: int, size: int) -> None:
    """Allocate the whole file: raw data writes then never touch HDF5 metadata."""
    with h5py.File(partial, "w") as f:
        for name in SPLITS:
            samples, group = splits[name], f.create_group(name)
            n = len(samples)
            for modality, (_, channels) in MODALITIES.items():
                shape = (n, frames, size, size, channels)
                _checked(group, modality, shape=shape, chunks=(1,) + shape[1:])
            _checked(group, "label", np.array([s.label for s in samples], dtype=np.int64))
            _checked(group, "window", np.array([(s.start, s.end) for s in samples], dtype=np.int32).reshape(n, 2))
            _checked(group, "list_line", np.array([s.list_line for s in samples], dtype=np.int32))
            group["path"] = np.array([s.path for s in samples], dtype=h5py.string_dtype())
            _checked(group, "num_frames", np.zeros(n, dtype=np.int32))
            _checked(group, "frames_read", np.zeros(n, dtype=np.int32))
            _checked(group, "sample_sha256", np.zeros(n, dtype="S64"))
            group["done"] = np.zeros(n, dtype=bool)
        # Last: a file killed while being created has no recipe_hash, so the next run starts over.
        f.attrs.update({"recipe": canonical_json(recipe), "recipe_hash": recipe_hash(recipe)})


def _open_partial(partial: Path, rhash: str, log: Callable[[str], None]) -> h5py.File | None:
    """The partial file of an interrupted run of this recipe, opened for writing; None when there is none."""
    if not partial.exists():
        return None
    try:
        f = h5py.File(partial, "r+")
    except BlockingIOError as e:  # HDF5's file lock: another process has it open
        raise PrepError(f"{partial}: another `repro prep nvgesture` is writing it; wait for it or stop it") from e
    except OSError as e:
        log(f"{partial}: unreadable leftover of an interrupted run ({e}); starting over")
        partial.unlink()
        return None
    if f.attrs.get("recipe_hash") != rhash:
        f.close()
        log(f"{partial}: leftover of a run with another recipe; starting over")
        partial.unlink()
        return None
    return f


def load_sample(raw: Path, sample: Sample, frames: int, size: int) -> tuple[dict[str, np.ndarray], int, int]:
    """One sample's clips, (frames, size, size, C) uint8 each: the window's frames, zero-padded to MIN_FRAMES
    on both sides when shorter, then zeros up to ``frames``. Also the valid frame count (padding included) and
    the frames read (fewer than the window's only where a video ends inside it)."""
    clips = {}
    for modality, (file, channels) in MODALITIES.items():
        clips[modality], _ = read_window(raw / sample.path / file, sample.start, sample.end, size, channels)
    n = min(len(c) for c in clips.values())  # both modalities cut to the shorter video's frames
    before, after = pad_frames(n)
    out = {}
    for modality, clip in clips.items():
        full = np.zeros((frames, size, size, clip.shape[-1]), dtype=np.uint8)
        full[before : before + n] = clip[:n]
        out[modality] = full
    return out, before + n + after, n


def prepare_nvgesture(
    raw: str | Path,
    out: str | Path = DEFAULT_OUT,
    *,
    seed: int = DEFAULT_SEED,
    size: int = FRAME_SIZE,
    force: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = lambda m: print(m, file=sys.stderr),
) -> Path:
    """Build ``out`` from the NVGesture folder ``raw``; a no-op when ``out`` has this recipe (unless ``force``);
    resumes an interrupted build. ``size`` other than 256 exists for tests (small clips on a CPU)."""
    raw, out = Path(raw), Path(out)
    recipe, splits = build_recipe(raw, seed=seed, size=size)
    rhash = recipe_hash(recipe)
    if not force and is_up_to_date(out, recipe):
        log(f"{out}: up to date (recipe_hash {rhash[:12]}), nothing to do; pass --force to rebuild")
        return out
    stale = None if force else stale_reason(out, recipe)
    if stale:
        log(stale)
    _check_videos(raw, splits)
    frames = max(max(s.end - s.start, MIN_FRAMES) for part in splits.values() for s in part)
    partial = out.with_name(out.name + ".partial")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PrepError(f"{out}: cannot create directory {out.parent} ({e.strerror}); choose another --out") from e
    f = None if force else _open_partial(partial, rhash, log)
    if f is None:
        try:
            _create(partial, recipe, splits, frames, size)
        except BlockingIOError as e:  # --force while another process writes the partial file
            raise PrepError(f"{partial}: another `repro prep nvgesture` is writing it; wait for it or stop it") from e
        except OSError as e:
            partial.unlink(missing_ok=True)
            raise PrepError(
                f"{partial}: cannot write ({e}); check free space and permissions or choose another --out"
            ) from e
        f = h5py.File(partial, "r+")
    t0 = time.perf_counter()
    total = sum(len(p) for p in splits.values())
    with f:
        done_before = sum(int(f[name]["done"][:].sum()) if "done" in f[name] else len(splits[name]) for name in SPLITS)
        if done_before:
            log(f"{partial}: resuming, {done_before} of {total} samples already extracted")
        bar = tqdm(total=total, initial=done_before, desc=f"extract {out.name}", unit="clip", disable=not progress)
        for name in SPLITS:
            group = f[name]
            # no "done": a run killed after its last sample, between finishing the file and renaming it
            done = group["done"][:] if "done" in group else np.ones(len(splits[name]), dtype=bool)
            for i, sample in enumerate(splits[name]):
                if done[i]:
                    continue
                clips, n_frames, n_read = load_sample(raw, sample, frames, size)
                for modality in MODALITIES:
                    group[modality][i] = clips[modality]
                group["num_frames"][i] = n_frames
                group["frames_read"][i] = n_read
                group["sample_sha256"][i] = sample_digest(clips)
                f.flush()  # the sample's bytes are in the file before it is marked done
                group["done"][i] = True
                f.flush()
                bar.update()
        bar.close()
        lacking = []
        for name in SPLITS:
            short = f[name]["window"][:, 1] - f[name]["window"][:, 0] - f[name]["frames_read"][:]
            lacking += [f"{p.decode()} ({k} frames)" for p, k in zip(f[name]["path"][:], short, strict=True) if k > 0]
            if "done" in f[name]:
                del f[name]["done"]
        checksum = _arrays_checksum(f, {name: f[name]["sample_sha256"][:] for name in SPLITS})
        f.attrs.update(
            {
                "dataset": "nvgesture",
                "format_version": FORMAT_VERSION,
                "seed": int(seed),
                "source": str(raw.resolve()),
                "arrays_checksum": checksum,
                "decoder": f"PyAV {av.__version__}",
                "resizer": f"OpenCV {cv2.__version__}",
                "created_by": created_by(__name__),
            }
        )
    partial.replace(out)
    counts = "/".join(str(len(splits[n])) for n in SPLITS)
    log(
        f"{out}: wrote train/val/test = {counts} clips of {frames} frames at {size}x{size} "
        f"(recipe_hash {rhash[:12]}) in {time.perf_counter() - t0:.1f} s"
    )
    if lacking:
        log(f"{out}: {len(lacking)} videos end inside their listed window, clips cut there: " + ", ".join(lacking))
    return out
