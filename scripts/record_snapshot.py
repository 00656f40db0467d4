"""Behaviour snapshot: train a fixed set of small runs through the command line and keep their records without the
fields that legitimately change between two machines or two code versions (timings, versions, absolute paths).

A refactoring that must not change what the engine computes is checked by running this before and after it and
comparing the two folders (``diff -r BEFORE AFTER``): every record must be identical to the last digit.

    python scripts/record_snapshot.py --out /tmp/before [--cmnist data/cmnist.h5]

The runs: CMNIST (first 512 training images, 256 val/test, 3 epochs) with vanilla, RUBi, random, guided, guided
under ``--protocol reference`` and a uni-modal vanilla run; a ModelNet40 and an NVGesture guided run on the
miniatures of the tests (built here, in the real raw layouts); and a pack of two guided CMNIST seeds
(``repro train-packed``). CPU, about two minutes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SMALL = [
    "--train-limit",
    "512",
    "--eval-limit",
    "256",
    "--max-epochs",
    "3",
    "--threads",
    "1",
    "--progress",
    "false",
    "--device",
    "cpu",
]
RUNS = {
    "cmnist-vanilla": ["--dataset", "cmnist", "--algorithm", "vanilla"],
    "cmnist-rubi": ["--dataset", "cmnist", "--algorithm", "rubi"],
    "cmnist-random": ["--dataset", "cmnist", "--algorithm", "random"],
    "cmnist-guided": ["--dataset", "cmnist", "--algorithm", "guided"],
    "cmnist-guided-reference": ["--dataset", "cmnist", "--algorithm", "guided", "--protocol", "reference"],
    "cmnist-unimodal-gray": ["--dataset", "cmnist", "--algorithm", "vanilla", "--modalities", "gray"],
}
#: Fields that name the machine or the folders rather than the computation: timings, versions, and the data file's
#: path with the run identity hashed from it (the rest of the configuration is compared).
DROPPED = ("timing", "versions", "data_provenance", "spec_hash")


def _repro(*args: str) -> None:
    subprocess.run([str(Path(sys.executable).parent / "repro"), *args], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)


def _miniatures(tmp: Path) -> dict[str, Path]:
    sys.path.insert(0, str(ROOT / "tests"))
    from modelnet_fixtures import write_mini_modelnet
    from nvgesture_fixtures import make_raw

    modelnet = tmp / "modelnet40.h5"
    _repro("prep", "modelnet40", "--raw", str(write_mini_modelnet(tmp / "ModelNet40")), "--out", str(modelnet))
    nvgesture = tmp / "nvgesture.h5"
    (tmp / "nvGesture").mkdir()
    _repro("prep", "nvgesture", "--raw", str(make_raw(tmp / "nvGesture")), "--out", str(nvgesture))
    return {"modelnet40": modelnet, "nvgesture": nvgesture}


def _normalised(record_path: Path) -> dict:
    record = json.loads(record_path.read_text())
    for key in DROPPED:
        record.pop(key, None)
    record["config"].pop("data", None)
    return record


def _keep(record: Path, out: Path) -> None:
    out.write_text(json.dumps(_normalised(record), indent=1, sort_keys=True) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cmnist", type=Path, default=ROOT / "data" / "cmnist.h5")
    parser.add_argument("--only", default="", help="comma-separated run names (default: all, packed included)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        mini = _miniatures(tmp)
        runs = dict(RUNS)
        runs["modelnet40-guided"] = [
            "--dataset",
            "modelnet40",
            "--algorithm",
            "guided",
            "--data",
            str(mini["modelnet40"]),
        ]
        runs["nvgesture-guided"] = [
            "--dataset",
            "nvgesture",
            "--algorithm",
            "guided",
            "--data",
            str(mini["nvgesture"]),
            "--workers",
            "0",
        ]
        only = set(filter(None, args.only.split(",")))
        runs = {k: v for k, v in runs.items() if not only or k in only}
        for name, flags in runs.items():
            data = [] if "--data" in flags else ["--data", str(args.cmnist)]
            _repro("train", *flags, *data, *SMALL, "--out", str(tmp / name))
            _keep(tmp / name / "record.json", args.out / f"{name}.json")
            print(f"{name}: trained", flush=True)
        if not only or "packed" in only:
            packed = ["--dataset", "cmnist", "--algorithm", "guided", "--seeds", "0,1", "--data", str(args.cmnist)]
            _repro("train-packed", *packed, *SMALL, "--out", str(tmp / "packed" / "seed{seed}"))
            for seed in (0, 1):
                _keep(tmp / "packed" / f"seed{seed}" / "record.json", args.out / f"packed-seed{seed}.json")
            print("packed: trained", flush=True)
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"records in {args.out}")


if __name__ == "__main__":
    main()
