"""``repro doctor [--need gpu,egl,...] [--json]``: the checks of :mod:`repro.doctor` as a command."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .doctor import DATASETS, run_checks, to_json

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
