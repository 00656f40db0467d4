"""The ``repro`` command line. Each command lives in a module of this package (``prep`` and ``inspect`` in
:mod:`data_prep.cli`) and imports its logic when it runs; the group imports a command's module only to run it or
show its own help (:class:`LazyGroup`), so ``repro --help``, the reports and the sweep planner start without torch.
"""

from __future__ import annotations

import importlib
import sys

import click

#: command name -> "module:attribute" of its click command, and the short help ``repro --help`` lists for it (the
#: first sentence of the command's docstring, written here so that listing imports no command module;
#: tests/test_imports.py holds each equal to the command's own).
COMMANDS: dict[str, str] = {
    "prep": "data_prep.cli:prep",
    "inspect": "data_prep.cli:inspect_cmd",
    "train": "repro.cli.train:train",
    "train-packed": "repro.cli.train:train_packed_cmd",
    "sweep": "repro.cli.sweep:sweep_cmd",
    "table1": "repro.cli.report:table1_cmd",
    "figures": "repro.cli.report:figures_cmd",
    "curves": "repro.cli.report:curves_cmd",
    "bench": "repro.cli.tools:bench",
    "demo": "repro.cli.tools:demo",
    "doctor": "repro.cli.tools:doctor",
}
SHORT_HELP: dict[str, str] = {
    "prep": "Prepare a dataset: raw files in, one HDF5 file (with its recipe) out.",
    "inspect": "Describe a prepared HDF5 file: splits, sample counts, array shapes/dtypes and root attributes.",
    "train": "Train one run with the paper's settings for DATASET (any field overridable); resumable.",
    "train-packed": "Train the runs seeds x lrs x alphas of DATASET packed into one network per K runs (CMNIST: "
    "vanilla, random, guided); each run gets the record `repro train` would write, in its own folder; resumable.",
    "sweep": "Run one of the paper's studies (NAME) on every dataset whose prepared data is present.",
    "table1": "Build Table 1 (test accuracy per setting and algorithm, beside the paper's) from RESULTS into OUT, "
    "under both evaluation protocols: standard (table1.*) and the authors' code's (table1-reference.*).",
    "figures": "Figures from RESULTS into OUT: each sweep's figures and conjectures.md when RESULTS holds sweeps "
    "(studies/*.json, see `repro sweep`), else histograms of d_util and d_speed per setting and algorithm.",
    "curves": "Per-epoch curves of the runs in RUN_DIR… (validation accuracy of ŷ and of each branch, training loss, "
    "d_speed, share of re-balancing steps per modality), overlaid in one figure, from their records alone.",
    "bench": "Time training steps (guided vs vanilla, packed vs separate), an epoch, the d_speed statistics and, "
    "with --data, the loader against the model.",
    "demo": "Prepare CMNIST, train vanilla and guided on a reduced profile, print the greedy effect.",
    "doctor": "Report Python, torch, CUDA/GPU, EGL, PyAV, OpenCV, HDF5 and the prepared datasets; fail on what --need "
    "lists.",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported when used (click's documented pattern for large CLIs); its own
    ``--help`` lists them from :data:`SHORT_HELP` without importing any."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attribute = COMMANDS[name].split(":")
        return getattr(importlib.import_module(module), attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """As :meth:`click.Group.format_commands`, with the short help texts of :data:`SHORT_HELP` (shortened to the
        terminal's width as click shortens a command's own)."""
        limit = formatter.width - 6 - max(len(name) for name in COMMANDS)
        rows = [(name, click.Command(name, help=SHORT_HELP[name]).get_short_help_str(limit)) for name in COMMANDS]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup)
@click.version_option(package_name="greedy-multimodal-repro")
def main() -> None:
    """Reproduce Wu et al. (ICML 2022): greedy learning in multi-modal DNNs."""


if __name__ == "__main__":
    sys.exit(main())
