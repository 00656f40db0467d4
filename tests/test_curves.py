"""`repro curves` (:mod:`repro.report.curves`): per-epoch curves from run records alone. On the committed miniature
results (tests/golden/table1_results: one epoch with val_acc only per run) and on hand-written records of the full
shape (docs/record.schema.json: vanilla and guided runs, two seeds, a uni-modal run): files written, one line per
run and metric the record holds (the reference protocol's dashed, only where it differs), colour and legend from the
registry, one-line errors naming the folder that holds no record."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from repro.cli.report import curves_cmd
from repro.registry import ALGORITHMS
from repro.report.curves import PANELS, curves_figure, load_runs, write_curves
from repro.report.plotting import plt
from repro.rundir import scan_records, write_json

GOLDEN = Path(__file__).parent / "golden" / "table1_results"
SCHEMA = Path(__file__).resolve().parents[1] / "docs" / "record.schema.json"
METRICS = [p.metric for p in PANELS]


def data_lines(fig) -> dict[str, list]:
    """``{metric: [gid of each data line]}`` over the figure's panels (the zero line and the legend have none)."""
    out = {}
    for panel, ax in zip(PANELS, fig.axes, strict=False):
        out[panel.metric] = [line.get_gid() for line in ax.get_lines() if line.get_gid() is not None]
    return out


def _epoch(k: int, *, guided: bool, unimodal: bool) -> dict:
    """One epoch's statistics in the engine's shape: a guided run re-balances m1 and validates differently in its
    training state; a uni-modal run has no branch accuracies and no d_speed."""
    accs = {"acc": 40.0 + 5 * k} if unimodal else {"acc": 40.0 + 5 * k, "acc_branch0": 30.0 + k, "acc_branch1": 50.0}
    reference = {n: v + 5 for n, v in accs.items()} if guided else accs
    m1 = 10 * k if guided else 0
    return {
        "epoch": k,
        "lr": 0.01,
        "steps": 100,
        "train_loss": 1.0 / k,
        "train_acc": 60.0 + k,
        **{f"val_{n}": v for n, v in accs.items()},
        "eval_state": "rebalance_m1" if guided else "regular",
        **{f"val_reference_{n}": v for n, v in reference.items()},
        "d_speed": None if unimodal else -0.4 + 0.1 * k,
        "rebalance_steps": m1,
        "rebalance_steps_m0": 0,
        "rebalance_steps_m1": m1,
    }


def write_run(folder: Path, algorithm: str, seed: int, *, epochs: int = 3, modalities=("mono", "gray")) -> Path:
    """A finished run's record.json of the full shape (checked against the schema)."""
    unimodal = len(modalities) == 1
    record = {
        "dataset": "cmnist",
        "setting": "cmnist",
        "algorithm": algorithm,
        "seed": seed,
        "modalities": list(modalities),
        "spec_hash": f"{seed:012x}",
        "config": {"dataset": "cmnist", "algorithm": algorithm, "seed": seed},
        "versions": {"repro": "test"},
        "status": "done",
        "error": None,
        "epochs": [_epoch(k, guided=algorithm == "guided", unimodal=unimodal) for k in range(1, epochs + 1)],
        "best_epoch": epochs,
        "best_val_acc": 40.0 + 5 * epochs,
        "stopped": "max_epochs",
        "test": {
            "acc": 70.0,
            "acc_branch0": 60.0,
            "acc_branch1": 55.0,
            "acc_branch0_unimodal": 50.0,
            "acc_branch1_unimodal": 45.0,
            "u_m1_given_m0": 0.1,
            "u_m0_given_m1": -0.2,
            "d_util": 0.3,
            "d_speed": -0.1,
            "r_f": 0.0,
        },
        "test_reference": {"acc": 75.0, "acc_branch0": 60.0, "acc_branch1": 55.0, "state": "regular", "epoch": epochs},
        "timing": {"epoch_seconds": [1.0] * epochs, "test_seconds": 1.0},
    }
    jsonschema.validate(record, json.loads(SCHEMA.read_text()))
    write_json(folder / "record.json", record)
    return folder


@pytest.fixture
def results(tmp_path) -> Path:
    """runs/{vanilla,guided}/seed{0,1} with two modalities and runs/vanilla/gray-seed2 uni-modal."""
    root = tmp_path / "results" / "runs"
    for algorithm in ("vanilla", "guided"):
        for seed in (0, 1):
            write_run(root / algorithm / f"seed{seed}", algorithm, seed)
    write_run(root / "vanilla" / "gray-seed2", "vanilla", 2, modalities=("gray",))
    return root


def test_the_command_writes_png_and_pdf_from_the_golden_results(tmp_path):
    result = CliRunner().invoke(curves_cmd, [str(GOLDEN), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    for suffix in ("png", "pdf"):
        path = tmp_path / "out" / f"curves.{suffix}"
        assert path.stat().st_size > 0 and f"wrote {path}" in result.output
    assert not list((tmp_path / "out").glob(".*.tmp")), "no temporary file left behind"
    assert "skipped " in result.output  # the golden folder holds unfinished and damaged records, named on stderr


def test_golden_results_one_line_per_run_for_the_metric_they_hold():
    runs, _ = load_runs([GOLDEN])
    finished, _ = scan_records(GOLDEN)
    assert len(runs) == len(finished) > 4
    fig = curves_figure(runs)
    try:
        lines = data_lines(fig)
        assert sorted(lines["val_acc"]) == sorted(f"{i}:val_acc" for i in range(len(runs)))  # one epoch each
        assert all(lines[m] == [] for m in METRICS if m != "val_acc")  # nothing else is recorded there
    finally:
        plt.close(fig)


def test_one_line_per_run_and_metric_the_records_hold(results):
    runs, skipped = load_runs([results])
    assert len(runs) == 5 and skipped == []
    fig = curves_figure(runs)
    try:
        lines = data_lines(fig)
        counts = {m: Counter(gid.endswith(":reference") for gid in gids) for m, gids in lines.items()}
        two_branch = 4  # the uni-modal run has no branch accuracy and no d_speed
        assert counts["val_acc"] == {False: 5, True: 2}  # reference dashed for the two guided runs only
        assert counts["val_acc_branch0"] == counts["val_acc_branch1"] == {False: two_branch, True: 2}
        assert counts["train_loss"] == {False: 5}
        assert counts["d_speed"] == {False: two_branch}
        assert counts["rebalance_steps_m0"] == counts["rebalance_steps_m1"] == {False: 5}
        for metric, gids in lines.items():
            assert len(set(gids)) == len(gids), metric  # one line per run and metric
        ax = {p.metric: a for p, a in zip(PANELS, fig.axes, strict=False)}
        for line in ax["val_acc"].get_lines():
            assert line.get_linestyle() == ("--" if line.get_gid().endswith(":reference") else "-")
        guided_m1 = [line for line in ax["rebalance_steps_m1"].get_lines() if line.get_color() == "tab:red"]
        assert [list(line.get_ydata()) for line in guided_m1] == [[0.1, 0.2, 0.3]] * 2  # rebalance_steps_m1 / steps
        assert "gray" not in ax["val_acc_branch1"].get_title()  # modalities differ between runs: not named
        legend = [t.get_text() for t in fig.axes[len(PANELS)].get_legend().get_texts()]
        assert legend[:5] == [
            "vanilla, seed 0",
            "vanilla, seed 1",
            "vanilla, seed 2",
            "guided, seed 0",
            "guided, seed 1",
        ]
        assert legend[5:] == ["standard protocol", "reference protocol (training state)"]
    finally:
        plt.close(fig)


def test_colours_from_the_registry_markers_by_seed(results):
    runs, _ = load_runs([results / "vanilla" / "seed0", results / "vanilla" / "seed1", results / "guided" / "seed0"])
    fig = curves_figure(runs)
    try:
        lines = {line.get_gid(): line for line in fig.axes[0].get_lines()}
        assert lines["0:val_acc"].get_color() == ALGORITHMS["vanilla"].colour
        assert lines["2:val_acc"].get_color() == ALGORITHMS["guided"].colour
        assert lines["0:val_acc"].get_marker() == lines["2:val_acc"].get_marker()  # seed 0 twice
        assert lines["0:val_acc"].get_marker() != lines["1:val_acc"].get_marker()
        assert "mono" in fig.axes[1].get_title() and "gray" in fig.axes[2].get_title()
    finally:
        plt.close(fig)


def test_a_run_folder_and_its_parent_count_once_and_a_running_run_is_read(results):
    running = results / "guided" / "seed0" / "record.json"
    record = json.loads(running.read_text())
    record["status"] = "running"
    running.write_text(json.dumps(record))
    runs, skipped = load_runs([results / "guided" / "seed0", results])
    assert len(runs) == 5  # the running run given directly; the scan skips it as unfinished
    assert [s.path for s in skipped] == [str(results / "guided" / "seed0" / "record.json")]
    runs, _ = load_runs([results, results / "vanilla" / "seed0"])
    assert len(runs) == 4


def test_same_records_same_bytes(results, tmp_path):
    runs, _ = load_runs([results])
    first = write_curves(runs, tmp_path / "a")
    second = write_curves(runs, tmp_path / "b", name="again")
    assert [p.name for p in first] == ["curves.png", "curves.pdf"] and [p.name for p in second][0] == "again.png"
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(first, second, strict=True))


def test_a_folder_without_record_is_a_one_line_error(tmp_path):
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(curves_cmd, [str(tmp_path / "empty"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: {tmp_path / 'empty'}: no finished run record (record.json) found"
    assert not (tmp_path / "out").exists()


def test_a_damaged_record_and_records_without_epochs_are_errors(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "record.json").write_text("{not json")
    result = CliRunner().invoke(curves_cmd, [str(tmp_path / "bad"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and f"{tmp_path / 'bad' / 'record.json'}: not a readable run record" in result.output
    sweeps = Path(__file__).parent / "golden" / "sweep_results"  # finished records without epochs
    result = CliRunner().invoke(curves_cmd, [str(sweeps), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and "no per-epoch statistics" in result.output
    result = CliRunner().invoke(curves_cmd, ["--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "RUN_DIR" in result.output  # at least one folder
