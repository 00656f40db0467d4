"""Running one run of a sweep safely beside others: an exclusive lock per run directory, the run's state read from
its record, failures recorded with their error, the run's own output kept in ``<run dir>/train.log``. Runs that may
share a network (:mod:`repro.engine.packing`) can train as one pack (:func:`execute_pack`), each still locked, skipped,
recorded and logged as its own.

States (:func:`run_state`): ``done`` (record finished), ``failed`` (the run raised; retried only when asked),
``running`` (another process holds the lock), ``partial`` (started, not finished, nobody on it: resumes from its
checkpoint), ``pending`` (never started).

The lock is ``fcntl.flock`` on ``<run dir>/.lock``: the kernel drops it when the holder dies, so a killed launcher
never leaves a stale lock. It is honoured across processes of one machine and, on Linux NFS clients (v4, or v3
with lockd), across the nodes of a cluster sharing the results directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from ..config import RunConfig, from_dict
from ..rundir import LOCK_NAME, LOG_NAME, RECORD_NAME, new_record, read_record, state_of, write_json


class RunLock:
    """Exclusive, non-blocking lock on one run directory (``with RunLock(d) as lock: if lock.acquired: ...``)."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_NAME
        self.fd: int | None = None
        self.acquired = False

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self.acquired = True
        except BlockingIOError:
            self.acquired = False
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            if self.acquired:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
        self.fd, self.acquired = None, False


def run_state(run_dir: Path) -> str:
    """The state of a run directory (module docstring), checking the lock only when the record is unfinished."""
    state = state_of(read_record(run_dir))
    if state in ("done", "failed") or not (Path(run_dir) / LOCK_NAME).exists():
        return state
    with RunLock(run_dir) as lock:
        return state if lock.acquired else "running"


@dataclass
class Outcome:
    """What happened to one run when a launcher got to it."""

    name: str
    state: str  # done | failed | skipped-done | skipped-failed | busy
    seconds: float = 0.0
    summary: str = ""
    error: str | None = None


def summarize(record: dict) -> str:
    t = record.get("test") or {}
    text = f"acc {t['acc']:.2f}%" if t.get("acc") is not None else "no test accuracy"
    for key in ("d_util", "d_speed"):
        if t.get(key) is not None:
            text += f", {key} {t[key]:+.3f}"
    return text


def record_failure(run_dir: Path, cfg: RunConfig, error: str) -> None:
    """Mark the run failed with ``error``, keeping what its record already holds (the engine writes failures that
    happen inside the training loop itself; this covers the set-up, e.g. a missing file, and crashed workers)."""
    record = read_record(run_dir) or new_record(cfg)
    record.update(status="failed", error=error)
    write_json(Path(run_dir) / RECORD_NAME, record)


def execute(config: dict, run_dir: str | Path, retry_failed: bool = False) -> Outcome:
    """Train the run ``config`` (a RunConfig as a dict) in ``run_dir`` unless it is done, failed (and not
    ``retry_failed``) or locked by another process. Exceptions are recorded and returned, never raised
    (an interruption, Ctrl-C, still propagates)."""
    return execute_pack([config], [run_dir], retry_failed)[0]


def execute_pack(configs: list[dict], run_dirs: list[str | Path], retry_failed: bool = False) -> list[Outcome]:
    """As :func:`execute` for each run, but the runs that need training train together, packed into one network
    (the configs must be packable, :mod:`repro.engine.packing`), or alone when only one does. Every run is locked
    for the whole pack; the pack's output goes to each run's ``train.log``."""
    run_dirs = [Path(d) for d in run_dirs]
    outcomes: list[Outcome | None] = [None] * len(configs)
    with contextlib.ExitStack() as locks:
        wanted = []
        for i, run_dir in enumerate(run_dirs):
            if not locks.enter_context(RunLock(run_dir)).acquired:
                outcomes[i] = Outcome(run_dir.name, "busy", summary="another process is training it")
                continue
            record = read_record(run_dir)
            state = state_of(record)
            if state == "done":
                outcomes[i] = Outcome(run_dir.name, "skipped-done", summary=summarize(record))
            elif state == "failed" and not retry_failed:
                outcomes[i] = Outcome(run_dir.name, "skipped-failed", error=record.get("error"))
            else:
                wanted.append(i)
        if wanted:
            for i, outcome in zip(
                wanted, _train([from_dict(configs[i]) for i in wanted], [run_dirs[i] for i in wanted]), strict=True
            ):
                outcomes[i] = outcome
    return outcomes


def _train(cfgs: list[RunConfig], run_dirs: list[Path]) -> list[Outcome]:
    """Train locked runs (one alone, several packed); their outcomes, failures recorded in each record."""
    from ..engine import train_runs  # torch is imported by the processes that train

    start = time.perf_counter()
    with contextlib.ExitStack() as files:
        logs = [files.enter_context(open(d / LOG_NAME, "a")) for d in run_dirs]
        try:
            with contextlib.redirect_stdout(_Tee(logs)), contextlib.redirect_stderr(_Tee(logs)):
                if len(cfgs) > 1:
                    print(f"packed with {', '.join(d.name for d in run_dirs)}")
                records = train_runs(cfgs, run_dirs)
        except Exception as exc:
            error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            for log in logs:
                traceback.print_exc(file=log)
            for cfg, run_dir in zip(cfgs, run_dirs, strict=True):
                record_failure(run_dir, cfg, error)
            seconds = time.perf_counter() - start
            return [Outcome(d.name, "failed", seconds, error=error) for d in run_dirs]
    seconds = time.perf_counter() - start
    return [
        Outcome(d.name, "done", seconds, summarize(r))
        if r["status"] == "done"
        else Outcome(d.name, "failed", seconds, error=r["error"])  # diverged: the others of its pack went on
        for d, r in zip(run_dirs, records, strict=True)
    ]


class _Tee:
    """A text stream writing to several files (a pack's output into each of its runs' logs)."""

    def __init__(self, files):
        self.files = files

    def write(self, text: str) -> int:
        for f in self.files:
            f.write(text)
        return len(text)

    def flush(self) -> None:
        for f in self.files:
            f.flush()
