"""``repro doctor``, ``repro demo`` and ``repro bench``: the tools around the pipeline. Each command imports its
logic (torch, the benchmarks) when it runs; :mod:`repro.doctor` imports what it checks inside each check."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
from click.core import ParameterSource

from ..doctor import NAMES, run_checks, to_json
from ..registry import DATASETS

ALWAYS_NEEDED = ("python", "torch", "hdf5")
KNOWN = NAMES


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
    """Report Python, torch, CUDA/GPU, EGL, PyAV, OpenCV, HDF5 and the prepared datasets; fail on what --need lists."""
    checks = run_checks(data_dir)
    by_name = {c.name: c for c in checks}
    required = set(ALWAYS_NEEDED) | set(need)
    failed = [n for n in KNOWN if n in required and not by_name[n].ok]
    if as_json:
        click.echo(json.dumps({"ok": not failed, "failed": failed, "checks": to_json(checks)}, indent=2))
    else:
        for c in checks:
            mark = "ok  " if c.ok else ("FAIL" if c.name in required else "--  ")
            click.echo(f"{mark} {c.name:<10} {c.detail}" + ("" if c.ok else f"  (fix: {c.fix})"))
    if failed:
        reasons = "; ".join(f"{n}: {by_name[n].detail} (fix: {by_name[n].fix})" for n in failed)
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
    from data_prep.common import PrepError

    from ..config import resolve
    from ..data.hdf5 import DataRequestError
    from ..engine import train

    start = time.perf_counter()
    records = {}
    try:
        prepare_cmnist(data)
        for algorithm in ALGORITHMS:
            cfg = resolve("cmnist", algorithm=algorithm, seed=seed, data=str(data), **PROFILE)
            click.echo(f"== {algorithm}: {PROFILE} ==")
            records[algorithm] = train(cfg, out / algorithm)
    except (PrepError, FileNotFoundError, DataRequestError) as exc:  # one line naming the file and the fix
        raise click.ClickException(str(exc)) from exc
    table = _table(records)
    (out / "table.md").write_text(table + "\n")
    click.echo("\n" + table)
    click.echo(f"\nwritten to {out}/ in {time.perf_counter() - start:.0f} s")


# --- bench: the benchmarks of repro/bench/ ------------------------------------------------------------------------
def _clip(ctx, param, value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        frames, side = (int(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter("expected T,S: frames and side, e.g. 16,56") from None
    return frames, side


def _ints(ctx, param, value: str) -> list[int]:
    try:
        return [int(v) for v in value.split(",")]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from None


@click.group(invoke_without_command=True)
@click.option("--dataset", type=click.Choice(sorted(DATASETS)), default="cmnist", show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N")
@click.option("--batch-size", type=int, default=128, show_default=True)
@click.option("--steps", type=int, default=10, show_default=True, help="training steps per timed round")
@click.option("--rounds", type=int, default=5, show_default=True, help="alternating rounds (median reported)")
@click.option("--pack", type=int, default=4, show_default=True, help="K runs for packed_speedup (CMNIST; 0: skip)")
@click.option(
    "--beyond/--no-beyond",
    default=True,
    show_default=True,
    help="time each method beyond the paper against vanilla (<method>_over_vanilla_step)",
)
@click.option(
    "--epoch-samples",
    type=int,
    default=6000,
    show_default=True,
    help="samples in the timed epoch (60000: CMNIST's full epoch; 0: skip the epoch); epoch_s_per_60k scales it",
)
@click.option(
    "--pack-convolutions",
    type=click.Choice(["auto", "grouped", "loop"]),
    default="auto",
    show_default=True,
    help="the packed network's convolution stages (auto: grouped on CUDA, loop on CPU)",
)
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the model for the timed epoch")
@click.option(
    "--precision",
    type=click.Choice(["fp32", "bf16"]),
    default="fp32",
    show_default=True,
    help="autocast precision for the timed epoch",
)
@click.option("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
@click.option(
    "--data",
    type=click.Path(dir_okay=False),
    default=None,
    help="a prepared file of --dataset: also time its loader (loader_samples_per_s, loader_over_model)",
)
@click.option(
    "--workers",
    type=int,
    default=4,
    show_default=True,
    help="loader worker processes for --data (NVGesture; in-memory datasets have none)",
)
@click.option("--loader-batches", type=int, default=50, show_default=True, help="timed loader batches for --data")
@click.option(
    "--clip",
    default=None,
    metavar="T,S",
    callback=_clip,
    help="NVGesture model inputs of T frames of S x S (default 64,224: A.4), e.g. 16,56 on a CPU",
)
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@click.pass_context
def bench(ctx: click.Context, as_json: bool, **options) -> None:
    """Time training steps (guided vs vanilla, packed vs separate), an epoch, the d_speed statistics and, with
    --data, the loader against the model.

    The options below belong to this step benchmark (docs/performance.md). The subcommands are the other
    benchmarks: `repro bench nvgesture` (NVGesture's DataLoader and I3D step) and `repro bench modelnet40-prep` (the
    ModelNet40 prep stage); each prints one JSON object."""
    if ctx.invoked_subcommand is not None:
        given = [
            p.opts[0] for p in ctx.command.params if ctx.get_parameter_source(p.name) == ParameterSource.COMMANDLINE
        ]
        if given:
            sub = ctx.invoked_subcommand
            raise click.UsageError(
                f"{', '.join(given)}: option(s) of the step benchmark (plain `repro bench`), not of "
                f"`repro bench {sub}`; give {sub}'s options after its name (`repro bench {sub} --help`)"
            )
        return
    if options["clip"] is not None and options["dataset"] != "nvgesture":
        raise click.UsageError("--clip sizes NVGesture clips; use it with --dataset nvgesture")
    from ..bench.steps import BenchDataError, run

    try:
        result = run(**options)
    except BenchDataError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        for k, v in result.items():
            click.echo(f"{k:40s} {v:.4g}" if isinstance(v, float) else f"{k:40s} {v}")


@bench.command("nvgesture")
@click.option("--data", default="", help="prepared NVGesture file for the loader figures (none: skip them)")
@click.option("--workers", default="0,1,2", show_default=True, callback=_ints, help="loader worker counts to measure")
@click.option("--epochs", default=5, show_default=True, help="passes over the train split per worker count")
@click.option(
    "--threads", default="1", show_default=True, callback=_ints, help="torch thread counts for the model step"
)
@click.option("--frames", default=64, show_default=True)
@click.option("--side", default=56, show_default=True, help="clip height and width for the model step")
@click.option("--batch", default=4, show_default=True)
@click.option("--steps", default=3, show_default=True, help="timed steps (after one untimed)")
def bench_nvgesture(data, workers, epochs, threads, frames, side, batch, steps) -> None:
    """Time NVGesture's DataLoader per worker count (with --data) and a guided I3D training step per thread count."""
    from ..bench.nvgesture import run

    try:
        result = run(data, workers, epochs, threads, frames, side, batch, steps)
    except (FileNotFoundError, ValueError) as exc:  # a missing or damaged file: one line naming it
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(result))


@bench.command("modelnet40-prep")
@click.option("--objects", type=int, default=64, show_default=True, help="synthetic meshes")
@click.option("--faces", type=int, default=10_000, show_default=True, help="triangles per mesh")
@click.option("--workers", type=int, default=1, show_default=True, help="rendering processes")
def bench_modelnet40_prep(objects: int, faces: int, workers: int) -> None:
    """Time the ModelNet40 prep stage on synthetic meshes and extrapolate to the full dataset."""
    from ..bench.modelnet40_prep import run

    click.echo(json.dumps(run(objects, faces, workers)))
