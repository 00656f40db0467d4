"""Launchers on tiny runs: dry writes nothing; an interrupted sweep runs only the rest; a failing run is recorded
and the others go on, and it is rerun only with retry_failed; a locked run is never trained twice; two local
worker processes; submitit's local executor running a job array; the `repro sweep` command."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from repro.cli import main
from repro.config import resolve
from repro.experiments.launchers import SlurmOptions, launch_dry, launch_local, launch_slurm
from repro.experiments.runner import RunLock, execute, run_state
from repro.experiments.sweeps import STUDIES, Plan, RunSpec


def _spec(data, lr=0.01, seed=0):
    cfg = resolve("cmnist", lr=lr, seed=seed, data=str(data), max_epochs=1, batch_size=64, progress=False)
    return RunSpec(cfg, {"lr": lr, "seed": seed})


def _plan(specs):
    return Plan(STUDIES["lr-greedy"], "small", specs, {})


def _record(results, spec):
    return json.loads((results / "runs" / spec.name / "record.json").read_text())


class Log(list):
    def __call__(self, line):
        self.append(line)


def test_dry_prints_the_plan_and_writes_nothing(tiny_cmnist, tmp_path):
    log = Log()
    plan = _plan([_spec(tiny_cmnist, lr) for lr in (0.01, 0.1)])
    tasks = launch_dry(plan, tmp_path / "results", log=log)
    assert len(tasks) == 2 and not (tmp_path / "results").exists()
    assert sum(line.strip().startswith("pending") for line in log) == 2
    assert "2 runs: 2 pending; 2 to run" in log[-1]


def test_an_interrupted_sweep_runs_only_the_rest(tiny_cmnist, tmp_path):
    results = tmp_path / "results"
    specs = [_spec(tiny_cmnist, lr, seed) for lr in (0.01, 0.1) for seed in (0, 1)]
    plan = _plan(specs)

    def interrupt_after_two(line):
        if line.startswith("[2/4]"):
            raise KeyboardInterrupt  # Ctrl-C half-way

    with pytest.raises(KeyboardInterrupt):
        launch_local(plan, results, workers=1, threads=1, log=interrupt_after_two)
    assert [run_state(results / "runs" / s.name) for s in specs] == ["done", "done", "pending", "pending"]
    before = [(results / "runs" / s.name / "record.json").stat().st_mtime_ns for s in specs[:2]]
    log = Log()
    outcomes = launch_local(plan, results, workers=1, threads=1, log=log)
    assert [o.name for o in outcomes] == [s.name for s in specs[2:]] and {o.state for o in outcomes} == {"done"}
    assert "4 runs: 2 done, 2 pending; 2 to run" in log[0]
    assert [(results / "runs" / s.name / "record.json").stat().st_mtime_ns for s in specs[:2]] == before
    assert launch_local(plan, results, workers=1, threads=1, log=Log()) == []  # all done: nothing to do
    manifest = json.loads((results / "studies" / "lr-greedy-small.json").read_text())
    assert [r["dir"] for r in manifest["runs"]] == [f"runs/{s.name}" for s in specs]


def test_an_interrupted_or_killed_run_resumes(tiny_cmnist, tmp_path):
    spec = _spec(tiny_cmnist)
    run_dir = tmp_path / "runs" / spec.name
    run_dir.mkdir(parents=True)
    for status in ("running", "interrupted"):  # killed (SIGKILL) / Ctrl-C: the engine's two unfinished states
        (run_dir / "record.json").write_text(json.dumps({"status": status, "spec_hash": spec.cfg.spec_hash()}))
        assert run_state(run_dir) == "partial"
    assert execute({**spec.cfg.__dict__}, run_dir).state == "done"


def test_a_failing_run_is_recorded_others_go_on_and_it_is_retried_only_when_asked(tiny_cmnist, tmp_path):
    results = tmp_path / "results"
    missing = tmp_path / "later" / "cmnist.h5"
    good, bad = _spec(tiny_cmnist), _spec(missing)
    plan = _plan([bad, good])
    outcomes = launch_local(plan, results, workers=1, threads=1, log=Log())
    assert [o.state for o in outcomes] == ["failed", "done"]
    record = _record(results, bad)
    assert record["status"] == "failed" and "FileNotFoundError" in record["error"] and str(missing) in record["error"]
    assert "Traceback" in (results / "runs" / bad.name / "train.log").read_text()
    log = Log()
    assert launch_local(plan, results, workers=1, threads=1, log=log) == []
    assert "1 failed (failed runs are skipped; --retry-failed reruns them); 0 to run" in log[0]
    missing.parent.mkdir()
    shutil.copy(tiny_cmnist, missing)
    outcomes = launch_local(plan, results, workers=1, threads=1, retry_failed=True, log=Log())
    assert [o.state for o in outcomes] == ["done"] and _record(results, bad)["status"] == "done"


def test_a_locked_run_is_left_to_its_holder(tiny_cmnist, tmp_path):
    results = tmp_path / "results"
    spec = _spec(tiny_cmnist)
    run_dir = results / "runs" / spec.name
    (run_dir).mkdir(parents=True)
    (run_dir / "record.json").write_text(json.dumps({"status": "running"}))
    with RunLock(run_dir) as lock:
        assert lock.acquired
        assert run_state(run_dir) == "running"
        assert execute(dict(spec.cfg.__dict__), run_dir).state == "busy"
        assert launch_local(_plan([spec]), results, workers=1, threads=1, log=Log()) == []
    assert run_state(run_dir) == "partial"  # the holder is gone: the lock went with it


def test_local_launcher_with_two_worker_processes(tiny_cmnist, tmp_path):
    results = tmp_path / "results"
    specs = [_spec(tiny_cmnist, lr) for lr in (0.01, 0.1)]
    log = Log()
    outcomes = launch_local(_plan(specs), results, workers=2, threads=1, device="cpu", log=log)
    assert sorted(o.name for o in outcomes) == sorted(s.name for s in specs)
    assert {o.state for o in outcomes} == {"done"}
    for s in specs:
        record = _record(results, s)
        assert record["status"] == "done" and record["config"]["lr"] == s.cfg.lr
        assert "epoch   1" in (results / "runs" / s.name / "train.log").read_text()
    assert "2 runs on 2 worker(s) × 1 thread(s)" in log[1]


def test_submitit_local_executor_runs_a_job_array(tiny_cmnist, tmp_path):
    results = tmp_path / "results"
    specs = [_spec(tiny_cmnist, lr) for lr in (0.01, 0.1)]
    done = _spec(tiny_cmnist, 0.03)
    assert execute(dict(done.cfg.__dict__), results / "runs" / done.name).state == "done"
    options = SlurmOptions(cluster="local", gpus_per_task=0, cpus_per_task=1, runs_per_task=2, timeout_min=5)
    log = Log()
    jobs = launch_slurm(_plan([specs[0], done, specs[1]]), results, options, wait=True, log=log)
    assert len(jobs) == 1  # the 2 runs not done, 2 per array task
    assert {_record(results, s)["status"] for s in specs} == {"done"}
    assert "all array tasks finished: 2 done" in log[-1]
    assert launch_slurm(_plan(specs + [done]), results, options, log=Log()) == []  # nothing left to submit


def test_sweep_command(tmp_path):
    runner = CliRunner()
    result = runner.invoke(
        main,
        [
            "sweep",
            "lr-greedy",
            "--launcher",
            "dry",
            "--budget",
            "small",
            "--data-dir",
            str(tmp_path),
            "--results",
            str(tmp_path / "r"),
        ],
    )
    assert result.exit_code == 1 and "has no run on this machine" in result.output
    (tmp_path / "cmnist.h5").touch()
    result = runner.invoke(
        main,
        [
            "sweep",
            "lr-greedy",
            "--launcher",
            "dry",
            "--budget",
            "small",
            "--data-dir",
            str(tmp_path),
            "--results",
            str(tmp_path / "r"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "lr-greedy [small]: 60 runs: 60 pending; 60 to run" in result.output
    result = runner.invoke(main, ["sweep", "no-such", "--launcher", "dry"])
    assert result.exit_code == 2
