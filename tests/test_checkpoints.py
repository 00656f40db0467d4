"""Checkpoints load with ``weights_only=True``: a results folder from someone else cannot run code on this machine.
A crafted checkpoint whose unpickling would run code is refused with one line naming the file, and runs nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from repro.config import resolve
from repro.engine import train
from repro.engine.checkpoint import CheckpointError, load_torch


class _RunsCode:
    """Unpickling this calls ``exec``: what a malicious checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('ran')",)


def test_the_package_checkpoints_load_safely(tiny_cmnist, tmp_path):
    cfg = resolve("cmnist", algorithm="guided", data=str(tiny_cmnist), max_epochs=2, batch_size=64, progress=False)
    train(cfg, tmp_path / "run")
    for name in ("checkpoint.pt", "best.pt", "best_reference.pt"):
        assert load_torch(tmp_path / "run" / name) is not None, name


def test_a_crafted_checkpoint_is_refused_and_runs_nothing(tiny_cmnist, tmp_path):
    cfg = resolve("cmnist", algorithm="guided", data=str(tiny_cmnist), max_epochs=2, batch_size=64, progress=False)
    run, marker = tmp_path / "run", tmp_path / "marker"
    run.mkdir()
    (run / "record.json").write_text(json.dumps({"spec_hash": cfg.spec_hash(), "status": "running"}))
    torch.save({"spec_hash": cfg.spec_hash(), "epoch": 1, "payload": _RunsCode(marker)}, run / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="checkpoint.pt: refused"):
        load_torch(run / "checkpoint.pt")
    cmd = [str(Path(sys.executable).parent / "repro"), "train", "--dataset", "cmnist", "--algorithm", "guided"]
    cmd += ["--data", str(tiny_cmnist), "--max-epochs", "2", "--batch-size", "64", "--progress", "false"]
    result = subprocess.run([*cmd, "--threads", "1", "--out", str(run)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1 and f"{run / 'checkpoint.pt'}: refused" in result.stderr
    assert not marker.exists(), "the checkpoint's code ran"
    (run / "checkpoint.pt").unlink()  # the hand-made record beside it is not one the package wrote
