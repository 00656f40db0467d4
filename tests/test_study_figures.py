"""`repro figures` on a sweeps' results directory: the study figures and the conjecture report, from the committed
miniature sweeps' results directory (tests/golden/sweep_results, written by tests/golden/make_sweep_results.py with
known answers)."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from scipy import stats

from repro.cli.report import figures_cmd
from repro.report.conjectures import mean_ci, spearman
from repro.report.sweep_rows import load_rows, manifests

GOLDEN = Path(__file__).parent / "golden" / "sweep_results"
STUDIES = ("guided-vs-vanilla", "l1", "lr-greedy", "lr-vs-dutil", "protocol", "tolerance", "window")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The command's output folder and the files it says it wrote."""
    out = tmp_path_factory.mktemp("figures")
    result = CliRunner().invoke(figures_cmd, ["--results", str(GOLDEN), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, [Path(line.removeprefix("wrote ")) for line in result.output.splitlines() if line.startswith("wrote ")]


def _records(manifest: str) -> list[dict]:
    runs = json.loads((GOLDEN / "studies" / f"{manifest}.json").read_text())["runs"]
    found = [GOLDEN / r["dir"] / "record.json" for r in runs]
    return [json.loads(p.read_text()) for p in found if p.exists()]


def test_one_folder_per_study_with_png_pdf_and_index(built):
    out, written = built
    assert sorted(p.parent.name for p in written if p.name == "index.md") == [f"{s}-small" for s in STUDIES]
    for study in STUDIES:
        for ext in ("png", "pdf"):
            path = out / f"{study}-small" / f"cmnist.{ext}"
            assert path.stat().st_size > 1000, path
    assert written[-1] == out / "conjectures.md"  # after the studies' files
    assert not (out / "figures.md").exists(), "a sweeps' folder gets no Table-1 histograms"
    assert not list(out.rglob(".*.tmp"))


def test_manifests_by_name():
    found = manifests(GOLDEN)
    assert list(found) == sorted(f"{s}-small" for s in STUDIES) and found["l1-small"]["study"] == "l1"


def test_the_text_reports_import_no_matplotlib():
    code = (
        "import sys; import repro.report.conjectures, repro.report.sweep_rows, repro.report.table1; "
        "print(sorted(m for m in ('matplotlib', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_unfinished_and_failed_runs_are_counted_not_plotted():
    manifest = json.loads((GOLDEN / "studies" / "lr-greedy-small.json").read_text())
    rows, left_out = load_rows(GOLDEN, manifest)
    assert left_out == {"not started": 1, "unfinished": 1, "failed": 1}
    assert len(rows) == len(manifest["runs"]) - 3
    assert all(r["lr"] != 1.0 for r in rows)


def test_index_numbers_equal_the_records(built):
    out, _ = built
    done = [r for r in _records("lr-greedy-small") if r["status"] == "done" and r["modalities"] == ["mono", "gray"]]
    values = [r["test"]["d_util"] for r in done]
    mean, sd = statistics.fmean(values), statistics.stdev(values)
    index = (out / "lr-greedy-small" / "index.md").read_text()
    assert f"| cmnist | mono+gray | vanilla | {len(done)} | {mean:+.3f} ± {sd:.3f} |" in index
    assert "24 finished runs of 27 (left out: 1 failed, 1 not started, 1 unfinished)" in index
    window = (out / "window-small" / "index.md").read_text()
    assert "| cmnist | mono+gray | guided | 50 | 1 | +0.100 ± 0.000 |" in window


def test_conjecture_report_reads_as_constructed(built):
    out, _ = built
    text = (out / "conjectures.md").read_text()
    lines = {line.split("|")[2].strip(): line for line in text.splitlines() if line.startswith("| cmnist |")}
    # Distinct pair: every d_util in [0.2, 0.4], so the CI excludes 0; identical pairs symmetric around 0.
    assert "excludes 0" in lines["mono+gray (distinct)"] and "contains 0" in lines["gray+gray (identical)"]
    assert "contains 0" in lines["mono+mono (identical)"] and "excludes 0" in lines["vanilla"]
    assert "contains 0" in lines["guided"]
    # d_speed = 0.6 d_util - 0.05 in every lr-greedy record: rank correlation exactly +1.
    assert "| cmnist | 24 | +1.00 (p = 0) | +1.00 (p = 0) |" in text
    assert text.index("Distinct vs identical") < text.index("Balanced vs vanilla") < text.index("regularization")


def test_bootstrap_interval_and_rank_correlation():
    mean, lo, hi = mean_ci([0.1, 0.2, 0.3, 0.4, 0.5])
    assert mean == pytest.approx(0.3) and 0.1 < lo < 0.3 < hi < 0.5
    assert mean_ci([0.2, 0.2, 0.2])[1:] == (None, None) and mean_ci([0.1, 0.2])[1:] == (None, None)
    x, y = [1.0, 2.0, 3.0, 4.0], [0.1, 0.4, 0.2, 0.9]
    assert spearman(x, y)[0] == pytest.approx(stats.spearmanr(x, y).statistic) == pytest.approx(0.8)
    assert spearman(x, [1.0] * 4) == (None, None)


def test_protocol_table_reads_both_evaluations_per_variant(built):
    """Means by construction (make_sweep_results.PROTOCOL_ACCS: seed 1 = seed 0 + 2, so sd = 1.41)."""
    out, _ = built
    index = (out / "protocol-small" / "index.md").read_text()
    header = (
        "| algorithm | paper | default: standard | default: reference | all-passes: standard | "
        "all-passes: reference | reference: standard | reference: reference |"
    )
    assert header in index
    assert (
        "| guided | 91.01 ± 1.20 | 74.00 ± 1.41 (n=2) | 93.00 ± 1.41 (n=2) | 73.00 ± 1.41 (n=2) | "
        "94.00 ± 1.41 (n=2) | 71.00 ± 1.41 (n=2) | 91.00 ± 1.41 (n=2) |"
    ) in index
    assert (
        "| vanilla | 45.26 ± 0.46 | 46.00 ± 1.41 (n=2) | 46.00 ± 1.41 (n=2) | = default | = default | "
        "= default | = default |"
    ) in index
    assert "| cmnist | mono+gray | random | reference | 2 |" in index  # the generic table, per variant
