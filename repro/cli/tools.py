"""``repro doctor``, ``repro demo`` and ``repro bench``: the tools around the pipeline."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from ..config import resolve
from ..doctor import DATASETS, run_checks, to_json

ALWAYS_NEEDED = ("python", "torch", "hdf5")
KNOWN = ("python", "torch", "gpu", "egl", "av", "hdf5", *DATASETS)


def _needs(ctx, param, value: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    unknown = [n for n in names if n not in KNOWN]
    if unknown:
        raise click.BadParameter(f"unknown check {unknown[0]!r}; choose from {','.join(KNOWN)}")
    return names


@click.command()
@click.option(
    "--need",
    default="",
    callback=_needs,
    metavar="CHECK[,CHECK...]",
    help=f"checks that must pass (exit 1 otherwise), from: {','.join(KNOWN)}. "
    f"{', '.join(ALWAYS_NEEDED)} are always needed.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("data"),
    show_default=True,
    help="where the prepared datasets are",
)
@click.option("--json", "as_json", is_flag=True, help="print the checks as JSON")
def doctor(need: tuple[str, ...], data_dir: Path, as_json: bool) -> None:
    """Report Python, torch, CUDA/GPU, EGL, PyAV, HDF5 and the prepared datasets; fail on what --need lists."""
    checks = run_checks(data_dir)
    by_name = {c.name: c for c in checks}
    required = set(ALWAYS_NEEDED) | set(need)
    failed = [n for n in KNOWN if n in required and not (n in by_name and by_name[n].ok)]
    if as_json:
        click.echo(json.dumps({"ok": not failed, "failed": failed, "checks": to_json(checks)}, indent=2))
    else:
        for c in checks:
            mark = "ok  " if c.ok else ("FAIL" if c.name in required else "--  ")
            click.echo(f"{mark} {c.name:<10} {c.detail}" + ("" if c.ok else f"  (fix: {c.fix})"))
    if failed:
        reasons = "; ".join(
            f"{n}: {by_name[n].detail if n in by_name else 'not checked (torch missing)'}" for n in failed
        )
        raise click.ClickException(f"needed checks failed: {reasons}")


# --- demo: the greedy effect in minutes on a laptop CPU -------------------------------------------------
# Prepares CMNIST if missing, trains vanilla and guided on a reduced profile (the paper's CMNIST settings, fewer
# training samples and an epoch cap) and prints test accuracy under both evaluation protocols (docs/fidelity.md).
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

    from ..engine import train

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
