"""The NVGesture stage on the real fixture (real split lists, six real H.264 depth videos, synthetic colour
videos; see nvgesture_fixtures): layout and shapes, frame windows, padding, labels, the validation split,
a file of the previous format prepared again, resume after SIGKILL, one-line errors; then a tiny
`repro train --dataset nvgesture` on a file it wrote. The frames against NVIDIA's reader: test_nvgesture_opencv."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import av
import cv2
import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from data_prep.common import PrepError, canonical_json, recipe_hash
from data_prep.inspect import verify
from data_prep.nvgesture import build_recipe, parse_line, prepare_nvgesture, read_list, split_validation
from repro.cli import main
from repro.config import resolve

from nvgesture_fixtures import FIXTURE, TEST_LIST, TRAIN_LIST, frame_index, make_raw

QUIET = {"progress": False, "log": lambda m: None}
pytestmark = pytest.mark.skipif(
    not FIXTURE.is_dir(),
    reason=f"no NVGesture fixture at {FIXTURE}; restore tests/fixtures/nvgesture from git or set NVGESTURE_FIXTURE",
)


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    return make_raw(tmp_path_factory.mktemp("nvg"))


@pytest.fixture(scope="module")
def built(raw, tmp_path_factory) -> Path:
    """The stage's output at the paper's 256x256."""
    return prepare_nvgesture(raw, tmp_path_factory.mktemp("out") / "nvgesture.h5", **QUIET)


def _list_labels_and_paths(path: Path) -> list[tuple[int, str]]:
    text = path.read_text()
    return [(int(m[2]), m[1]) for m in re.finditer(r"path:\./(\S+) .*?label:(\d+)", text)]


def test_layout_shapes_labels_and_split(built, raw):
    result = CliRunner().invoke(main, ["inspect", str(built), "--json"])
    assert result.exit_code == 0
    desc = json.loads(result.output)
    assert {k: v["count"] for k, v in desc["splits"].items()} == {"train": 9, "val": 3, "test": 4}
    for split in desc["splits"].values():
        n = split["count"]
        assert split["arrays"]["rgb"] == {"shape": [n, 80, 256, 256, 3], "dtype": "uint8"}
        assert split["arrays"]["depth"] == {"shape": [n, 80, 256, 256, 1], "dtype": "uint8"}
        assert "done" not in split["arrays"]  # progress flags are gone from a finished file
    assert desc["attrs"]["recipe"]["frame_size"] == 256 and len(desc["attrs"]["arrays_checksum"]) == 64

    pairs = _list_labels_and_paths(raw / TRAIN_LIST) + _list_labels_and_paths(raw / TEST_LIST)
    listed = {p: label for label, p in pairs}
    with h5py.File(built) as f:
        for name in ("train", "val", "test"):
            paths = [p.decode() for p in f[name]["path"][:]]
            assert list(f[name]["label"][:]) == [listed[p] - 1 for p in paths]  # 1-based lists, 0-based here
        assert 24 in f["test"]["label"][:]  # the test list's last line (label 25, no final newline)
        assert sorted(f["val"]["label"][:]) == [0, 1, 2]  # 20% of 4 per class, rounded: one each
        train_paths = {p.decode() for p in f["train"]["path"][:]}
        assert train_paths.isdisjoint(p.decode() for p in f["val"]["path"][:])
    expected_train, expected_val = split_validation(read_list(raw / TRAIN_LIST), 0.2, seed=0)
    with h5py.File(built) as f:
        assert list(f["val"]["list_line"][:]) == [s.list_line for s in expected_val]
        assert list(f["train"]["list_line"][:]) == [s.list_line for s in expected_train]


def test_frames_come_from_the_colour_window_for_both_modalities(built, raw):
    with h5py.File(built) as f:
        for name in ("train", "val", "test"):
            g = f[name]
            for i, (start, end) in enumerate(g["window"][:]):
                if g["num_frames"][i] != 80:
                    continue
                assert [frame_index(g["rgb"][i, j]) for j in (0, 1, 40, 79)] == [start, start + 1, start + 40, end - 1]
        # depth: the stored frame is the listed frame of the real video, not a neighbour
        g = f["train"]
        i = next(k for k, p in enumerate(g["path"][:]) if p.decode() == "Video_data/class_01/subject3_r0")
        start = int(g["window"][i, 0])
        with av.open(str(raw / "Video_data/class_01/subject3_r0/sk_depth.avi")) as c:
            frames = c.decode(video=0)
            native = [next(frames).to_ndarray(format="rgb24")[..., 0] for _ in range(start + 45)]
        for j in (0, 20, 40):
            stored = torch.from_numpy(g["depth"][i, j, :, :, 0]).float()
            errors = []
            for offset in (-2, -1, 0, 1, 2):
                ref = torch.from_numpy(native[start + j + offset]).float()[None, None]
                ref = F.interpolate(ref, size=(256, 256), mode="bilinear", align_corners=False)[0, 0]
                errors.append(float((ref - stored).abs().mean()))
            assert int(np.argmin(errors)) == 2 and errors[2] < 3, errors


def test_a_short_clip_is_zero_padded_on_both_sides(built):
    with h5py.File(built) as f:
        g = f["test"]
        i = int(np.flatnonzero(g["window"][:, 1] - g["window"][:, 0] == 40)[0])
        start = int(g["window"][i, 0])
        assert g["num_frames"][i] == 64 and list(g["num_frames"][:]).count(80) == 3
        rgb, depth = g["rgb"][i], g["depth"][i]
        assert not rgb[:12].any() and not depth[:12].any()  # 12 zero frames before, 12 after (40 + 24 = 64)
        assert not rgb[52:].any() and not depth[52:].any()  # ... and nothing stored past the 64 frames
        assert frame_index(rgb[12]) == start and frame_index(rgb[51]) == start + 39
        assert depth[12:52].reshape(40, -1).any(axis=1).all()


def test_a_video_ending_inside_its_window_is_cut_there_and_reported(tmp_path, raw):
    moved = tmp_path / "raw"
    shutil.copytree(raw, moved)
    lines = (moved / TEST_LIST).read_text().split("\n")
    lines[0] = re.sub(r"color:sk_color:\d+:\d+", "color:sk_color:200:300", lines[0])  # the video has 250 frames
    (moved / TEST_LIST).write_text("\n".join(lines))
    messages = []
    out = prepare_nvgesture(moved, tmp_path / "o.h5", size=16, progress=False, log=messages.append)
    with av.open(str(moved / "Video_data/class_01/subject13_r0/sk_depth.avi")) as c:
        depth_frames = sum(1 for _ in c.decode(video=0))
    read = min(depth_frames, 250) - 200  # both modalities cut where the shorter video ends
    with h5py.File(out) as f:
        g = f["test"]
        assert list(g["frames_read"][:]) == [read, 40, 80, 80] and list(g["num_frames"][:]) == [64, 64, 80, 80]
        before = (64 - read) // 2
        assert frame_index(g["rgb"][0, before]) == 200 and not g["rgb"][0, :before].any()
        assert frame_index(g["rgb"][0, before + read - 1]) == 200 + read - 1 and not g["rgb"][0, before + read :].any()
    assert "1 videos end inside their listed window" in messages[-1] and "class_01/subject13_r0" in messages[-1]


def test_rerun_is_a_no_op(built, raw):
    mtime = built.stat().st_mtime_ns
    messages = []
    prepare_nvgesture(raw, built, progress=False, log=messages.append)
    assert built.stat().st_mtime_ns == mtime and "up to date" in messages[0]


@pytest.mark.parametrize("version", [1, 2])
def test_a_file_of_a_previous_format_is_prepared_again_and_says_so(tmp_path, raw, version):
    """Format versions 1 (libswscale's resize) and 2 (no chunk checksums) are not up to date: the next run names both
    versions and what they are, then writes version 3 (OpenCV's resize and the chunk checksums recorded in the recipe,
    so the recipe hash changes) with its chunks checksummed."""
    out = tmp_path / "old.h5"
    recipe, _ = build_recipe(raw, seed=0, size=16)
    old = {k: v for k, v in recipe.items() if k != "chunk_checksum"} | {"format_version": version}
    if version == 1:
        old["resize"] = "libswscale bilinear to frame_size x frame_size"
    with h5py.File(out, "w") as f:
        f.attrs.update({"recipe": canonical_json(old), "recipe_hash": recipe_hash(old)})
    messages = []
    prepare_nvgesture(raw, out, size=16, progress=False, log=messages.append)
    was = {1: "libswscale resize, no chunk checksums", 2: "OpenCV resize, no chunk checksums"}[version]
    assert messages[0] == (
        f"{out}: format version {version} ({was}); this stage writes format version 3 "
        "(OpenCV resize, Fletcher-32 chunk checksums): preparing it again"
    ), messages
    with h5py.File(out) as f:
        assert f.attrs["format_version"] == 3 and f.attrs["recipe_hash"] == recipe_hash(recipe) != recipe_hash(old)
        assert json.loads(f.attrs["recipe"])["resize"].startswith("OpenCV cv2.resize INTER_LINEAR")
        assert f.attrs["resizer"] == f"OpenCV {cv2.__version__}"
        for name in ("rgb", "depth", "label", "num_frames", "window", "sample_sha256"):
            assert f["train"][name].fletcher32, name


def test_verify_recomputes_the_arrays_checksum_from_the_clips(built, tmp_path):
    """`repro inspect --verify` reads every chunk (all of them checksummed) and recomputes arrays_checksum from the
    clips, not from the stored sample digests: a clip rewritten through HDF5 (its chunk checksum valid) is caught."""
    result = verify(built)
    assert result["arrays_checksum"] == "matches" and result["unchecked_chunks"] == 0 and result["chunks"] > 0
    copy = tmp_path / "nvgesture.h5"
    shutil.copy(built, copy)
    with h5py.File(copy, "r+") as f:
        f["val/depth"][0, 0, 0, 0] = 255 - f["val/depth"][0, 0, 0, 0]
    with pytest.raises(PrepError, match=r"damaged \(its arrays differ from those the stage wrote"):
        verify(copy)


def test_validation_split_of_the_real_list_is_stratified_and_deterministic():
    samples = read_list(FIXTURE / TRAIN_LIST)
    assert len(samples) == 1050 and len(read_list(FIXTURE / TEST_LIST)) == 482
    train, val = split_validation(samples, 0.2, seed=0)
    again_train, again_val = split_validation(samples, 0.2, seed=0)
    assert val == again_val and train == again_train
    assert len(train) + len(val) == 1050 and not set(train) & set(val)
    labels = np.array([s.label for s in samples])
    for c in range(25):
        n = int((labels == c).sum())
        assert sum(s.label == c for s in val) == int(np.floor(0.2 * n + 0.5))
    assert 200 <= len(val) <= 220
    assert split_validation(samples, 0.2, seed=1)[1] != val


def test_real_lines_parse_with_the_colour_window():
    lines = (FIXTURE / TRAIN_LIST).read_text().split("\n")
    number, line = next((i, ln) for i, ln in enumerate(lines, 1) if "class_06/subject17_r1 " in ln)
    sample = parse_line(line, f"{TRAIN_LIST}:{number}")
    assert (sample.start, sample.end, sample.label) == (161, 241, 5)  # depth says 160:240; the colour window wins
    assert sample.path == "Video_data/class_06/subject17_r1" and sample.list_line == number
    last = read_list(FIXTURE / TEST_LIST)[-1]
    assert last.label == 24 and last.list_line == 482


def test_missing_videos_are_named_before_anything_is_written(tmp_path):
    out = tmp_path / "nvgesture.h5"
    with pytest.raises(PrepError) as err:
        prepare_nvgesture(FIXTURE, out, **QUIET)  # the real lists, only six depth videos present
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(str(FIXTURE / "Video_data/class_01/subject3_r0/sk_color.avi") + ": missing video")
    assert f"line 1 of {TRAIN_LIST}" in message
    assert not out.exists() and not (tmp_path / "nvgesture.h5.partial").exists()


@pytest.mark.parametrize(
    "pattern, replacement, fragment",
    [
        (r"label:\d+", "label:26", "label '26' is not an integer 1-25"),
        (r"label:\d+", "label:x", "label 'x'"),
        (r"color:sk_color:\d+:\d+", "color:sk_color:150:140", "color window"),
        (r"$", "colour", "malformed token 'colour'"),
        (r"label:\d+", "", "no label field"),
    ],
)
def test_a_malformed_list_line_names_the_line(tmp_path, raw, pattern, replacement, fragment):
    lines = (raw / TRAIN_LIST).read_text().split("\n")
    lines[2] = re.sub(pattern, replacement, lines[2], count=1)
    broken = tmp_path / "raw"
    broken.mkdir()
    (broken / TRAIN_LIST).write_text("\n".join(lines))
    shutil.copyfile(raw / TEST_LIST, broken / TEST_LIST)
    result = CliRunner().invoke(main, ["prep", "nvgesture", "--raw", str(broken), "--out", str(tmp_path / "o.h5")])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and f"{broken / TRAIN_LIST}:3: " in result.output
    assert fragment in result.output


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_corrupt_video_names_the_file(tmp_path, raw, damage):
    broken = tmp_path / "raw"
    shutil.copytree(raw, broken)
    victim = broken / "Video_data/class_02/subject3_r0/sk_depth.avi"
    real = victim.read_bytes()
    # garbage: an AVI signature and noise; truncated: a real video cut inside its window (an interrupted download)
    victim.write_bytes(real[:16] + bytes(range(256)) * 40 if damage == "garbage" else real[: len(real) * 7 // 10])
    with pytest.raises(PrepError) as err:
        prepare_nvgesture(broken, tmp_path / "o.h5", size=16, **QUIET)
    message = str(err.value)
    assert message.startswith(f"{victim}: ") and "download it again" in message and "\n" not in message
    assert not (tmp_path / "o.h5").exists()


KILLER = """
import os, signal, sys
import data_prep.nvgesture as stage
calls = 0
real = stage.read_window
def read_window(*args, **kwargs):
    global calls
    calls += 1
    if calls == 11:  # two videos per sample: dies while reading sample 6, after 5 were written
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kwargs)
stage.read_window = read_window
stage.prepare_nvgesture(sys.argv[1], sys.argv[2], size=16, progress=False)
"""


def test_a_killed_extraction_resumes_where_it_stopped(tmp_path, raw, monkeypatch):
    out = tmp_path / "nvgesture.h5"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, "-c", KILLER, str(raw), str(out)], env=env, capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists() and (tmp_path / "nvgesture.h5.partial").exists()

    import data_prep.nvgesture as stage

    calls, messages = [], []
    real = stage.read_window
    monkeypatch.setattr(stage, "read_window", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    prepare_nvgesture(raw, out, size=16, progress=False, log=messages.append)
    assert len(calls) == 2 * (16 - 5)  # only the samples not done
    assert any("resuming, 5 of 16 samples already extracted" in m for m in messages)
    assert out.exists() and not (tmp_path / "nvgesture.h5.partial").exists()
    monkeypatch.setattr(stage, "read_window", real)
    straight = prepare_nvgesture(raw, tmp_path / "straight.h5", size=16, **QUIET)
    with h5py.File(out) as a, h5py.File(straight) as b:
        assert a.attrs["arrays_checksum"] == b.attrs["arrays_checksum"]
        for name in ("train", "val", "test"):
            assert np.array_equal(a[name]["rgb"][:], b[name]["rgb"][:])
            assert np.array_equal(a[name]["depth"][:], b[name]["depth"][:])


def test_a_second_extraction_into_the_same_file_is_refused(tmp_path, raw):
    partial = tmp_path / "nvgesture.h5.partial"
    prepare_nvgesture(raw, tmp_path / "first.h5", size=16, **QUIET).rename(partial)  # a partial, as a writer holds it
    with h5py.File(partial, "r+"):
        code = (
            "import sys; from data_prep.nvgesture import prepare_nvgesture; "
            "prepare_nvgesture(sys.argv[1], sys.argv[2], size=16, progress=False)"
        )
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        proc = subprocess.run(
            [sys.executable, "-c", code, str(raw), str(tmp_path / "nvgesture.h5")],
            env=env,
            capture_output=True,
            text=True,
        )
    assert proc.returncode == 1 and "another `repro prep nvgesture` is writing it" in proc.stderr
    assert partial.exists()  # the other writer's file is left alone


def test_tiny_training_run_on_a_file_the_stage_wrote(tmp_path, raw):
    """`repro train --dataset nvgesture` with the paper's settings, on 16x16 frames and a few clips."""
    data = prepare_nvgesture(raw, tmp_path / "nvgesture.h5", size=16, **QUIET)
    cfg = resolve("nvgesture")
    assert (cfg.lr, cfg.momentum, cfg.batch_size, cfg.alpha, cfg.window) == (0.01, 0.9, 4, 0.1, 5)
    args = [
        "train",
        "--dataset",
        "nvgesture",
        "--algorithm",
        "guided",
        "--data",
        str(data),
        "--max-epochs",
        "1",
        "--train-limit",
        "5",
        "--eval-limit",
        "2",
        "--workers",
        "0",
        "--threads",
        "1",
        "--progress",
        "false",
        "--out",
        str(tmp_path / "run"),
        "--json",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    record = json.loads(result.output[result.output.index("{") :])
    assert record["status"] == "done" and record["setting"] == "nvgesture-scratch"
    assert record["modalities"] == ["rgb", "depth"] and record["config"]["batch_size"] == 4
    assert record["epochs"][0]["steps"] == 2  # 5 training clips, batch 4
    assert record["test"]["acc"] is not None and record["test"]["d_speed"] is not None
    with h5py.File(data) as f:
        assert record["data_provenance"]["recipe_hash"] == f.attrs["recipe_hash"]
