"""Damaged prepared files, with real files and real processes: a truncated, a bit-flipped and a missing CMNIST file
each make `repro train` and `repro inspect --verify` fail with one line naming the file and the command that
rebuilds it (no traceback, no `done`); the Fletcher-32 checksum of each chunk is what catches the flip (the same
flip in a chunk written without it decompresses silently); a file of the previous format version is refused by the
reader and prepared again by the stage; a clip that fails its checksum in a DataLoader worker mid-training still
ends in one line naming the file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from data_prep import cmnist as cmnist_stage
from data_prep import modelnet40 as modelnet40_stage
from data_prep.common import FORMAT_VERSIONS, PREP_COMMANDS, PrepError, canonical_json, recipe_hash
from data_prep.inspect import verify
from repro.cli import main
from repro.data.cmnist import load as load_cmnist
from repro.data.hdf5 import DataRequestError, PreparedFileError
from repro.registry import DATASETS
from repro.rundir import DONE_NAME

from conftest import TINY_SPLIT_SIZES

REPRO = Path(sys.executable).parent / "repro"
ROOT = Path(__file__).resolve().parents[1]
DAMAGE = ("truncated", "flipped", "missing")
#: What each message says is wrong.
PROBLEM = {"truncated": "truncated: ", "flipped": "fails its checksum", "missing": "no "}


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(REPRO), *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def _flip(path: Path, dataset: str = "train/mono", chunk: int = 0, seed: int = 0, offset: int | None = None) -> None:
    """8 random bytes over one chunk's stored (compressed) data, ``offset`` bytes into it (default: its middle), as a
    disk or a copy may do."""
    with h5py.File(path, "r") as f:
        info = f[dataset].id.get_chunk_info(chunk)
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset + (info.size // 2 if offset is None else offset))
        fh.write(np.random.default_rng(seed).integers(0, 256, 8, dtype=np.uint8).tobytes())


@pytest.fixture(params=DAMAGE)
def damaged(request, tiny_cmnist_h5, tmp_path) -> tuple[str, Path]:
    """A damaged copy of a CMNIST file the real stage wrote, named cmnist.h5 (in its own folder)."""
    kind, path = request.param, tmp_path / request.param / "cmnist.h5"
    path.parent.mkdir()
    if kind != "missing":
        shutil.copy(tiny_cmnist_h5, path)
    if kind == "truncated":
        os.truncate(path, path.stat().st_size // 2)
    elif kind == "flipped":
        _flip(path)
    return kind, path


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_the_stages_tables_agree_with_the_registry():
    """data_prep does not import repro: its rebuild commands and format versions are held equal here."""
    assert PREP_COMMANDS == {name: spec.prep_command for name, spec in DATASETS.items()}
    assert FORMAT_VERSIONS == {"cmnist": 2, "modelnet40": 2, "nvgesture": 3}
    assert cmnist_stage.FORMAT_VERSION == 2 and modelnet40_stage.FORMAT_VERSION == 2


def test_repro_train_fails_in_one_line_and_writes_no_done(damaged, tmp_path):
    kind, path = damaged
    run = tmp_path / "run"
    proc = _run("train", "--dataset", "cmnist", "--data", str(path), "--out", str(run), "--max-epochs", "1",
                "--device", "cpu", "--threads", "1")  # fmt: skip
    line = _one_line(proc.stderr)
    assert proc.returncode == 1 and line.startswith(f"Error: {path}: ") and PROBLEM[kind] in line, line
    rebuild = f"`repro prep cmnist --out {path}" + ("`" if kind == "missing" else " --force`")
    assert rebuild in line
    assert not (run / DONE_NAME).exists() and not (run / "record.json").exists()  # the data is read first


def test_repro_inspect_verify_fails_in_one_line(damaged):
    kind, path = damaged
    proc = _run("inspect", str(path), "--verify")
    line = _one_line(proc.stderr)
    assert proc.returncode == 1 and line.startswith(f"Error: {path}: ") and PROBLEM[kind] in line, line
    assert f"`repro prep cmnist --out {path}" in line  # named from the file name when its attributes are unreadable
    if kind == "flipped":
        assert line == (
            f"Error: {path}: damaged (chunk /train/mono[0:80] fails its checksum); rebuild it with "
            f"`repro prep cmnist --out {path} --force`"
        )


def test_an_intact_file_verifies(tiny_cmnist_h5):
    proc = _run("inspect", str(tiny_cmnist_h5), "--verify")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{tiny_cmnist_h5}: ok (15 chunks read; arrays_checksum matches)\n"  # 5 arrays x 3 splits


def _without_checksums(src: Path, dst: Path) -> None:
    """``src`` rewritten with the previous format's settings: the same chunks and LZF, no Fletcher-32."""
    with h5py.File(src, "r") as f, h5py.File(dst, "w") as g:
        g.attrs.update(dict(f.attrs))
        for split in f:
            for name, d in f[split].items():
                g.create_dataset(f"{split}/{name}", data=d[()], chunks=d.chunks, compression="lzf")


def _stored_chunk(path: Path, dataset: str) -> bytes:
    with h5py.File(path, "r") as f:
        return f[dataset].id.read_direct_chunk((0,) * f[dataset].ndim)[1]


def test_without_fletcher32_the_same_flip_goes_unnoticed(tiny_cmnist_h5, tmp_path):
    """Random bytes over an LZF chunk often decompress without error: the old files handed out wrong images. The
    same bytes at the same place of the same compressed chunk fail to read once the chunk carries its checksum."""
    old = tmp_path / "old.h5"
    _without_checksums(tiny_cmnist_h5, old)
    # the chunks are byte for byte the same compressed data; the new one ends with its 4 checksum bytes
    assert _stored_chunk(tiny_cmnist_h5, "train/mono")[:-4] == _stored_chunk(old, "train/mono")
    with h5py.File(tiny_cmnist_h5, "r") as f:
        intact = f["train/mono"][()]
    size, silent = len(_stored_chunk(old, "train/mono")), 0
    for seed in range(20):
        offset = int(size * (0.2 + 0.03 * seed))  # the same bytes of the same compressed data in both files
        old_copy, new_copy = tmp_path / f"old-{seed}.h5", tmp_path / f"new-{seed}.h5"
        shutil.copy(old, old_copy)
        shutil.copy(tiny_cmnist_h5, new_copy)
        _flip(old_copy, seed=seed, offset=offset)
        _flip(new_copy, seed=seed, offset=offset)
        try:
            with h5py.File(old_copy, "r") as f:
                garbled = f["train/mono"][()]
        except OSError:
            continue  # LZF itself noticed this one
        assert not np.array_equal(garbled, intact)  # wrong images, no error
        silent += 1
        with h5py.File(new_copy, "r") as f, pytest.raises(OSError, match="filter returned failure"):
            f["train/mono"][()]
        with pytest.raises(PreparedFileError, match=r"a chunk fails its checksum in /train/mono\); rebuild"):
            load_cmnist(new_copy, ("mono", "gray"))
    assert silent >= 5  # most flips went unnoticed before


def test_arrays_changed_behind_the_checksums_fail_verify(tiny_cmnist_h5):
    """A label rewritten through HDF5 (its chunk checksum recomputed) is caught by the recomputed arrays_checksum."""
    with h5py.File(tiny_cmnist_h5, "r+") as f:
        f["val/label"][0] = (f["val/label"][0] + 1) % 10
    with pytest.raises(PrepError, match=r"damaged \(its arrays differ from those the stage wrote: arrays_checksum"):
        verify(tiny_cmnist_h5)


def _make_version_1(path: Path) -> dict:
    """Turn a file the stage wrote into one of format version 1, as the stage wrote it before (recipe included)."""
    with h5py.File(path, "r+") as f:
        recipe = json.loads(f.attrs["recipe"])
        old = {k: v for k, v in recipe.items() if k != "chunk_checksum"} | {"format_version": 1}
        f.attrs.update({"format_version": 1, "recipe": canonical_json(old), "recipe_hash": recipe_hash(old)})
    return recipe


def test_a_file_of_the_previous_format_is_refused_then_prepared_again(tiny_cmnist_h5, tiny_mnist_dir):
    path = tiny_cmnist_h5
    recipe = _make_version_1(path)
    expected = (
        f"{path}: prepared Colored-and-gray MNIST of format version 1 (no chunk checksums); this package reads "
        f"format version 2 (Fletcher-32 chunk checksums): prepare it again with `repro prep cmnist --out {path}`"
    )
    with pytest.raises(PreparedFileError) as refused:
        load_cmnist(path, ("mono", "gray"))
    assert str(refused.value) == expected and isinstance(refused.value, DataRequestError)
    result = CliRunner().invoke(main, ["inspect", str(path), "--verify"])
    assert result.exit_code == 1 and "format version 1 (no chunk checksums); this package reads" in result.output

    messages = []
    cmnist_stage.prepare_cmnist(path, mnist_dir=tiny_mnist_dir, verify=False, split_sizes=TINY_SPLIT_SIZES,
                                progress=False, log=messages.append)  # fmt: skip
    assert messages[0] == (
        f"{path}: format version 1 (no chunk checksums); this stage writes format version 2 "
        "(Fletcher-32 chunk checksums): preparing it again"
    )
    with h5py.File(path, "r") as f:
        assert f.attrs["format_version"] == 2 and f.attrs["recipe_hash"] == recipe_hash(recipe)
    assert len(load_cmnist(path, ("mono", "gray")).splits["train"]) == TINY_SPLIT_SIZES["train"]


@pytest.mark.parametrize("missing, name", [("val/gray", "gray"), ("test", "test")])
def test_a_missing_dataset_or_split_is_one_line(tiny_cmnist_h5, missing, name):
    with h5py.File(tiny_cmnist_h5, "r+") as f:
        del f[missing]
    with pytest.raises(PreparedFileError) as raised:
        load_cmnist(tiny_cmnist_h5, ("mono", "gray"))
    assert str(raised.value) == (
        f"{tiny_cmnist_h5}: damaged prepared Colored-and-gray MNIST (no {name!r} in it); rebuild it with "
        f"`repro prep cmnist --out {tiny_cmnist_h5} --force`"
    )
    with pytest.raises(PrepError) as raised:  # a split: missing; a dataset: its bytes missing from the checksum
        verify(tiny_cmnist_h5)
    assert ("its arrays differ from those the stage wrote" if "/" in missing else f"(no {name!r} in it)") in str(
        raised.value
    )


def test_bench_data_fails_in_one_line(tiny_cmnist_h5):
    _flip(tiny_cmnist_h5)
    result = CliRunner().invoke(main, ["bench", "--data", str(tiny_cmnist_h5), "--device", "cpu", "--rounds", "1"])
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert result.output.startswith(f"Error: {tiny_cmnist_h5}: damaged prepared Colored-and-gray MNIST")


# --- NVGesture: clips read by DataLoader workers while training ---------------------------------------------------
def _nvgesture(tmp_path: Path) -> Path:
    pytest.importorskip("av")
    from data_prep.nvgesture import prepare_nvgesture

    from nvgesture_fixtures import FIXTURE, make_raw

    if not FIXTURE.is_dir():
        pytest.skip(f"no NVGesture fixture at {FIXTURE}")
    (tmp_path / "raw").mkdir()
    return prepare_nvgesture(make_raw(tmp_path / "raw"), tmp_path / "nvgesture.h5", size=16, progress=False,
                             log=lambda m: None)  # fmt: skip


@pytest.fixture(scope="module")
def flipped_nvgesture(tmp_path_factory) -> Path:
    """The stage's NVGesture file (16x16 frames) with random bytes over the chunk of training clip 1's RGB frames."""
    path = _nvgesture(tmp_path_factory.mktemp("nvg"))
    _flip(path, "train/rgb", chunk=1)
    return path


@pytest.mark.parametrize("workers", [0, 1])
def test_a_damaged_clip_names_the_file_from_a_worker(flipped_nvgesture, workers):
    from repro.data.nvgesture import load

    train = load(flipped_nvgesture, ("rgb", "depth"), train_limit=4, workers=workers).splits["train"]
    with pytest.raises(PreparedFileError) as raised:
        list(train.batches(4))
    assert str(raised.value) == (
        f"{flipped_nvgesture}: damaged prepared NVGesture (a chunk fails its checksum in /train/rgb[1]); rebuild it "
        f"with `repro prep nvgesture --raw DIR --out {flipped_nvgesture} --force`"
    )


def test_repro_train_on_a_damaged_clip_ends_in_one_line(flipped_nvgesture, tmp_path):
    """The clip fails mid-epoch in a DataLoader worker: the run is recorded failed, no `done`, one line."""
    run = tmp_path / "run"
    proc = _run("train", "--dataset", "nvgesture", "--data", str(flipped_nvgesture), "--out", str(run),
                "--max-epochs", "1", "--train-limit", "4", "--eval-limit", "2", "--workers", "1", "--threads", "1",
                "--progress", "false", "--device", "cpu")  # fmt: skip
    line = _one_line(proc.stderr)
    assert proc.returncode == 1 and line == (
        f"Error: {flipped_nvgesture}: damaged prepared NVGesture (a chunk fails its checksum in /train/rgb[1]); "
        f"rebuild it with `repro prep nvgesture --raw DIR --out {flipped_nvgesture} --force`"
    ), proc.stderr
    record = json.loads((run / "record.json").read_text())
    assert record["status"] == "failed" and "/train/rgb[1]" in record["error"] and not (run / DONE_NAME).exists()
