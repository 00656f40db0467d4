"""Writes ``tests/golden/sweep_results/``: a miniature sweeps' results directory (manifests + small records, no
checkpoints) with values chosen so the figure and conjecture tests know the answer:

- lr-greedy (CMNIST, small): distinct pair d_util in [0.2, 0.4] (its CI excludes 0); identical pairs symmetric
  around 0 (their CIs contain 0); d_speed = 0.6 d_util - 0.05 exactly (Spearman ρ = +1).
- guided-vs-vanilla: the lr-greedy vanilla runs plus guided runs with d_util near 0.
- l1: |d_util| and R(f) strictly increasing with λ (ρ(R(f), |d_util|) = +1).
- window, tolerance: guided runs, one per value.
- protocol: vanilla (default variant only), random and guided × {default, all-passes, reference} × 2 seeds, with
  ``test_reference``: means known by construction (see ``PROTOCOL_ACCS``).
- One manifest member has no record, one is unfinished, one failed (counted as missing, never plotted).

Run from the repository root: ``python tests/golden/make_sweep_results.py``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

ROOT = Path(__file__).parent / "sweep_results"
LRS = (0.0001, 0.001, 0.01, 0.1)
#: protocol study: (algorithm, variant) -> (test.acc, test_reference.acc) of seed 0; seed 1 adds 2 to both.
PROTOCOL_ACCS = {
    ("vanilla", "default"): (45.0, 45.0),
    ("random", "default"): (66.0, 84.0),
    ("random", "all-passes"): (60.0, 80.0),
    ("random", "reference"): (58.0, 76.0),
    ("guided", "default"): (73.0, 92.0),
    ("guided", "all-passes"): (72.0, 93.0),
    ("guided", "reference"): (70.0, 90.0),
}


def record(dataset, algorithm, modalities, seed, d_util, status="done", acc=50.0, r_f=0.0, **config):
    d_speed = None if d_util is None else round(0.6 * d_util - 0.05, 6)
    test = {"acc": acc, "d_util": d_util, "d_speed": d_speed, "r_f": r_f}
    return {
        "dataset": dataset,
        "setting": dataset,
        "algorithm": algorithm,
        "seed": seed,
        "modalities": modalities.split(","),
        "config": {"modalities": modalities, "seed": seed, **config},
        "status": status,
        "error": "RuntimeError: boom" if status == "failed" else None,
        "test": test if status == "done" else None,
    }


def main() -> None:
    shutil.rmtree(ROOT, ignore_errors=True)
    manifests: dict[str, list[dict]] = {}
    records: dict[str, dict] = {}

    def add(study, name, rec, pair="distinct", **params):
        records[name] = rec
        manifests.setdefault(study, []).append(
            {
                "dir": f"runs/{name}",
                "spec_hash": name[-4:],
                "dataset": rec["dataset"],
                "algorithm": rec["algorithm"],
                "modalities": ",".join(rec["modalities"]),
                "pair": pair,
                "params": params,
            }
        )

    symmetric = (-0.06, 0.05, -0.03, 0.02, -0.01, 0.04, -0.05, 0.03)
    for i, (lr, seed) in enumerate((lr, s) for lr in LRS for s in (0, 1)):
        d = round(0.2 + 0.025 * i, 3)
        for study in ("lr-greedy", "lr-vs-dutil", "guided-vs-vanilla"):
            add(
                study,
                f"cmnist-vanilla-mono+gray-{i:04d}",
                record("cmnist", "vanilla", "mono,gray", seed, d, acc=40.0 + i, lr=lr),
                lr=lr,
                seed=seed,
            )
        add(
            "guided-vs-vanilla",
            f"cmnist-guided-mono+gray-{i:04d}",
            record("cmnist", "guided", "mono,gray", seed, round(0.01 * (i - 4), 3), acc=80.0 + i, lr=lr),
            lr=lr,
            seed=seed,
        )
        for k, mods in enumerate(("gray,gray", "mono,mono")):
            add(
                "lr-greedy",
                f"cmnist-vanilla-{mods.replace(',', '+')}-{i:04d}",
                record("cmnist", "vanilla", mods, seed, symmetric[(i + 3 * k) % 8], lr=lr),
                "identical",
                lr=lr,
                seed=seed,
            )
    for i, lam in enumerate((1e-9, 1e-7, 1e-5, 1e-3)):
        for seed in (0, 1):
            d = round(0.1 + 0.1 * i + 0.02 * seed, 3)
            add(
                "l1",
                f"cmnist-vanilla-mono+gray-l1-{i}{seed}",
                record("cmnist", "vanilla", "mono,gray", seed, d, r_f=round(0.05 * i + 0.01 * seed, 3), l1=lam),
                l1=lam,
                seed=seed,
            )
    for q in (1, 5, 10, 20, 50):
        add(
            "window",
            f"cmnist-guided-mono+gray-q{q}",
            record("cmnist", "guided", "mono,gray", 0, round(0.002 * q, 3), acc=90.0 - 0.1 * q, window=q),
            window=q,
            seed=0,
        )
    for f in (0.01, 0.1, 0.25, 0.5, 1.0):
        add(
            "tolerance",
            f"cmnist-guided-mono+gray-a{f:g}",
            record("cmnist", "guided", "mono,gray", 0, round(0.3 * f, 3), acc=90.0 - f, alpha=0.3 * f),
            alpha_fraction=f,
            alpha=round(0.3 * f, 3),
            seed=0,
        )
    for (algorithm, variant), (acc, acc_reference) in PROTOCOL_ACCS.items():
        for seed in (0, 1):
            rec = record("cmnist", algorithm, "mono,gray", seed, 0.1, acc=acc + 2 * seed)
            rec["test_reference"] = {"acc": acc_reference + 2 * seed, "state": "rebalance_m1", "epoch": 3}
            add("protocol", f"cmnist-{algorithm}-mono+gray-{variant}-{seed}", rec, variant=variant, seed=seed)
    # Manifest members that must not be plotted: never started, unfinished, failed.
    manifests["lr-greedy"].append(
        {
            "dir": "runs/cmnist-vanilla-mono+gray-absent",
            "spec_hash": "absent",
            "dataset": "cmnist",
            "algorithm": "vanilla",
            "modalities": "mono,gray",
            "pair": "distinct",
            "params": {"lr": 1.0, "seed": 0},
        }
    )
    for name, status in (
        ("cmnist-vanilla-mono+gray-running", "running"),
        ("cmnist-vanilla-mono+gray-failed", "failed"),
    ):
        add("lr-greedy", name, record("cmnist", "vanilla", "mono,gray", 0, None, status=status, lr=1.0), lr=1.0, seed=0)

    for name, rec in records.items():
        path = ROOT / "runs" / name / "record.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rec, indent=1) + "\n")
    figures = {
        "lr-greedy": "Fig. 2, Fig. A.2 (§5.2)",
        "lr-vs-dutil": "Fig. A.3 (§5.2)",
        "guided-vs-vanilla": "Fig. 4 (§5.4)",
        "l1": "Fig. 3, Fig. A.4 (§5.3)",
        "window": "Fig. A.5",
        "tolerance": "Fig. A.6",
        "protocol": "Table 1 (docs/fidelity.md)",
    }
    for study, runs in manifests.items():
        manifest = {
            "study": study,
            "budget": "small",
            "figure": figures[study],
            "title": f"miniature {study}",
            "datasets": ["cmnist"],
            "skipped": {},
            "runs": runs,
        }
        path = ROOT / "studies" / f"{study}-small.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":
    main()
