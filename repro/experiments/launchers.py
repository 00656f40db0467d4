"""Launchers for a sweep's runs: ``dry`` (print the plan), ``local`` (N worker processes on this machine, one per
GPU or per share of the CPU cores) and ``slurm`` (submitit job arrays, several runs per array task).

Each launcher first writes the study's manifest (``<results>/studies/<study>-<budget>.json``: the runs and the
values they sweep, which the figures read), then hands out only the runs that are not done — and not failed,
unless ``retry_failed`` — so re-launching an interrupted sweep runs only the rest. Every run trains in its own
directory ``<results>/runs/<name>-<spec hash>`` under an exclusive lock (:mod:`repro.experiments.runner`), so two
launchers on one results directory never train the same run and never write each other's records.

The local launcher's workers never outlive it (:func:`exit_with_parent`): killed by any signal, SIGKILL included, it
takes its workers with it, and a relaunch resumes their runs from their last checkpoints.
"""

from __future__ import annotations

import ctypes
import json
import multiprocessing as mp
import os
import queue
import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from ..config import from_dict
from ..engine.packing import group_into_packs, pack_key
from ..rundir import MANIFEST_DIR, RUNS_DIR, atomic_write_text
from .runner import Outcome, execute_pack, record_failure, run_state
from .sweeps import Plan, RunSpec


def _print(message: str) -> None:
    print(message, flush=True)


@dataclass
class Task:
    index: int
    config: dict
    run_dir: str
    label: str  # the swept values, for progress lines


Unit = list[Task]  # what one worker trains at once: one run, or a pack of runs (``--pack K``, repro.engine.packed)


def manifest_path(results: Path, plan: Plan) -> Path:
    return Path(results) / MANIFEST_DIR / f"{plan.study.name}-{plan.budget}.json"


def write_manifest(results: Path, plan: Plan) -> Path:
    path = manifest_path(results, plan)
    atomic_write_text(path, json.dumps(plan.manifest(), indent=1) + "\n")
    return path


def _label(spec: RunSpec) -> str:
    values = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in spec.params.items())
    return f"{spec.cfg.modalities.replace(',', '+')}, {values}"


def states(results: Path, plan: Plan) -> list[str]:
    """Each run's state (:func:`repro.experiments.runner.run_state`), in the plan's order."""
    return [run_state(Path(results) / RUNS_DIR / s.name) for s in plan.specs]


def todo(
    results: Path, plan: Plan, retry_failed: bool, threads: int = 0, device: str = "auto", log=_print
) -> list[Task]:
    """The runs to hand out, after one summary line of the sweep's state."""
    found = states(results, plan)
    counts = Counter(found)
    wanted = {"pending", "partial"} | ({"failed"} if retry_failed else set())
    tasks = []
    for i, (spec, state) in enumerate(zip(plan.specs, found, strict=True)):
        if state in wanted:
            config = asdict(spec.cfg)
            config.update(threads=threads, device=device, progress=False)
            tasks.append(Task(i, config, str(Path(results) / RUNS_DIR / spec.name), _label(spec)))
    parts = [f"{counts[s]} {s}" for s in ("done", "failed", "running", "partial", "pending") if counts[s]]
    note = "" if retry_failed or not counts["failed"] else " (failed runs are skipped; --retry-failed reruns them)"
    log(
        f"{plan.study.name} [{plan.budget}]: {len(plan.specs)} runs: {', '.join(parts) or 'none'}{note}; "
        f"{len(tasks)} to run"
    )
    for dataset, reason in plan.skipped.items():
        log(f"  skipped dataset {dataset}: {reason}")
    return tasks


def into_units(tasks: list[Task], pack: int, log=_print) -> list[Unit]:
    """The tasks as units: packs of up to ``pack`` runs that may train together (:mod:`repro.engine.packing`), the
    others alone; ``pack`` 1: every run alone."""
    units = group_into_packs(tasks, lambda t: pack_key(from_dict(t.config)), pack)
    if pack > 1 and tasks:
        packed = sum(len(u) for u in units if len(u) > 1)
        log(
            f"--pack {pack}: {packed} of {len(tasks)} runs in {sum(len(u) > 1 for u in units)} pack(s), "
            f"{len(tasks) - packed} alone"
        )
    return units


def run_unit(unit: Unit, retry_failed: bool) -> list[Outcome]:
    """Train one unit: its runs packed together, or the one run alone (repro.experiments.runner.execute_pack)."""
    return execute_pack([t.config for t in unit], [t.run_dir for t in unit], retry_failed)


# --- dry --------------------------------------------------------------------------------------------------------
def launch_dry(plan: Plan, results: Path, retry_failed: bool = False, pack: int = 1, log=_print) -> list[Task]:
    """Print the plan — every run, its state and its directory — and run nothing (nothing is written either)."""
    found = states(results, plan)
    log(f"{plan.study.name} [{plan.budget}] — {plan.study.figure}: {plan.study.title}")
    for spec, state in zip(plan.specs, found, strict=True):
        log(f"  {state:8s} {RUNS_DIR}/{spec.name}  {_label(spec)}")
    tasks = todo(results, plan, retry_failed, log=log)
    into_units(tasks, pack, log=log)
    return tasks


# --- local ------------------------------------------------------------------------------------------------------
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def exit_with_parent(parent_pid: int, use_prctl: bool = True, interval: float = 1.0) -> str:
    """End this process when its parent, ``parent_pid``, dies, however it dies (SIGKILL included, which lets the
    parent clean up nothing). On Linux the kernel kills this process with SIGKILL the moment its parent dies
    (``prctl(PR_SET_PDEATHSIG)``); without prctl (another system, or ``use_prctl`` False), a daemon thread checks
    the parent's pid every ``interval`` seconds and ends the process (``os._exit``). A parent already dead when
    this is called (before prctl took effect) ends the process at once. Returns how: ``"prctl"`` or ``"watchdog"``.

    PR_SET_PDEATHSIG fires when the *thread* that started this process ends, so the parent must start its workers
    from a thread that outlives them (the local launcher starts and waits for them in one thread). It is not
    inherited by this process's own children (:func:`_guarded` arms them as they are forked)."""
    if use_prctl and sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(PR_SET_PDEATHSIG, *(ctypes.c_ulong(a) for a in (signal.SIGKILL, 0, 0, 0))) == 0
        except (OSError, AttributeError):
            armed = False
        if armed:
            if os.getppid() != parent_pid:  # died before prctl: no signal will come
                os._exit(1)
            return "prctl"

    def watch() -> None:
        while os.getppid() == parent_pid:  # an orphan's parent becomes init (or a subreaper): never parent_pid
            time.sleep(interval)
        os._exit(1)

    if os.getppid() != parent_pid:
        os._exit(1)
    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
    return "watchdog"


def _start_worker(ctx, target, args: tuple):
    """Start ``target(*args)`` in a new process of ``ctx`` that ends with this one (:func:`exit_with_parent`).
    Not daemonic: a worker may start processes of its own (a DataLoader's workers, NVGesture), which a daemonic
    process may not; :func:`_run_workers` joins or terminates its workers itself."""
    p = ctx.Process(target=_guarded, args=(os.getpid(), target, *args), daemon=False)
    p.start()
    return p


def _guarded(launcher_pid: int, target, *args) -> None:
    """A worker's first steps: end with the launcher, start its own processes as a lone training process would
    (``repro train``: a spawned process would otherwise inherit ``spawn`` as its default), and have every process it
    forks end with it at once. A torch DataLoader's workers only check their parent every 5 s, and one that starts
    after its parent died takes init for its parent and waits forever; forked, they also share the run's lock."""
    exit_with_parent(launcher_pid)
    mp.set_start_method(None, force=True)  # this platform's default (fork on Linux up to Python 3.13)
    # Armed in the child as it is forked, before it runs anything; PR_SET_PDEATHSIG follows the forking thread,
    # and the engine forks (a DataLoader's iterator) from the worker's main thread.
    os.register_at_fork(before=_note_forking_pid, after_in_child=_follow_forking_parent)
    target(*args)


_forking_pid = 0  # in a forked child: its parent's pid (set by the parent just before the fork)


def _note_forking_pid() -> None:
    global _forking_pid
    _forking_pid = os.getpid()


def _follow_forking_parent() -> None:
    exit_with_parent(_forking_pid)


def _worker(slot: int, units, events, retry_failed: bool, threads: int, device: str) -> None:
    """One worker process: its own thread count or GPU, then trains units until it draws the end marker (None)."""
    import torch

    if device == "auto" and torch.cuda.is_available():
        device = f"cuda:{slot % torch.cuda.device_count()}"
    if threads > 0:
        torch.set_num_threads(threads)
    while (unit := units.get()) is not None:
        events.put(("start", slot, [t.index for t in unit]))
        for task in unit:
            task.config.update(device=device, threads=threads)
        events.put(("end", slot, [t.index for t in unit], run_unit(unit, retry_failed)))


def _line(done: int, total: int, outcome: Outcome, task: Task) -> str:
    head = f"[{done}/{total}] {outcome.state:6s} {Path(task.run_dir).name} ({task.label})"
    if outcome.state == "failed":
        return f"{head}: {outcome.error}"
    return f"{head}: {outcome.summary}" + (f" in {outcome.seconds:.0f} s" if outcome.seconds else "")


def launch_local(
    plan: Plan,
    results: Path,
    workers: int = 1,
    threads: int = 0,
    device: str = "auto",
    retry_failed: bool = False,
    pack: int = 1,
    log=_print,
) -> list[Outcome]:
    """Run the sweep's remaining runs on ``workers`` processes, ``pack`` runs at a time where they may train
    packed. ``threads`` 0: the CPU cores shared evenly. A worker that dies (out of memory, a signal) has its runs
    recorded as failed and is replaced. The workers die with the launcher (:func:`exit_with_parent`), whatever kills
    it: their runs are left resumable (``partial``) for the next launch."""
    write_manifest(results, plan)
    if threads <= 0:
        threads = max(1, (os.cpu_count() or 1) // workers)
    tasks = todo(results, plan, retry_failed, threads, device, log=log)
    if not tasks:
        return []
    units = into_units(tasks, pack, log=log)
    workers = max(1, min(workers, len(units)))
    log(f"{len(tasks)} runs on {workers} worker(s) × {threads} thread(s); each run logs to <run dir>/train.log")
    begun = time.perf_counter()

    def progress(line: str) -> None:  # the outcome line, with the time so far and a naive estimate of the rest
        done = int(line[1 : line.index("/")])
        elapsed = time.perf_counter() - begun
        log(f"{line}  [{elapsed / 60:.1f} min, ~{elapsed / done * (len(tasks) - done) / 60:.0f} min left]")

    if workers == 1:  # in this process: no start-up cost, and a debugger works
        outcomes = _run_here(units, len(tasks), retry_failed, progress)
    else:
        outcomes = _run_workers(units, len(tasks), workers, retry_failed, threads, device, progress)
    counts = Counter(o.state for o in outcomes)
    log(f"finished in {time.perf_counter() - begun:.0f} s: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    return outcomes


def _run_here(units: list[Unit], total: int, retry_failed: bool, log) -> list[Outcome]:
    outcomes = []
    for unit in units:
        for task, outcome in zip(unit, run_unit(unit, retry_failed), strict=True):
            outcomes.append(outcome)
            log(_line(len(outcomes), total, outcome, task))
    return outcomes


def _run_workers(
    units: list[Unit], total: int, workers: int, retry_failed: bool, threads: int, device: str, log
) -> list[Outcome]:
    ctx = mp.get_context("spawn")  # no fork of a process that may hold torch threads
    unit_q, events = ctx.Queue(), ctx.Queue()
    for u in units:
        unit_q.put(u)
    by_index = {t.index: t for u in units for t in u}

    def start(slot: int):  # from this thread, which waits for the workers (PR_SET_PDEATHSIG: exit_with_parent)
        return _start_worker(ctx, _worker, (slot, unit_q, events, retry_failed, threads, device))

    procs = {slot: start(slot) for slot in range(workers)}
    for _ in procs:
        unit_q.put(None)
    in_flight: dict[int, list[int]] = {}
    outcomes: list[Outcome] = []
    try:
        while len(outcomes) < total:
            try:
                event = events.get(timeout=1.0)
            except queue.Empty:
                event = None
            if event is not None and event[0] == "start":
                in_flight[event[1]] = event[2]
            elif event is not None:
                _, slot, indices, unit_outcomes = event
                in_flight.pop(slot, None)
                for index, outcome in zip(indices, unit_outcomes, strict=True):
                    outcomes.append(outcome)
                    log(_line(len(outcomes), total, outcome, by_index[index]))
            for slot, p in list(procs.items()):
                if p.is_alive() or slot not in in_flight or not events.empty():
                    continue
                error = f"worker process died (exit code {p.exitcode})"
                for index in in_flight.pop(slot):  # died during a unit: record its runs, replace the worker
                    task = by_index[index]
                    record_failure(Path(task.run_dir), from_dict(task.config), error)
                    outcomes.append(Outcome(Path(task.run_dir).name, "failed", error=error))
                    log(_line(len(outcomes), total, outcomes[-1], task))
                procs[slot] = start(slot)
                unit_q.put(None)
            if event is None and len(outcomes) < total and not any(p.is_alive() for p in procs.values()):
                raise RuntimeError("every worker exited with runs left; see the lines above")
    finally:
        for p in procs.values():
            p.join(timeout=1 if len(outcomes) < total else None)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
            if p.is_alive():  # not daemonic: interpreter exit would wait for it
                p.kill()
    return outcomes


# --- slurm (submitit) -------------------------------------------------------------------------------------------
def run_chunk(units: list[Unit], retry_failed: bool, cwd: str) -> list[Outcome]:
    """One array task: its units (runs, or packs of runs) one after the other (submitit pickles this function and
    its arguments)."""
    os.chdir(cwd)  # the run configs hold data paths relative to where the sweep was launched
    total = sum(len(u) for u in units)
    outcomes = []
    for unit in units:
        for task, outcome in zip(unit, run_unit(unit, retry_failed), strict=True):
            outcomes.append(outcome)
            print(_line(len(outcomes), total, outcome, task), flush=True)
    return outcomes


@dataclass
class SlurmOptions:
    partition: str | None = None
    timeout_min: int = 24 * 60
    gpus_per_task: int = 1
    cpus_per_task: int = 8
    mem_gb: int = 32
    runs_per_task: int = 4  # units (runs, or packs with --pack) per array task
    array_parallelism: int = 64
    cluster: str = "slurm"  # submitit's executor; "local" runs the array on this machine (tests)


def launch_slurm(
    plan: Plan,
    results: Path,
    options: SlurmOptions,
    retry_failed: bool = False,
    wait: bool = False,
    pack: int = 1,
    log=_print,
):
    """Submit the remaining runs as one job array, ``runs_per_task`` units (runs, or packs of up to ``pack`` runs)
    per array task; return the jobs. With ``wait``, block until every task has finished and log each run's
    outcome."""
    import submitit

    write_manifest(results, plan)
    device = "cpu" if options.gpus_per_task == 0 else "auto"
    tasks = todo(results, plan, retry_failed, threads=options.cpus_per_task, device=device, log=log)
    if not tasks:
        return []
    units = into_units(tasks, pack, log=log)
    k = max(1, options.runs_per_task)
    chunks = [units[i : i + k] for i in range(0, len(units), k)]
    folder = Path(results) / "slurm" / "%j"
    executor = submitit.AutoExecutor(folder=folder, cluster=options.cluster)
    params = dict(
        name=f"repro-{plan.study.name}",
        timeout_min=options.timeout_min,
        gpus_per_node=options.gpus_per_task,
        cpus_per_task=options.cpus_per_task,
        mem_gb=options.mem_gb,
        slurm_array_parallelism=options.array_parallelism,
    )
    if options.partition:
        params["slurm_partition"] = options.partition
    executor.update_parameters(**params)
    n = len(chunks)
    jobs = executor.map_array(run_chunk, chunks, [retry_failed] * n, [os.getcwd()] * n)
    unit = "packs" if pack > 1 else "runs"
    log(
        f"submitted {len(tasks)} runs as {n} array task(s) of up to {k} {unit}: job {jobs[0].job_id.split('_')[0]}; "
        f"logs in {folder.parent}/<job id>/"
    )
    if wait:
        outcomes = [o for job in jobs for o in job.result()]
        counts = Counter(o.state for o in outcomes)
        log("all array tasks finished: " + ", ".join(f"{c} {s}" for s, c in counts.items()))
    return jobs
