"""``repro sweep NAME --launcher {local,slurm,dry}``: run one of the paper's studies (:mod:`.sweeps`)."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from ..experiments.sweeps import BUDGETS, STUDIES, expand


@click.command("sweep")
@click.argument("name", type=click.Choice(list(STUDIES)))
@click.option(
    "--launcher",
    type=click.Choice(["dry", "local", "slurm"]),
    default="dry",
    show_default=True,
    help="dry: print the plan; local: worker processes here; slurm: submitit job arrays",
)
@click.option(
    "--budget",
    type=click.Choice(BUDGETS),
    default="full",
    show_default=True,
    help="full: the paper's study; small: a CPU-sized version (fewer values, subset, epoch cap)",
)
@click.option(
    "--results",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("results/sweeps"),
    show_default=True,
    help="runs go to RESULTS/runs/, the study's manifest to RESULTS/studies/",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("data"),
    show_default=True,
    help="where the prepared <dataset>.h5 files are; datasets without one are skipped",
)
@click.option("--datasets", default=None, help="comma-separated subset of the datasets (default: all present)")
@click.option("--retry-failed", is_flag=True, help="rerun runs recorded as failed (by default they are skipped)")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="local: parallel worker processes (one per GPU, or per share of the CPU cores)",
)
@click.option(
    "--threads",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="local: torch threads per worker (0: the CPU cores divided by --workers)",
)
@click.option(
    "--pack",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="train up to K runs that may share a network (CMNIST vanilla/random/guided runs differing only in "
    "seed, lr, alpha, window) packed in one process (repro train-packed); others train alone",
)
@click.option("--device", default="auto", show_default=True, help="local: auto (worker i on GPU i mod #GPUs) | cpu")
@click.option("--partition", default=None, help="slurm: partition")
@click.option("--timeout-min", type=int, default=24 * 60, show_default=True, help="slurm: time limit per array task")
@click.option("--gpus-per-task", type=int, default=1, show_default=True, help="slurm: GPUs per array task (0: CPU)")
@click.option("--cpus-per-task", type=int, default=8, show_default=True, help="slurm: CPU cores (= torch threads)")
@click.option("--mem-gb", type=int, default=32, show_default=True, help="slurm: memory per array task")
@click.option(
    "--runs-per-task",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="slurm: runs (or packs, with --pack) trained one after the other by each array task",
)
@click.option("--array-parallelism", type=int, default=64, show_default=True, help="slurm: array tasks running at once")
@click.option("--wait", is_flag=True, help="slurm: wait for the array to finish and print each outcome")
def sweep_cmd(
    name: str,
    launcher: str,
    budget: str,
    results: Path,
    data_dir: Path,
    datasets: str | None,
    retry_failed: bool,
    workers: int,
    threads: int,
    pack: int,
    device: str,
    partition: str | None,
    timeout_min: int,
    gpus_per_task: int,
    cpus_per_task: int,
    mem_gb: int,
    runs_per_task: int,
    array_parallelism: int,
    wait: bool,
) -> None:
    """Run one of the paper's studies (NAME) on every dataset whose prepared data is present.

    The studies: lr-greedy (Fig. 2/A.2), lr-vs-dutil (A.3), guided-vs-vanilla (Fig. 4), random-vs-vanilla (A.7), l1
    (Fig. 3/A.4), window (A.5), tolerance (A.6), protocol (Table 1's evaluation protocols, docs/fidelity.md).

    Re-launching runs only what is not done; failed runs are rerun only with --retry-failed. Figures:
    `repro figures --results RESULTS --out DIR`."""
    from ..experiments.launchers import SlurmOptions, launch_dry, launch_local, launch_slurm

    try:
        plan = expand(name, budget, data_dir, datasets.split(",") if datasets else None)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    if not plan.specs:
        reasons = "; ".join(f"{d}: {r}" for d, r in plan.skipped.items())
        raise click.ClickException(f"study {name} has no run on this machine ({reasons})")
    if launcher == "dry":
        launch_dry(plan, results, retry_failed, pack)
    elif launcher == "local":
        outcomes = launch_local(plan, results, workers, threads, device, retry_failed, pack)
        failed = [o for o in outcomes if o.state == "failed"]
        click.echo(f"figures: repro figures --results {results} --out {results}/figures")
        if failed:
            raise click.ClickException(
                f"{len(failed)} run(s) failed; their errors are in each record.json and "
                "train.log; rerun with --retry-failed"
            )
    else:
        if shutil.which("sbatch") is None:
            raise click.ClickException(
                "sbatch not found: this machine is not a Slurm submit host "
                "(use --launcher local, or --launcher dry to see the plan)"
            )
        options = SlurmOptions(
            partition, timeout_min, gpus_per_task, cpus_per_task, mem_gb, runs_per_task, array_parallelism
        )
        launch_slurm(plan, results, options, retry_failed, wait, pack)
