"""`repro figures` on a results directory without sweeps: the histograms of its finished runs
(:mod:`repro.report.histograms`), from a committed miniature results directory: one figure per group, the numbers in
figures.md equal the records', identical-modality runs form their own group, the output is byte-for-byte
reproducible."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from repro.cli.report import figures_cmd
from repro.report.histograms import collect, group_key, write_histograms
from repro.report.plotting import algorithm_order, colour
from repro.rundir import load_records

GOLDEN = Path(__file__).parent / "golden" / "table1_results"


def test_groups_and_values_come_from_the_records():
    groups = collect(load_records(GOLDEN))
    assert set(groups) == {"cmnist", "cmnist-gray+gray", "cmnist-lr-sweep", "modelnet40"}
    assert groups["cmnist-gray+gray"]["vanilla"] == {"d_util": [0.01], "d_speed": [0.0]}
    assert sorted(groups["modelnet40"]["vanilla"]["d_util"]) == [-0.12, -0.08]


def test_group_key_reads_both_record_styles():
    assert group_key({"setting": "cmnist", "modalities": ["mono", "gray"]}) == "cmnist"
    assert group_key({"setting": "cmnist", "config": {"modalities": "gray,gray"}}) == "cmnist-gray+gray"


def test_writes_png_pdf_and_an_index_reproducibly(tmp_path):
    first = write_histograms(GOLDEN, tmp_path / "a")
    second = write_histograms(GOLDEN, tmp_path / "b")
    names = sorted(p.name for p in first)
    assert "modelnet40.png" in names and "modelnet40.pdf" in names and "figures.md" in names
    for a, b in zip(first, second, strict=True):
        assert a.stat().st_size > 0 and a.read_bytes() == b.read_bytes(), a.name
    index = (tmp_path / "a" / "figures.md").read_text()
    assert "| modelnet40 | vanilla | 2 | -0.100 (-0.120, -0.080) |" in index
    assert not list((tmp_path / "a").glob(".*.tmp")), "no temporary file left behind"


def test_no_usable_record_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no finished two-branch run"):
        write_histograms(tmp_path, tmp_path / "out")


def test_the_command_writes_the_histograms_without_sweeps(tmp_path):
    result = CliRunner().invoke(figures_cmd, ["--results", str(GOLDEN), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    written = [line.removeprefix("wrote ") for line in result.output.splitlines() if line.startswith("wrote ")]
    direct = write_histograms(GOLDEN, tmp_path / "direct")
    assert written == [str(tmp_path / p.name) for p in direct]  # the histograms' files, in their order
    assert all((tmp_path / p.name).read_bytes() == p.read_bytes() for p in direct)
    assert written[-1] == str(tmp_path / "figures.md") and not (tmp_path / "conjectures.md").exists()


def test_the_command_reports_no_usable_record_as_an_error(tmp_path):
    result = CliRunner().invoke(figures_cmd, ["--results", str(tmp_path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and "Error: " in result.output and "no finished two-branch run" in result.output


def test_colours_and_order_come_from_the_registry():
    from repro.registry import ALGORITHMS

    assert [colour(a) for a in ALGORITHMS] == [spec.colour for spec in ALGORITHMS.values()]
    assert colour("not-registered") == "tab:gray"
    assert algorithm_order({"zeta", "guided", "vanilla", "alpha"}) == ["vanilla", "guided", "alpha", "zeta"]
