"""`repro doctor`: reports every check, fails (exit 1, naming the check and its fix) only on what is needed."""

from __future__ import annotations

import json

from click.testing import CliRunner

from repro.cli import main
from repro.doctor import check_dataset, check_hdf5


def _doctor(*args):
    return CliRunner().invoke(main, ["doctor", *args])


def test_reports_every_check_and_passes_without_needs(tmp_path):
    result = _doctor("--json", "--data-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    names = [c["name"] for c in report["checks"]]
    assert names == ["python", "torch", "gpu", "egl", "av", "hdf5", "cmnist", "modelnet40", "nvgesture"]
    assert report["ok"] and report["failed"] == []


def test_a_needed_missing_dataset_fails_with_the_fix(tmp_path):
    result = _doctor("--need", "cmnist", "--data-dir", str(tmp_path))
    assert result.exit_code == 1
    assert f"cmnist: {tmp_path}/cmnist.h5 not found" in result.output
    assert "make data/cmnist.h5" in result.output  # the fix, on the check's line


def test_a_prepared_dataset_passes_with_its_counts(tiny_cmnist_h5):
    check = check_dataset("cmnist", tiny_cmnist_h5.parent)  # the fixture writes <tmp>/cmnist.h5
    assert check.ok, check.detail
    assert "train" in check.detail and "val" in check.detail and "test" in check.detail


def test_an_unreadable_dataset_is_reported_not_raised(tmp_path):
    (tmp_path / "nvgesture.h5").write_bytes(b"not an HDF5 file")
    check = check_dataset("nvgesture", tmp_path)
    assert not check.ok and "unreadable" in check.detail and "delete it" in check.fix


def test_hdf5_round_trip():
    assert check_hdf5().ok


def test_unknown_check_is_a_usage_error():
    result = _doctor("--need", "gpu,telepathy")
    assert result.exit_code == 2 and "unknown check 'telepathy'" in result.output
