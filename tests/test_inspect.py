"""`repro inspect`: generic description of prepared HDF5 files."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from data_prep.cli import inspect_cmd
from data_prep.cmnist import DEFAULT_VARIANCE
from data_prep.common import PrepError
from data_prep.inspect import describe

from conftest import TINY_SPLIT_SIZES


def test_describe_cmnist(tiny_cmnist_h5):
    d = describe(tiny_cmnist_h5)
    assert d["path"] == str(tiny_cmnist_h5)
    assert list(d["splits"]) == ["train", "val", "test"]
    for split, n in TINY_SPLIT_SIZES.items():
        s = d["splits"][split]
        assert s["count"] == n and "problem" not in s
        assert s["arrays"]["mono"] == {"shape": [n, 28, 28, 3], "dtype": "uint8"}
        assert s["arrays"]["gray"] == {"shape": [n, 28, 28, 1], "dtype": "uint8"}
        assert s["arrays"]["label"] == {"shape": [n], "dtype": "int64"}
        assert s["arrays"]["color"] == {"shape": [n, 3], "dtype": "float32"}
    assert d["attrs"]["dataset"] == "cmnist" and d["attrs"]["format_version"] == 2
    assert isinstance(d["attrs"]["recipe"], dict) and d["attrs"]["recipe"]["split_sizes"] == TINY_SPLIT_SIZES


def test_cli_json_is_one_object(tiny_cmnist_h5):
    r = CliRunner().invoke(inspect_cmd, [str(tiny_cmnist_h5), "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert set(d) == {"path", "attrs", "splits"}
    assert d["splits"]["val"]["count"] == TINY_SPLIT_SIZES["val"]
    assert d["splits"]["test"]["arrays"]["color_class"] == {
        "shape": [TINY_SPLIT_SIZES["test"]],
        "dtype": "int64",
    }
    assert d["attrs"]["recipe"]["seed"] == 0 and d["attrs"]["seed"] == 0


def test_cli_text(tiny_cmnist_h5):
    r = CliRunner().invoke(inspect_cmd, [str(tiny_cmnist_h5)])
    assert r.exit_code == 0, r.output
    assert f"train: {TINY_SPLIT_SIZES['train']} samples" in r.output
    assert "(80, 28, 28, 3)" in r.output and "uint8" in r.output
    assert "recipe_hash:" in r.output and f"variance: {DEFAULT_VARIANCE}" in r.output


@pytest.mark.parametrize("verify", [False, True])
@pytest.mark.parametrize("make", ["missing", "text", "directory"])
def test_unreadable_path_is_one_line_error(tmp_path, make, verify):
    path = tmp_path / "thing.h5"
    if make == "text":
        path.write_text("hello")
    elif make == "directory":
        path.mkdir()
    with pytest.raises(PrepError):
        describe(path)
    r = CliRunner().invoke(inspect_cmd, [str(path)] + (["--verify"] if verify else []))
    assert r.exit_code == 1
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and str(path) in lines[0]


def test_verify_reads_every_chunk_and_compares_the_arrays_checksum(tiny_cmnist_h5):
    r = CliRunner().invoke(inspect_cmd, [str(tiny_cmnist_h5), "--verify", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == {
        "path": str(tiny_cmnist_h5),
        "dataset": "cmnist",
        "format_version": 2,
        "chunks": 15,
        "unchecked_chunks": 0,
        "arrays_checksum": "matches",
    }


def test_verify_a_file_of_no_known_stage(tmp_path):
    """Chunks without a checksum are read and counted; there is no arrays_checksum to compare."""
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("train/x", data=np.arange(10), chunks=(4,))
        f.create_dataset("train/y", data=np.arange(10), chunks=(4,), fletcher32=True)
    r = CliRunner().invoke(inspect_cmd, [str(path), "--verify"])
    assert r.exit_code == 0, r.output
    assert r.output == (
        f"{path}: ok (6 chunks read, 3 of them without a checksum; arrays_checksum not compared: not a file of a known "
        "stage)\n"
    )


@pytest.mark.parametrize("name", ["cmnist.h5", "thing.h5"])
def test_a_missing_file_names_the_stage_when_its_name_says_it(tmp_path, name):
    r = CliRunner().invoke(inspect_cmd, [str(tmp_path / name), "--verify"])
    assert r.exit_code == 1 and r.output.count("\n") == 1
    if name == "cmnist.h5":
        path = tmp_path / name
        assert r.output == f"Error: {path}: no such file; run `repro prep cmnist --out {path}` or fix the path\n"
    else:
        assert "run the matching `repro prep ...` stage first" in r.output


def test_generic_file_nested_arrays_and_count_mismatch(tmp_path):
    """Future datasets (ModelNet40 views, NVGesture clips) may nest arrays or carry group attributes."""
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f.attrs["dataset"] = "toy"
        f.attrs["classes"] = np.array([b"a", b"b"])
        f.attrs["recipe"] = "{not json"
        f["train/views/front"] = np.zeros((4, 2, 2), np.uint8)
        f["train/label"] = np.zeros(4, np.int64)
        f["train"].attrs["note"] = "x"
        f["broken/a"] = np.zeros(3)
        f["broken/b"] = np.zeros(5)
        f["meta"] = np.arange(7)
    d = describe(path)
    assert d["splits"]["train"]["count"] == 4
    assert d["splits"]["train"]["arrays"]["views/front"] == {"shape": [4, 2, 2], "dtype": "uint8"}
    assert d["splits"]["train"]["attrs"] == {"note": "x"}
    assert d["splits"]["broken"]["count"] is None and "a=3" in d["splits"]["broken"]["problem"]
    assert d["root_arrays"] == {"meta": {"shape": [7], "dtype": "int64"}}
    assert d["attrs"] == {"dataset": "toy", "classes": ["a", "b"], "recipe": "{not json"}
    json.dumps(d)  # everything is JSON-able
    r = CliRunner().invoke(inspect_cmd, [str(path)])
    assert r.exit_code == 0 and "PROBLEM" in r.output
