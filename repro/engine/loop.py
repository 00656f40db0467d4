"""The one training loop, for one run or K packed runs: ``train(cfg, out)`` and ``train_runs(cfgs, outs)``.

Each epoch, every active run is trained by one stepper (:class:`.single.SingleStepper` for one run,
:class:`.packed.StackedStepper` for several, which share one stacked network), then each run ends its epoch on its
own (:meth:`.run.Run.end_epoch`). A run that meets its stop rule is tested and leaves the pack; one failure handler
records why the others stopped.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..config import RunConfig
from .packed import StackedStepper
from .packing import check_packable
from .run import Environment, Run
from .single import SingleStepper


def train_runs(cfgs: list[RunConfig], out_dirs: list[str | Path], force: bool = False) -> list[dict]:
    """Train the runs ``cfgs`` into ``out_dirs`` (several: as one pack, :mod:`.packing`); their records, in order.
    Finished runs are returned as they are; interrupted ones resume from their checkpoints (packed or not)."""
    if len(cfgs) != len(out_dirs):
        raise ValueError("one output directory per run")
    packed = len(cfgs) > 1
    if packed:
        check_packable(cfgs)
    runs = [Run(c, o, force=force, label=Path(o).name if packed else "") for c, o in zip(cfgs, out_dirs, strict=True)]
    todo = []
    for run in runs:
        done = run.finished_record()
        if done is None:
            todo.append(run)
        elif not packed:
            print(f"{run.out}: already done (test acc {done['test']['acc']:.2f}%), nothing to do")
    if not todo:
        return [r.record for r in runs]
    env = Environment.open(cfgs[0])
    try:
        for run in todo:
            run.start(env, pack_size=len(todo))
        while True:
            for run in todo:
                if not run.finished and (stop := run.stop_reason()) is not None:
                    run.finish(stop)
            active = [r for r in todo if not r.finished]
            if not active:
                break
            started = time.perf_counter()
            stepper = SingleStepper(active[0]) if len(active) == 1 else StackedStepper(active)
            for run, tally in zip(active, stepper.train_epoch(), strict=True):
                run.end_epoch(tally, started)
    except BaseException as exc:
        for run in todo:
            run.fail(exc)
        raise
    return [r.record for r in runs]


def train(cfg: RunConfig, out_dir: str | Path, force: bool = False) -> dict:
    """Train (or resume, or return the finished record of) one run."""
    return train_runs([cfg], [out_dir], force=force)[0]
