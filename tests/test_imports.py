"""What each command imports: ``repro --help``, the reports, the sweep planner and the doctor start without torch
(each in a fresh interpreter, as a user runs them); the static short help texts of ``repro --help`` are the
commands' own; ``data_prep`` imports no ``repro``, and its command line's defaults are the stages'."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest

from repro.cli import COMMANDS, SHORT_HELP, main

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "av", "cv2", "matplotlib", "h5py", "moderngl", "scipy")

# Runs the command line in this interpreter, then prints which of HEAVY it imported as the last line.
_RUN = f"""
import json, sys
from repro.cli import main
try:
    main(sys.argv[1:], prog_name="repro", standalone_mode=False)
finally:
    print("\\nIMPORTED " + json.dumps([m for m in {HEAVY!r} if m in sys.modules]))
"""


def imported_by(*args: str) -> list[str]:
    """The modules of HEAVY that ``repro ARGS`` imports, run in a fresh interpreter (which must exit 0)."""
    proc = subprocess.run([sys.executable, "-c", _RUN, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("IMPORTED "), proc.stdout
    return json.loads(last.removeprefix("IMPORTED "))


def test_the_group_help_imports_no_command():
    assert imported_by("--help") == []  # nor click's commands: no h5py, PyAV, OpenCV, moderngl either


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_command_help_imports_no_torch(name):
    assert "torch" not in imported_by(name, "--help")


def test_table1_and_figures_import_no_torch(tmp_path):
    (tmp_path / "results").mkdir()
    imported = imported_by("table1", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "table"))
    assert "torch" not in imported and "matplotlib" not in imported  # a text report


def test_a_dry_sweep_imports_no_torch(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "cmnist.h5").touch()  # the planner only needs the file to exist
    args = ["sweep", "lr-greedy", "--launcher", "dry", "--budget", "small", "--data-dir", str(tmp_path / "data")]
    assert "torch" not in imported_by(*args, "--results", str(tmp_path / "results"))


def test_the_static_short_helps_are_the_commands_own():
    """``repro --help`` lists SHORT_HELP without importing the commands; each text must be the command's own first
    sentence, so editing a command's docstring without SHORT_HELP fails here."""
    assert list(SHORT_HELP) == list(COMMANDS)
    ctx = click.Context(main)
    for name in COMMANDS:
        assert SHORT_HELP[name] == main.get_command(ctx, name).get_short_help_str(limit=10**6), name


def test_the_lazy_listing_is_what_click_prints_for_the_imported_commands():
    ctx = click.Context(main, info_name="repro")

    class Eager(click.Group):  # the commands imported, listed in COMMANDS' order
        def list_commands(self, ctx):
            return list(COMMANDS)

    eager = Eager("repro", commands={name: main.get_command(ctx, name) for name in COMMANDS})
    for width in (80, 120, 200):
        lazy_out, eager_out = click.HelpFormatter(width=width), click.HelpFormatter(width=width)
        main.format_commands(ctx, lazy_out)
        eager.format_commands(click.Context(eager), eager_out)
        assert lazy_out.getvalue() == eager_out.getvalue()


def test_data_prep_imports_no_repro():
    code = (
        "import importlib, pkgutil, sys, data_prep\n"
        "for m in pkgutil.iter_modules(data_prep.__path__): importlib.import_module('data_prep.' + m.name)\n"
        "from data_prep.common import created_by\n"
        "print(created_by('probe'))\n"
        "print(sorted(m for m in sys.modules if m == 'repro' or m.startswith('repro.')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    created, modules = proc.stdout.strip().splitlines()
    assert modules == "[]"
    from repro import __version__

    assert created == f"greedy-multimodal-repro {__version__} (probe)"  # the installed version is the package's


def test_the_prep_defaults_are_the_stages():
    from data_prep import cmnist, defaults, mnist_source, modelnet40, nvgesture

    assert defaults.CMNIST_OUT == cmnist.DEFAULT_OUT
    assert defaults.CMNIST_SEED == cmnist.DEFAULT_SEED
    assert defaults.CMNIST_VARIANCE == cmnist.DEFAULT_VARIANCE
    assert defaults.MNIST_CACHE_DIR == mnist_source.DEFAULT_CACHE_DIR
    assert defaults.MNIST_SOURCES == mnist_source.SOURCES
    assert defaults.MODELNET40_OUT == modelnet40.DEFAULT_OUT
    assert defaults.NVGESTURE_OUT == nvgesture.DEFAULT_OUT
    assert defaults.NVGESTURE_SEED == nvgesture.DEFAULT_SEED
    assert defaults.NVGESTURE_FRAME_SIZE == nvgesture.FRAME_SIZE
