"""`repro doctor`: reports every check, fails (exit 1, naming the check and its fix) only on what is needed; a missing
torch, PyAV or OpenCV is a failed check with its fix, not a crash."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import pytest
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
    assert names == ["python", "torch", "gpu", "egl", "av", "opencv", "hdf5", "cmnist", "modelnet40", "nvgesture"]
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
    path = tmp_path / "nvgesture.h5"
    path.write_bytes(b"not an HDF5 file")
    check = check_dataset("nvgesture", tmp_path)
    assert not check.ok and check.detail == (
        f"{path}: damaged (not an HDF5 file); rebuild it with `repro prep nvgesture --raw DIR --out {path} --force`"
    )
    assert check.fix == "delete it and run make data NVGESTURE_RAW=/path/to/nvGesture"


def test_a_damaged_or_outdated_dataset_is_reported(tiny_cmnist_h5):
    """The doctor's cheap check reads the attributes and the last row of each array: a chunk there failing its
    checksum, or a file of the previous format version, fails the check with the line `repro train` would print."""
    data_dir, path = tiny_cmnist_h5.parent, tiny_cmnist_h5
    check = check_dataset("cmnist", data_dir)
    assert check.ok and check.detail.endswith(f"format version 2 (every chunk: repro inspect {path} --verify)")
    with h5py.File(path, "r") as f:
        info = f["test/gray"].id.get_chunk_info(0)  # the only chunk of a 40-sample split: the last row's
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset + info.size // 2)
        fh.write(b"\x00\xff" * 4)
    check = check_dataset("cmnist", data_dir)
    assert not check.ok and check.detail == (
        f"{path}: damaged (a chunk fails its checksum in /test/gray); rebuild it with "
        f"`repro prep cmnist --out {path} --force`"
    )
    assert check.fix == "delete it and run make data/cmnist.h5"

    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = 1
    check = check_dataset("cmnist", data_dir)
    assert not check.ok and check.detail == (
        f"{path}: format version 1 (no chunk checksums); this package reads format version 2 (Fletcher-32 chunk "
        f"checksums): prepare it again with `repro prep cmnist --out {path}`"
    )


def test_hdf5_round_trip():
    assert check_hdf5().ok


def test_unknown_check_is_a_usage_error():
    result = _doctor("--need", "gpu,telepathy")
    assert result.exit_code == 2 and "unknown check 'telepathy'" in result.output


def _doctor_without(module: str, tmp_path: Path, *args: str) -> tuple[int, dict, str]:
    """``repro doctor --json`` in a fresh interpreter where importing ``module`` raises ImportError (a package of that
    name, first on PYTHONPATH)."""
    hidden = tmp_path / "hidden"
    (hidden / module).mkdir(parents=True, exist_ok=True)
    (hidden / module / "__init__.py").write_text(f"raise ImportError('{module} hidden by the test')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hidden), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-m", "repro", "doctor", "--json", "--data-dir", str(tmp_path), *args],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def test_a_missing_torch_is_reported_with_its_fix_and_the_other_checks_still_run(tmp_path):
    code, report, stderr = _doctor_without("torch", tmp_path)
    checks = {c["name"]: c for c in report["checks"]}
    assert code == 1 and report["failed"] == ["torch"]  # torch is always needed
    assert not checks["torch"]["ok"] and "torch hidden by the test" in checks["torch"]["detail"]
    assert checks["torch"]["fix"] == "make install"
    assert not checks["gpu"]["ok"] and "not checked" in checks["gpu"]["detail"]  # needs torch
    assert checks["python"]["ok"] and checks["hdf5"]["ok"]  # need no torch: they ran
    assert {"egl", "av", "opencv", "cmnist", "modelnet40", "nvgesture"} <= set(checks)
    assert "needed checks failed: torch" in stderr and "make install" in stderr


@pytest.mark.parametrize("module, check", [("av", "av"), ("cv2", "opencv")])
def test_a_missing_video_library_is_reported_with_its_fix(tmp_path, module, check):
    code, report, _ = _doctor_without(module, tmp_path)
    checks = {c["name"]: c for c in report["checks"]}
    assert code == 0 and report["ok"]  # not needed unless asked for
    assert not checks[check]["ok"] and f"{module} hidden by the test" in checks[check]["detail"]
    assert "make install" in checks[check]["fix"]
    assert checks["torch"]["ok"]
    code, report, stderr = _doctor_without(module, tmp_path, "--need", check)
    assert code == 1 and report["failed"] == [check] and f"needed checks failed: {check}" in stderr
