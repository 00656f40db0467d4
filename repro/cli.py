"""The ``repro`` command line: prep, inspect, train, table1, figures, bench, demo, doctor."""

from __future__ import annotations

import dataclasses
import json
import sys
import typing
from pathlib import Path

import click

from .hparams import ALGORITHM_NAMES, DATASET_DEFAULTS, RunConfig, resolve

_CLICK_TYPES = {int: int, float: float, str: str, bool: click.BOOL}


def config_options(command):
    """One ``--option`` per RunConfig field (default None = the dataset's paper setting), so every
    hyper-parameter is overridable and none is silently dropped."""
    hints = typing.get_type_hints(RunConfig)
    for f in reversed(dataclasses.fields(RunConfig)):
        if f.name in ("dataset", "algorithm"):
            continue
        command = click.option(f"--{f.name.replace('_', '-')}", f.name, type=_CLICK_TYPES[hints[f.name]],
                               default=None, help=f.metadata.get("help"))(command)
    return command


@click.group()
@click.version_option(package_name="greedy-multimodal-repro")
def main() -> None:
    """Reproduce Wu et al. (ICML 2022): greedy learning in multi-modal DNNs."""


@main.command()
@click.option("--dataset", type=click.Choice(sorted(DATASET_DEFAULTS)), required=True)
@click.option("--algorithm", type=click.Choice(ALGORITHM_NAMES), default="vanilla", show_default=True)
@config_options
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="run directory (default: results/runs/<dataset>-<algorithm>-s<seed>-<spec hash>)")
@click.option("--force", is_flag=True, help="replace a different run already in --out")
@click.option("--json", "as_json", is_flag=True, help="print the final record as JSON")
def train(dataset: str, algorithm: str, out: Path | None, force: bool, as_json: bool, **overrides) -> None:
    """Train one run with the paper's settings for DATASET (any field overridable); resumable."""
    from .engine import RunConflict
    from .engine import train as run_training

    try:
        cfg = resolve(dataset, algorithm=algorithm, **overrides)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    out = out or Path("results/runs") / f"{cfg.dataset}-{cfg.algorithm}-s{cfg.seed}-{cfg.spec_hash()}"
    try:
        record = run_training(cfg, out, force=force)
    except (RunConflict, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(record, indent=2))
    else:
        t = record["test"]
        click.echo(f"{out}: test acc {t['acc']:.2f}%" + (f", d_util {t['d_util']:+.3f}, d_speed {t['d_speed']:+.3f}"
                                                       if t.get("d_util") is not None else ""))


def _mount() -> None:
    from data_prep.cli import inspect_cmd, prep

    from .bench import bench
    from .demo import demo
    from .doctor_cli import doctor
    from .report.cli import figures_cmd, table1_cmd

    main.add_command(prep, "prep")
    main.add_command(inspect_cmd, "inspect")
    main.add_command(table1_cmd, "table1")
    main.add_command(figures_cmd, "figures")
    main.add_command(bench, "bench")
    main.add_command(demo, "demo")
    main.add_command(doctor, "doctor")


_mount()

if __name__ == "__main__":
    sys.exit(main())
