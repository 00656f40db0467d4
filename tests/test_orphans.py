"""Workers never outlive their launcher, with real processes: `repro sweep --launcher local --workers 2` killed with
SIGKILL mid-sweep leaves no process of its own alive, and its relaunch finishes every run exactly once (the runs
the kill interrupted resume from their checkpoints); a launcher worker's own DataLoader workers follow it; without
prctl, the watchdog thread ends an orphan; a parent already dead ends the process at once.

Processes are found through ``/proc`` (Linux). An orphan is reparented to init, which may not reap it here: a
zombie counts as dead."""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine_fixtures import write_tiny_cmnist

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")

STUDY, RUNS, MAX_EPOCHS = "l1", 4, 3  # --budget small on CMNIST, cut to 4 λ (of 5) and 3 epochs (of 7), 256 samples
#: `repro sweep` with CMNIST's small profile so cut (the workers get their runs' full configs from the launcher).
SWEEP = f"""
import dataclasses, sys
from repro.cli import main
from repro.experiments import sweeps
small = sweeps.SMALL["cmnist"]
overrides = {{**small.overrides, "max_epochs": {MAX_EPOCHS}}}
sweeps.SMALL["cmnist"] = dataclasses.replace(small, lambdas={RUNS}, overrides=overrides)
main(["sweep", *sys.argv[1:]], prog_name="repro")
"""


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, start time) of a process, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()  # after "pid (comm)": state, ppid, ..., starttime (field 22)
    return fields[0], int(fields[1]), int(fields[19])


def _descendants(root: int) -> dict[int, tuple[int, str]]:
    """Every living descendant of ``root``: pid -> (start time, command line)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (st := _stat(int(entry.name))) and st[0] not in "ZX":
            children.setdefault(st[1], []).append(int(entry.name))
    found, stack = {}, [root]
    while stack:
        for pid in children.get(stack.pop(), []):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if st := _stat(pid):
                found[pid] = (st[2], cmdline)
                stack.append(pid)
    return found


def _alive(pid: int, start: int) -> bool:
    st = _stat(pid)
    return st is not None and st[0] not in "ZX" and st[2] == start


def _wait_gone(procs: dict[int, tuple[int, str]], within: float) -> tuple[float, list[str]]:
    """Seconds until none of ``procs`` is alive, or (``within``, the survivors' command lines)."""
    begun = time.monotonic()
    while time.monotonic() - begun < within:
        if not any(_alive(pid, start) for pid, (start, _) in procs.items()):
            return time.monotonic() - begun, []
        time.sleep(0.02)
    survivors = {pid: cmd for pid, (start, cmd) in procs.items() if _alive(pid, start)}
    for pid in survivors:  # leave nothing behind for the other tests
        os.kill(pid, signal.SIGKILL)
    return within, [f"{pid}: {cmd}" for pid, cmd in survivors.items()]


def _records(results: Path) -> dict[str, dict]:
    out = {}
    for path in sorted((results / "runs").glob("*/record.json")):
        try:
            out[path.parent.name] = json.loads(path.read_text())
        except (OSError, ValueError):  # never half-written (atomic), but tolerate a race with the directory scan
            pass
    return out


def test_a_killed_launcher_takes_its_workers_and_the_relaunch_runs_each_run_once(tmp_path):
    data, results = tmp_path / "data", tmp_path / "results"
    data.mkdir()
    write_tiny_cmnist(data / "cmnist.h5")
    command = [sys.executable, "-c", SWEEP, STUDY, "--budget", "small", "--launcher", "local"]
    command += [
        "--workers",
        "2",
        "--threads",
        "1",
        "--device",
        "cpu",
        "--data-dir",
        str(data),
        "--results",
        str(results),
    ]
    with open(tmp_path / "first.log", "w") as out:
        launcher = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:  # until a run is done and another part-way: past its first checkpoint, not finished
        deadline = time.monotonic() + 90
        while True:
            procs = _descendants(launcher.pid)  # first, so that the kill follows the records' check at once
            states = [(r.get("status"), len(r.get("epochs", []))) for r in _records(results).values()]
            if ("done" in (s for s, _ in states)) and any(s == "running" and 0 < n < MAX_EPOCHS for s, n in states):
                break
            assert launcher.poll() is None, (tmp_path / "first.log").read_text()
            assert time.monotonic() < deadline, f"no run done and another part-way in 90 s: {states}"
            time.sleep(0.05)
    finally:
        launcher.kill()  # SIGKILL: the launcher runs no clean-up
        launcher.wait()
    at_kill = _records(results)
    workers = [pid for pid, (_, cmd) in procs.items() if "spawn_main" in cmd]
    assert len(workers) == 2, procs
    seconds, survivors = _wait_gone(procs, within=3.0)
    assert not survivors, f"alive {seconds:.0f} s after the launcher's SIGKILL: {survivors}"
    before = _records(results)
    assert before == at_kill, "runs went on training after the launcher's SIGKILL"
    partial = {name for name, r in before.items() if r["status"] == "running"}  # killed in training: resumable
    resumed = {name for name in partial if before[name]["epochs"]}  # ... from a checkpoint
    done_before = {n: (results / "runs" / n / "record.json").stat().st_mtime_ns for n in before}
    done_before = {n: t for n, t in done_before.items() if before[n]["status"] == "done"}
    assert resumed and done_before, before

    relaunch = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=180)
    assert relaunch.returncode == 0, relaunch.stdout + relaunch.stderr
    summary = relaunch.stdout.splitlines()[0]
    assert f"{RUNS} runs:" in summary and f"{len(partial)} partial" in summary, summary
    assert not re.search(r"\d running", summary), summary  # no lock left behind
    outcomes = re.findall(r"^\[\d+/\d+\] (\S+)", relaunch.stdout, re.MULTILINE)
    assert outcomes == ["done"] * (RUNS - len(done_before)), relaunch.stdout  # no run busy, none skipped or failed

    manifest = json.loads((results / "studies" / f"{STUDY}-small.json").read_text())
    after = _records(results)
    assert sorted(after) == sorted(Path(r["dir"]).name for r in manifest["runs"])
    for name, record in after.items():
        assert record["status"] == "done", name
        epochs = [e["epoch"] for e in record["epochs"]]
        assert epochs == list(range(1, len(epochs) + 1)) and epochs, (name, epochs)  # each epoch once, in order
        log = (results / "runs" / name / "train.log").read_text()
        assert len(re.findall(r"^epoch +1 ", log, re.MULTILINE)) == 1, log  # never trained from scratch twice
        if name in resumed:
            assert re.search(r"resuming after epoch [1-9]", log), log
    for name, mtime in done_before.items():  # finished before the kill: left alone
        assert (results / "runs" / name / "record.json").stat().st_mtime_ns == mtime


DATALOADER_LAUNCHER = """
import fcntl, os, sys, time, multiprocessing as mp
from torch.utils.data import DataLoader, Dataset
from repro.experiments.launchers import _start_worker

class Slow(Dataset):
    def __len__(self):
        return 100_000

    def __getitem__(self, i):
        time.sleep(0.02)
        return i

def load(lock):
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a run's RunLock: forked children share it
    for i, _ in enumerate(DataLoader(Slow(), batch_size=1, num_workers=2)):
        if i == 0:
            print("loading", os.getpid(), flush=True)

if __name__ == "__main__":
    _start_worker(mp.get_context("spawn"), load, (sys.argv[1],))
    time.sleep(120)
"""


def test_a_workers_dataloader_workers_die_with_it(tmp_path):
    """A launcher worker may start processes (it is not daemonic: NVGesture's DataLoader); they are forked, as in
    `repro train`, and die with the worker, which dies with the launcher: the run's lock is free at once."""
    script, lock = tmp_path / "launcher.py", tmp_path / ".lock"
    script.write_text(DATALOADER_LAUNCHER)
    launcher = subprocess.Popen(
        [sys.executable, str(script), str(lock)], stdout=subprocess.PIPE, text=True, cwd=tmp_path
    )
    try:
        line = launcher.stdout.readline()
        assert line.startswith("loading"), line
        worker = int(line.split()[1])
        procs = _descendants(launcher.pid)
        loaders = _descendants(worker)
        assert len(loaders) == 2 and all(p[1] == procs[worker][1] for p in loaders.values()), procs  # forked
    finally:
        launcher.kill()
        launcher.wait()
    seconds, survivors = _wait_gone(procs, within=2.0)
    assert not survivors, f"alive {seconds:.0f} s after the launcher's SIGKILL: {survivors}"
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # no process left holding the run's lock
    finally:
        os.close(fd)


CHILD = """
import sys, time
from repro.experiments.launchers import exit_with_parent
print(exit_with_parent(int(sys.argv[1]), use_prctl=sys.argv[2] == "prctl", interval=0.2), flush=True)
time.sleep(60)
"""


def test_without_prctl_a_watchdog_ends_the_orphan(tmp_path):
    parent_code = (
        "import os, subprocess, sys, time; "
        f"c = subprocess.Popen([sys.executable, '-c', {CHILD!r}, str(os.getpid()), 'watchdog']); "
        "print(c.pid, flush=True); time.sleep(60)"
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        assert parent.stdout.readline().strip() == "watchdog"  # armed
        start = _stat(child)[2]
    finally:
        parent.kill()
        parent.wait()
    seconds, survivors = _wait_gone({child: (start, "child")}, within=3.0)
    assert not survivors


@pytest.mark.parametrize("how", ["prctl", "watchdog"])
def test_a_parent_already_dead_ends_the_process_at_once(how):
    # The child's own pid is never its parent's: as if the launcher had died before the child armed itself.
    code = CHILD.replace("int(sys.argv[1])", "__import__('os').getpid()")
    done = subprocess.run([sys.executable, "-c", code, "0", how], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (1, "", "")
