"""The training engine end to end on a tiny CMNIST-layout file: a complete record, resume after a kill,
a finished run is a no-op, a different run in the same folder is refused, uni-modal runs."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from repro.config import resolve
from repro.engine import RunConflict, train

from engine_fixtures import write_tiny_cmnist

TEST_KEYS = {
    "acc",
    "acc_branch0",
    "acc_branch1",
    "acc_branch0_unimodal",
    "acc_branch1_unimodal",
    "u_m1_given_m0",
    "u_m0_given_m1",
    "d_util",
    "d_speed",
    "r_f",
}


def _cfg(data, **kw):
    base = dict(data=str(data), max_epochs=3, batch_size=32, progress=False, threads=1)
    base.update(kw)
    return resolve("cmnist", **base)


@pytest.mark.parametrize("algorithm", ["vanilla", "rubi", "random", "guided"])
def test_tiny_run_writes_a_complete_record(tiny_cmnist, tmp_path, algorithm):
    record = train(_cfg(tiny_cmnist, algorithm=algorithm, alpha=0.0), tmp_path / "run")
    on_disk = json.loads((tmp_path / "run" / "record.json").read_text())
    assert on_disk == json.loads(json.dumps(record))
    for key in ("dataset", "algorithm", "seed", "config", "versions", "epochs", "best_epoch", "status", "test"):
        assert key in on_disk
    assert (tmp_path / "run" / "done").exists()
    assert on_disk["status"] == "done" and on_disk["dataset"] == "cmnist" and on_disk["algorithm"] == algorithm
    assert on_disk["config"]["lr"] == 0.01 and on_disk["config"]["momentum"] == 0.9  # the paper's CMNIST setting
    assert len(on_disk["epochs"]) == 3 and 1 <= on_disk["best_epoch"] <= 3
    assert set(on_disk["test"]) == TEST_KEYS and all(v is not None for v in on_disk["test"].values())
    epoch = on_disk["epochs"][-1]
    for key in ("train_loss", "train_acc", "val_acc", "d_speed", "rebalance_steps"):
        assert key in epoch
    if algorithm in ("vanilla", "rubi"):
        assert all(e["rebalance_steps"] == 0 for e in on_disk["epochs"])
    else:  # alpha 0: guided re-balances whenever d_speed != 0; random one step in three
        assert on_disk["epochs"][0]["rebalance_steps"] == 0  # warm-up epoch
        assert on_disk["epochs"][1]["rebalance_steps"] > 0
    assert on_disk["test"]["d_speed"] == on_disk["epochs"][on_disk["best_epoch"] - 1]["d_speed"]


def test_finished_run_is_a_no_op_and_another_run_is_refused(tiny_cmnist, tmp_path):
    out = tmp_path / "run"
    first = train(_cfg(tiny_cmnist, max_epochs=1), out)
    mtime = (out / "record.json").stat().st_mtime_ns
    assert train(_cfg(tiny_cmnist, max_epochs=1), out) == first
    assert (out / "record.json").stat().st_mtime_ns == mtime
    with pytest.raises(RunConflict, match="--force"):
        train(_cfg(tiny_cmnist, max_epochs=1, lr=0.1), out)
    assert train(_cfg(tiny_cmnist, max_epochs=1, lr=0.1), out, force=True)["config"]["lr"] == 0.1


def test_unimodal_run(tiny_cmnist, tmp_path):
    record = train(_cfg(tiny_cmnist, modalities="gray", max_epochs=2), tmp_path / "gray")
    assert record["modalities"] == ["gray"] and record["test"]["acc"] is not None
    assert record["test"]["d_util"] is None and record["epochs"][0]["d_speed"] is None


def _without_timing(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "timing"}


def test_resume_after_kill_gives_the_uninterrupted_record(tmp_path):
    data = write_tiny_cmnist(tmp_path / "cmnist.h5", n_train=1536, n_eval=128)
    args = [
        "--dataset",
        "cmnist",
        "--algorithm",
        "random",
        "--data",
        str(data),
        "--max-epochs",
        "4",
        "--batch-size",
        "32",
        "--threads",
        "1",
        "--progress",
        "false",
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cmd = [sys.executable, "-m", "repro", "train", *args]
    subprocess.run(cmd + ["--out", str(tmp_path / "straight")], check=True, env=env, capture_output=True)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(cmd + ["--out", str(killed)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:  # kill it during the second epoch, mid-step
        record_path = killed / "record.json"
        if record_path.exists() and len(json.loads(record_path.read_text() or "{}").get("epochs", [])) >= 1:
            break
        time.sleep(0.02)
    time.sleep(0.15)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    interrupted = json.loads((killed / "record.json").read_text())
    assert interrupted["status"] == "running" and len(interrupted["epochs"]) < 4
    subprocess.run(cmd + ["--out", str(killed)], check=True, env=env, capture_output=True)
    straight = json.loads((tmp_path / "straight" / "record.json").read_text())
    resumed = json.loads((killed / "record.json").read_text())
    assert resumed["status"] == "done"
    assert _without_timing(resumed) == _without_timing(straight)


def test_trains_on_a_file_written_by_the_real_prep_stage(tiny_cmnist_h5, tmp_path):
    """The stage's output and the engine's input agree (layout, dtypes, modality names)."""
    record = train(_cfg(tiny_cmnist_h5, algorithm="guided", max_epochs=2, batch_size=16), tmp_path / "run")
    assert record["status"] == "done" and record["test"]["d_util"] is not None
