"""The ``repro`` command line: configuration from options, train, bench keys (not timings: those are
benchmarks, see docs/performance.md)."""

import json

import pytest
from click.testing import CliRunner

from repro.cli import main
from repro.config import resolve


def test_resolve_precedence_and_zero_is_a_value():
    cfg = resolve("cmnist", lr=0.5, momentum=0.0, warmup_epochs=0)
    assert cfg.lr == 0.5 and cfg.momentum == 0.0 and cfg.warmup_epochs == 0  # 0 overrides the paper's 0.9
    paper = resolve("cmnist")
    assert (paper.lr, paper.momentum, paper.batch_size, paper.alpha, paper.window) == (0.01, 0.9, 128, 0.1, 5)
    assert paper.modality_names == ("mono", "gray") and paper.setting == "cmnist"
    assert cfg.spec_hash() != paper.spec_hash()
    assert resolve("cmnist", device="cpu", threads=1).spec_hash() == paper.spec_hash()  # runtime-only fields


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"algorithm": "adam"}, "unknown algorithm"),
        ({"modalities": "mono,gray,mono"}, "one or two"),
        ({"modalities": "gray", "algorithm": "guided"}, "needs two modalities"),
    ],
)
def test_resolve_rejects_nonsense(overrides, message):
    with pytest.raises(ValueError, match=message):
        resolve("cmnist", **overrides)


def test_train_command_overrides_every_field_and_parses_booleans_strictly(tiny_cmnist, tmp_path):
    runner = CliRunner()
    args = [
        "train",
        "--dataset",
        "cmnist",
        "--algorithm",
        "guided",
        "--data",
        str(tiny_cmnist),
        "--max-epochs",
        "1",
        "--batch-size",
        "64",
        "--alpha",
        "0",
        "--window",
        "2",
        "--threads",
        "1",
        "--out",
        str(tmp_path / "r"),
    ]
    result = runner.invoke(main, args + ["--progress", "maybe"])
    assert result.exit_code == 2 and "maybe" in result.output
    result = runner.invoke(main, args + ["--progress", "false", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output[result.output.index("{") :])
    assert record["config"]["alpha"] == 0.0 and record["config"]["window"] == 2
    assert record["config"]["batch_size"] == 64 and record["status"] == "done"


def test_train_without_data_names_the_file_and_the_fix(tmp_path):
    result = CliRunner().invoke(
        main, ["train", "--dataset", "cmnist", "--data", str(tmp_path / "nope.h5"), "--out", str(tmp_path / "r")]
    )
    assert result.exit_code == 1 and "nope.h5" in result.output and "repro prep cmnist" in result.output


@pytest.mark.parametrize(
    "dataset, names, message",
    [
        ("cmnist", "mono,colour", "unknown Colored-and-gray MNIST modality 'colour'; choose from mono, gray"),
        ("modelnet40", "front,back", "unknown ModelNet40 modality 'back'; choose from front, rear, view0 ... view11"),
        ("nvgesture", "ir,depth", "unknown NVGesture modality 'ir'; choose from rgb, depth"),
    ],
)
def test_train_with_an_unknown_modality_says_so_in_one_line(tmp_path, dataset, names, message):
    (tmp_path / "x.h5").touch()
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--dataset",
            dataset,
            "--modalities",
            names,
            "--algorithm",
            "vanilla",
            "--data",
            str(tmp_path / "x.h5"),
            "--out",
            str(tmp_path / "run"),
        ],
    )
    assert result.exit_code == 1, result.output
    assert result.output.strip() == f"Error: {message}"


def test_bench_reports_the_ratios():
    result = CliRunner().invoke(
        main,
        [
            "bench",
            "--json",
            "--device",
            "cpu",
            "--rounds",
            "1",
            "--steps",
            "2",
            "--batch-size",
            "8",
            "--pack",
            "2",
            "--epoch-samples",
            "24",
            "--threads",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    for key in (
        "guided_over_vanilla_step",
        "speed_stats_fused_over_per_parameter",
        "train_samples_per_s",
        "device",
        "packed_speedup",
        "epoch_s",
        "epoch_s_per_60k",
        "ogm_ge_over_vanilla_step",
        "gblend_over_vanilla_step",
        "moddrop_over_vanilla_step",
        "pmr_over_vanilla_step",
    ):
        assert key in report
    assert report["guided_over_vanilla_step"] > 0 and report["speed_stats_fused_over_per_parameter"] > 0
    assert report["packed_speedup"] > 0 and report["pack"] == 2 and report["epoch_samples"] == 24


def test_bench_sets_the_loader_against_the_model(tmp_path):
    """NVGesture: the model step on clips of the file's size, the DataLoader (one worker process) on the file."""
    from test_nvgesture_loader import _write

    data = _write(tmp_path / "nvgesture.h5")  # 64-frame crops of 28 x 28
    args = [
        "bench",
        "--json",
        "--device",
        "cpu",
        "--dataset",
        "nvgesture",
        "--data",
        str(data),
        "--rounds",
        "1",
        "--steps",
        "1",
        "--batch-size",
        "2",
        "--threads",
        "1",
        "--workers",
        "1",
        "--loader-batches",
        "3",
    ]
    args.insert(1, "--no-beyond")  # the methods' ratios: test_bench_reports_the_ratios (CMNIST)
    result = CliRunner().invoke(main, args + ["--clip", "64,28"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["loader_input_shapes"] == report["model_input_shapes"] == [[3, 64, 28, 28], [1, 64, 28, 28]]
    assert report["loader_samples_per_s"] > 0 and report["loader_batches"] == 3 and report["loader_over_model"] > 0
    assert "packed_speedup" not in report and "epoch_s" not in report  # CMNIST only; NVGesture streams
    result = CliRunner().invoke(main, args[:-2] + ["--loader-batches", "1", "--clip", "8,16"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["loader_over_model"] is None  # two different sizes: no ratio
    result = CliRunner().invoke(
        main,
        [
            "bench",
            "--dataset",
            "nvgesture",
            "--data",
            str(tmp_path / "none.h5"),
            "--rounds",
            "1",
            "--steps",
            "1",
            "--batch-size",
            "2",
            "--clip",
            "8,16",
            "--pack",
            "0",
            "--threads",
            "1",
        ],
    )
    assert result.exit_code == 1 and "none.h5" in result.output and "Traceback" not in result.output


def test_bench_nvgesture_times_the_loader_and_the_i3d_step(tmp_path):
    from test_nvgesture_loader import _write

    data = _write(tmp_path / "nvgesture.h5")
    args = ["--data", str(data), "--workers", "0", "--epochs", "1", "--frames", "8", "--side", "16"]
    result = CliRunner().invoke(main, ["bench", "nvgesture", *args, "--steps", "1", "--batch", "2", "--threads", "1"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["clip"] == [8, 16, 16] and report["step_seconds"]["1"] > 0
    assert report["loader_cpu_ms_per_clip"] > 0
    assert report["loader_clips_per_s"]["0"] > 0 and report["loader_clips_per_s_float_on_cpu"]["0"] > 0


def test_bench_modelnet40_prep_times_the_stage():
    result = CliRunner().invoke(main, ["bench", "modelnet40-prep", "--objects", "5", "--faces", "200"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["objects"] == 5 and report["render_views_per_s"] > 0 and report["full_dataset_hours"] > 0


def test_bench_step_options_before_a_subcommand_are_a_usage_error():
    result = CliRunner().invoke(main, ["bench", "--rounds", "1", "nvgesture"])
    assert result.exit_code == 2 and "--rounds" in result.output and "repro bench nvgesture --help" in result.output
