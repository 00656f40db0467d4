"""Train as much of the CMNIST Table-1 column (4 algorithms x 3 seeds) as fits in a time budget, timing each run.

Used by scripts/gpu_check.sh. vanilla, random and guided train packed (one process per algorithm, its 3 seeds in one
network: ``repro train-packed``); RUBi, which does not pack, as 3 ordinary runs. The six processes share the
device, started together. A process still running at the deadline is stopped (its runs resume from their
checkpoints on the next call). Writes <out>/column_times.json: per process the command, wall seconds, exit
status, and per run its epochs, summed epoch seconds, status and test accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PACKED = ("guided", "vanilla", "random")
SEEDS = (0, 1, 2)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--runs", required=True, help="run folders: <runs>/cmnist/<algorithm>/seed<N>")
    ap.add_argument("--out", required=True, help="where column_times.json goes")
    ap.add_argument("--budget", type=float, default=480.0, help="seconds")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--extra", default="", help="extra options for every run, e.g. '--max-epochs 2'")
    args = ap.parse_args()
    repro = [sys.executable, "-m", "repro"]
    common = [
        "--dataset",
        "cmnist",
        "--data",
        args.data,
        "--device",
        args.device,
        "--threads",
        str(args.threads),
        "--progress",
        "false",
        *args.extra.split(),
    ]
    pattern = f"{args.runs}/{{setting}}/{{algorithm}}/seed{{seed}}"
    jobs = {
        f"{a}-packed": repro
        + ["train-packed", "--algorithm", a, "--seeds", ",".join(map(str, SEEDS)), "--out", pattern, *common]
        for a in PACKED
    }
    jobs.update(
        {
            f"rubi-seed{s}": repro
            + ["train", "--algorithm", "rubi", "--seed", str(s), "--out", f"{args.runs}/cmnist/rubi/seed{s}", *common]
            for s in SEEDS
        }
    )
    Path(args.out).mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    procs = {}
    for name, cmd in jobs.items():
        log = open(Path(args.out) / f"train-{name}.log", "w")
        procs[name] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True), log)
    ended: dict[str, float] = {}
    while len(ended) < len(procs) and time.perf_counter() - start < args.budget:
        for name, (p, _) in procs.items():
            if name not in ended and p.poll() is not None:
                ended[name] = time.perf_counter() - start
        time.sleep(0.5)
    for p, log in procs.values():
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)  # this process group only: the job we started
            p.wait()
        log.close()
    report = {"budget_s": args.budget, "wall_s": round(time.perf_counter() - start, 1), "processes": {}, "runs": {}}
    for name, (p, _) in procs.items():
        report["processes"][name] = {
            "command": " ".join(jobs[name]),
            "returncode": p.returncode,
            "wall_s": round(ended[name], 1) if name in ended else None,
        }
    for record_path in sorted(Path(args.runs).rglob("record.json")):
        r = json.loads(record_path.read_text())
        report["runs"][str(record_path.parent.relative_to(args.runs))] = {
            "status": r["status"],
            "epochs": len(r["epochs"]),
            "stopped": r.get("stopped"),
            "train_s": round(sum(r["timing"]["epoch_seconds"]), 1),
            "test_s": r["timing"].get("test_seconds"),
            "pack_size": r["timing"].get("pack_size"),
            "test_acc": (r.get("test") or {}).get("acc"),
            "d_util": (r.get("test") or {}).get("d_util"),
        }
    (Path(args.out) / "column_times.json").write_text(json.dumps(report, indent=2) + "\n")
    done = sum(r["status"] == "done" for r in report["runs"].values())
    print(f"column: {done}/12 runs done in {report['wall_s']} s (budget {args.budget} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
