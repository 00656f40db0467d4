"""``repro table1``, ``repro figures`` and ``repro curves``: Table 1 (Wu et al., ICML 2022, §5.4), the figures
from a results directory, and per-epoch curves of runs. ``figures`` chooses the report: a sweeps' results folder (with
manifests) gets each study's figures and the conjecture report, any other one the histograms of its finished runs.
Each command imports its report when it runs, so ``repro table1`` imports neither matplotlib nor torch.
"""

from __future__ import annotations

from pathlib import Path

import click

#: Both commands read the run records under one folder.
RESULTS = click.option(
    "--results",
    "results_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Directory searched recursively for run records (record.json).",
)


@click.command("table1")
@RESULTS
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to write table1.md, table1.tex and table1.csv into (created if missing).",
)
def table1_cmd(results_dir: Path, out_dir: Path) -> None:
    """Build Table 1 (test accuracy per setting and algorithm, beside the paper's) from RESULTS into OUT, under
    both evaluation protocols: standard (table1.*) and the authors' code's (table1-reference.*)."""
    from ..report.table1 import write_table1

    paths = write_table1(results_dir, out_dir)
    for key in ("md", "reference.md"):
        click.echo(paths[key].read_text(encoding="utf-8"), nl=False)
        click.echo("")
    for path in paths.values():
        click.echo(f"wrote {path}")


@click.command("figures")
@RESULTS
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to write the figures (PNG and PDF) and figures.md into.",
)
def figures_cmd(results_dir: Path, out_dir: Path) -> None:
    """Figures from RESULTS into OUT: each sweep's figures and conjectures.md when RESULTS holds sweeps
    (studies/*.json, see `repro sweep`), else histograms of d_util and d_speed per setting and algorithm."""
    from ..rundir import manifest_paths

    try:
        if manifest_paths(results_dir):  # a sweeps' results folder: the studies' reports
            from ..report.conjectures import write_conjectures
            from ..report.studies import write_study_figures

            paths = write_study_figures(results_dir, out_dir) + write_conjectures(results_dir, out_dir)
        else:  # any other results folder: the histograms of its finished runs
            from ..report.histograms import write_histograms

            paths = write_histograms(results_dir, out_dir)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    for path in paths:
        click.echo(f"wrote {path}")


@click.command("curves")
@click.argument(
    "run_dirs",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    metavar="RUN_DIR…",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to write NAME.png and NAME.pdf into (created if missing).",
)
@click.option("--name", default="curves", show_default=True, help="File name of the figure, without extension.")
def curves_cmd(run_dirs: tuple[Path, ...], out_dir: Path, name: str) -> None:
    """Per-epoch curves of the runs in RUN_DIR… (validation accuracy of ŷ and of each branch, training loss,
    d_speed, share of re-balancing steps per modality), overlaid in one figure, from their records alone.

    A RUN_DIR holding record.json is one run, whatever its status (a running run can be watched); any other RUN_DIR
    is searched recursively for finished runs. Colour: the algorithm; marker: the seed; dashed: the reference
    evaluation protocol, where it differs from the standard one."""
    from ..report.curves import load_runs, write_curves

    if "/" in name or name in ("", ".", ".."):
        raise click.BadParameter("a file name, not a path", param_hint="--name")
    try:
        runs, skipped = load_runs(run_dirs)
        for s in skipped:
            click.echo(str(s), err=True)
        paths = write_curves(runs, out_dir, name)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{len(runs)} run(s)")
    for path in paths:
        click.echo(f"wrote {path}")
