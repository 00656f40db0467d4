"""`repro figures` from a committed miniature results directory: one figure per group, the numbers in figures.md
equal the records', identical-modality runs form their own group, the output is byte-for-byte reproducible."""

from __future__ import annotations

from pathlib import Path

import pytest

from repro.report.figures import collect, group_key, write_figures
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
    first = write_figures(GOLDEN, tmp_path / "a")
    second = write_figures(GOLDEN, tmp_path / "b")
    names = sorted(p.name for p in first)
    assert "modelnet40.png" in names and "modelnet40.pdf" in names and "figures.md" in names
    for a, b in zip(first, second, strict=True):
        assert a.stat().st_size > 0 and a.read_bytes() == b.read_bytes(), a.name
    index = (tmp_path / "a" / "figures.md").read_text()
    assert "| modelnet40 | vanilla | 2 | -0.100 (-0.120, -0.080) |" in index
    assert not list((tmp_path / "a").glob(".*.tmp")), "no temporary file left behind"


def test_no_usable_record_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no finished two-branch run"):
        write_figures(tmp_path, tmp_path / "out")
