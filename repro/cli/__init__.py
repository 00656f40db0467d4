"""The ``repro`` command line. Each command lives in a module of this package and imports its logic when it runs,
so ``repro --help``, the reports and the sweep planner start without torch (:class:`LazyGroup`)."""

from __future__ import annotations

import importlib
import sys

import click

#: command name -> "module:attribute" of its click command.
COMMANDS = {
    "prep": "data_prep.cli:prep",
    "inspect": "data_prep.cli:inspect_cmd",
    "train": "repro.cli.train:train",
    "train-packed": "repro.cli.train:train_packed_cmd",
    "sweep": "repro.cli.sweep:sweep_cmd",
    "table1": "repro.cli.report:table1_cmd",
    "figures": "repro.cli.report:figures_cmd",
    "bench": "repro.bench.steps:bench",
    "demo": "repro.cli.tools:demo",
    "doctor": "repro.cli.tools:doctor",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported when used (click's documented pattern for large CLIs)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attribute = COMMANDS[name].split(":")
        return getattr(importlib.import_module(module), attribute)


@click.group(cls=LazyGroup)
@click.version_option(package_name="greedy-multimodal-repro")
def main() -> None:
    """Reproduce Wu et al. (ICML 2022): greedy learning in multi-modal DNNs."""


if __name__ == "__main__":
    sys.exit(main())
