"""``repro demo`` (``make demo``): the greedy effect in minutes on a laptop CPU.

Prepares Colored-and-gray MNIST if missing, trains vanilla and guided on a reduced profile (below), and prints
test accuracy under both evaluation protocols (standard, and the authors' code's: docs/fidelity.md) and d_util per
algorithm. The profile keeps the paper's CMNIST settings (lr 0.01, momentum 0.9,
batch 128, alpha 0.1, Q 5) and shortens the run: fewer training samples and an epoch cap.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from .hparams import resolve

PROFILE = dict(train_limit=20000, max_epochs=12)
ALGORITHMS = ("vanilla", "guided")


def _table(records: dict[str, dict]) -> str:
    """Both evaluation protocols (docs/fidelity.md): standard (regular fusion) and reference (the training state,
    as the authors' code evaluated), then the diagnostics of the standard checkpoint."""
    lines = [
        "| algorithm | test acc (%), standard | test acc (%), reference [state] | d_util | u(m1|m0) | u(m0|m1) "
        "| d_speed | epochs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in records.items():
        t, ref = r["test"], r["test_reference"]
        lines.append(
            f"| {name} | {t['acc']:.2f} | {ref['acc']:.2f} [{ref['state']}] | {t['d_util']:+.3f} | "
            f"{t['u_m1_given_m0']:+.3f} | {t['u_m0_given_m1']:+.3f} | {t['d_speed']:+.3f} | "
            f"{len(r['epochs'])} |"
        )
    return "\n".join(lines)


@click.command()
@click.option(
    "--data", type=click.Path(dir_okay=False, path_type=Path), default=Path("data/cmnist.h5"), show_default=True
)
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), default=Path("results/demo"), show_default=True
)
@click.option("--seed", type=int, default=0, show_default=True)
def demo(data: Path, out: Path, seed: int) -> None:
    """Prepare CMNIST, train vanilla and guided on a reduced profile, print the greedy effect."""
    from data_prep.cmnist import prepare_cmnist

    from .engine import train

    start = time.perf_counter()
    prepare_cmnist(data)
    records = {}
    for algorithm in ALGORITHMS:
        cfg = resolve("cmnist", algorithm=algorithm, seed=seed, data=str(data), **PROFILE)
        click.echo(f"== {algorithm}: {PROFILE} ==")
        records[algorithm] = train(cfg, out / algorithm)
    table = _table(records)
    (out / "table.md").write_text(table + "\n")
    click.echo("\n" + table)
    click.echo(f"\nwritten to {out}/ in {time.perf_counter() - start:.0f} s")
