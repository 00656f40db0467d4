"""``repro train`` and ``repro train-packed``: one run, or K runs packed into one network."""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path

import click

from ..config import ALGORITHM_NAMES, DATASET_DEFAULTS, PROTOCOLS, RunConfig, resolve

_CLICK_TYPES = {int: int, float: float, str: str, bool: click.BOOL}


def config_options(command):
    """One ``--option`` per RunConfig field (default None = the dataset's paper setting), so every
    hyper-parameter is overridable and none is silently dropped."""
    hints = typing.get_type_hints(RunConfig)
    for f in reversed(dataclasses.fields(RunConfig)):
        if f.name in ("dataset", "algorithm"):
            continue
        command = click.option(
            f"--{f.name.replace('_', '-')}",
            f.name,
            type=_CLICK_TYPES[hints[f.name]],
            default=None,
            help=f.metadata.get("help"),
        )(command)
    return command


@click.command()
@click.option("--dataset", type=click.Choice(sorted(DATASET_DEFAULTS)), required=True)
@click.option("--algorithm", type=click.Choice(ALGORITHM_NAMES), default="vanilla", show_default=True)
@config_options
@click.option(
    "--protocol",
    type=click.Choice(sorted(PROTOCOLS)),
    default=None,
    help="training behaviours of the gate means: paper (A.2, the default) or reference (the authors' "
    "code: --gate-mean all-passes --gate-mean-source branch0; docs/fidelity.md)",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="run directory (default: results/runs/<dataset>-<algorithm>-s<seed>-<spec hash>)",
)
@click.option("--force", is_flag=True, help="replace a different run already in --out")
@click.option("--json", "as_json", is_flag=True, help="print the final record as JSON")
def train(
    dataset: str, algorithm: str, protocol: str | None, out: Path | None, force: bool, as_json: bool, **overrides
) -> None:
    """Train one run with the paper's settings for DATASET (any field overridable); resumable."""
    from ..data.hdf5 import DataRequestError
    from ..engine import RunConflict
    from ..engine import train as run_training
    from ..engine.checkpoint import CheckpointError
    from ..models.i3d import PretrainedWeightsError
    from ..models.mmtm import FusionConfigError

    try:
        cfg = resolve(dataset, algorithm=algorithm, protocol=protocol, **overrides)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    out = out or Path("results/runs") / f"{cfg.dataset}-{cfg.algorithm}-s{cfg.seed}-{cfg.spec_hash()}"
    try:
        record = run_training(cfg, out, force=force)
        if record["status"] == "failed":  # diverged: the engine recorded why
            raise click.ClickException(f"{out}: {record['error']}")
    except (
        RunConflict,
        FileNotFoundError,
        PretrainedWeightsError,
        DataRequestError,
        FusionConfigError,
        CheckpointError,
    ) as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(record, indent=2))
    else:
        t, r = record["test"], record.get("test_reference") or {}
        click.echo(
            f"{out}: test acc {t['acc']:.2f}%"
            + (f", d_util {t['d_util']:+.3f}, d_speed {t['d_speed']:+.3f}" if t.get("d_util") is not None else "")
            + (
                f"; reference evaluation {r['acc']:.2f}% ({r['state']}, epoch {r['epoch']})"
                if r.get("acc") is not None
                else ""
            )
        )


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",")]


@click.command("train-packed")
@click.option("--dataset", type=click.Choice(sorted(DATASET_DEFAULTS)), required=True)
@click.option("--algorithm", type=click.Choice(ALGORITHM_NAMES), default="vanilla", show_default=True)
@click.option("--seeds", default=None, help="comma-separated seeds, e.g. 0,1,2 (default: --seed)")
@click.option("--lrs", default=None, help="comma-separated learning rates (default: --lr or the paper's)")
@click.option("--alphas", default=None, help="comma-separated alphas (default: --alpha or the paper's)")
@config_options
@click.option(
    "--out",
    default="results/runs",
    show_default=True,
    help="parent folder (each run in <out>/<dataset>-<algorithm>-s<seed>-<spec hash>), or a pattern "
    "with {algorithm} {seed} {lr} {alpha} {setting} {dataset}: runs/{setting}/{algorithm}/seed{seed}",
)
@click.option("--pack", type=int, default=0, show_default=True, help="at most K runs per pack (0: all in one)")
@click.option("--force", is_flag=True, help="replace different runs already in the run folders")
def train_packed_cmd(
    dataset: str,
    algorithm: str,
    seeds: str | None,
    lrs: str | None,
    alphas: str | None,
    out: str,
    pack: int,
    force: bool,
    **overrides,
) -> None:
    """Train the runs seeds x lrs x alphas of DATASET packed into one network per K runs (CMNIST: vanilla,
    random, guided); each run gets the record `repro train` would write, in its own folder; resumable."""
    from ..engine import RunConflict
    from ..engine import train_runs as train_packed
    from ..engine.checkpoint import CheckpointError

    seed_list = [int(v) for v in seeds.split(",")] if seeds else [overrides.pop("seed")]
    lr_list = _floats(lrs) if lrs else [overrides.pop("lr")]
    alpha_list = _floats(alphas) if alphas else [overrides.pop("alpha")]
    for key in ("seed", "lr", "alpha"):
        overrides.pop(key, None)
    try:
        cfgs = [
            resolve(dataset, algorithm=algorithm, seed=seed, lr=lr, alpha=alpha, **overrides)
            for lr in lr_list
            for alpha in alpha_list
            for seed in seed_list
        ]
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    if "{" in out:
        dirs = [
            Path(out.format(**{k: getattr(c, k) for k in ("algorithm", "seed", "lr", "alpha", "setting", "dataset")}))
            for c in cfgs
        ]
    else:
        dirs = [Path(out) / f"{c.dataset}-{c.algorithm}-s{c.seed}-{c.spec_hash()}" for c in cfgs]
    if len(set(dirs)) != len(dirs):
        raise click.UsageError("--out gives two runs the same folder; add the varying fields to the pattern")
    size, failed = (pack if pack > 0 else len(cfgs)), 0
    for start in range(0, len(cfgs), size):
        try:
            records = train_packed(cfgs[start : start + size], dirs[start : start + size], force=force)
        except (RunConflict, FileNotFoundError, ValueError, CheckpointError) as exc:
            raise click.ClickException(str(exc)) from exc
        for d, r in zip(dirs[start : start + size], records, strict=True):
            click.echo(f"{d}: test acc {r['test']['acc']:.2f}%" if r["status"] == "done" else f"{d}: {r['error']}")
            failed += r["status"] != "done"
    if failed:
        raise click.ClickException(f"{failed} run(s) failed; each record.json says why")
