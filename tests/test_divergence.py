"""A diverging run is a failure, said once: it stops at the epoch whose training loss is not finite, its record says
failed and why, `repro train` exits non-zero with one line; in a pack only that run fails and the others go on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from repro.config import resolve
from repro.engine import train_runs

DIVERGING_LR = 1e9  # the smallest power of ten that gives a NaN loss in the first epoch on the tiny CMNIST file


def test_repro_train_stops_a_diverging_run_at_once_with_one_line(tiny_cmnist, tmp_path):
    out = tmp_path / "run"
    cmd = [str(Path(sys.executable).parent / "repro"), "train", "--dataset", "cmnist", "--algorithm", "guided"]
    cmd += ["--data", str(tiny_cmnist), "--lr", str(DIVERGING_LR), "--max-epochs", "300", "--batch-size", "64"]
    cmd += ["--threads", "1", "--progress", "false", "--out", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: {out}: Diverged: in epoch 1, the training loss is nan (lr 1e+09); try a smaller --lr"
    ]
    record = json.loads((out / "record.json").read_text())
    assert record["status"] == "failed" and record["error"].startswith("Diverged: in epoch 1,")
    assert record["epochs"] == [] and not (out / "done").exists()


def test_in_a_pack_only_the_diverging_run_fails(tiny_cmnist, tmp_path):
    common = dict(data=str(tiny_cmnist), max_epochs=2, batch_size=64, progress=False, threads=1)
    cfgs = [resolve("cmnist", algorithm="guided", lr=lr, **common) for lr in (0.01, DIVERGING_LR)]
    ok, diverged = train_runs(cfgs, [tmp_path / "ok", tmp_path / "diverged"])
    assert ok["status"] == "done" and len(ok["epochs"]) == 2
    assert diverged["status"] == "failed" and diverged["epochs"] == []
    assert "Diverged: in epoch 1" in diverged["error"]
