"""Shared pytest fixtures: tiny synthetic data in the real on-disk formats, CPU only, no network."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from data_prep.mnist_source import IDX_FILES, write_idx

#: Sizes of the tiny synthetic MNIST below, and a CMNIST split of it (train + val = TINY_MNIST_TRAIN).
TINY_MNIST_TRAIN = 120
TINY_MNIST_TEST = 40
TINY_SPLIT_SIZES = {"train": 80, "val": 40, "test": 40}


def make_tiny_mnist(n_train: int = TINY_MNIST_TRAIN, n_test: int = TINY_MNIST_TEST, seed: int = 0) -> dict:
    """Synthetic MNIST-like uint8 arrays: black background, one bright anti-aliased box outline per image,
    labels 0..9 balanced and shuffled. Keys as :data:`data_prep.mnist_source.IDX_FILES`."""
    rng = np.random.default_rng(seed)

    def images(n):
        out = np.zeros((n, 28, 28), dtype=np.uint8)
        for img in out:
            r0, c0 = rng.integers(3, 10, size=2)
            r1, c1 = rng.integers(18, 25, size=2)
            img[r0:r1, [c0, c1]] = rng.integers(128, 256, size=(r1 - r0, 2))
            img[[r0, r1], c0 : c1 + 1] = 255
            img[r0 + 1 : r1, c0 + 1] = 40  # a dim anti-aliasing edge
        return out

    def labels(n):
        return rng.permutation(np.arange(n) % 10).astype(np.uint8)

    return {
        "train_images": images(n_train),
        "train_labels": labels(n_train),
        "test_images": images(n_test),
        "test_labels": labels(n_test),
    }


@pytest.fixture
def tiny_mnist() -> dict:
    """The arrays :func:`tiny_mnist_dir` writes."""
    return make_tiny_mnist()


@pytest.fixture
def tiny_mnist_dir(tmp_path, tiny_mnist) -> Path:
    """A directory with the four MNIST IDX files (uncompressed, real format) of :func:`make_tiny_mnist`."""
    d = tmp_path / "mnist"
    d.mkdir()
    for field, stem in IDX_FILES.items():
        write_idx(d / stem, tiny_mnist[field])
    return d


@pytest.fixture
def tiny_cmnist_h5(tmp_path, tiny_mnist_dir) -> Path:
    """A Colored-and-gray MNIST file written by the real prep stage from :func:`tiny_mnist_dir`
    (split sizes :data:`TINY_SPLIT_SIZES`, default variance, seed 0, checksum not verified)."""
    from data_prep.cmnist import prepare_cmnist

    return prepare_cmnist(
        tmp_path / "cmnist.h5",
        mnist_dir=tiny_mnist_dir,
        verify=False,
        split_sizes=TINY_SPLIT_SIZES,
        progress=False,
        log=lambda msg: None,
    )


@pytest.fixture(scope="session")
def tiny_cmnist(tmp_path_factory) -> Path:
    """A small file in the CMNIST layout whose classes a few epochs learn (see engine_fixtures)."""
    from engine_fixtures import write_tiny_cmnist

    return write_tiny_cmnist(tmp_path_factory.mktemp("data") / "cmnist.h5")


RECORD_SCHEMA = Path(__file__).resolve().parent.parent / "docs" / "record.schema.json"


def produced_records(root: Path) -> list[Path]:
    """The ``record.json`` files the package wrote under ``root``: those beside the engine's checkpoint or a sweep
    run's log (tests also write damaged records by hand, to check that the reports and the launchers skip them)."""
    return sorted(
        p
        for p in root.rglob("record.json")
        if (p.parent / "checkpoint.pt").exists() or (p.parent / "train.log").exists()
    )


@pytest.fixture(scope="session", autouse=True)
def records_match_their_schema(tmp_path_factory):
    """After the session: every record the tests produced matches ``docs/record.schema.json`` (the record's shape,
    written down once); a mismatch is an error of the session, naming the file and the key."""
    yield
    import json

    import jsonschema

    validator = jsonschema.Draft202012Validator(json.loads(RECORD_SCHEMA.read_text()))
    problems = []
    for path in produced_records(tmp_path_factory.getbasetemp()):
        for error in validator.iter_errors(json.loads(path.read_text())):
            problems.append(f"{path}: {'/'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}")
    assert not problems, "records that do not match docs/record.schema.json:\n" + "\n".join(problems[:20])
