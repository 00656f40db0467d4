"""The ModelNet40 prep stage on a miniature tree in the real layout, with the real files' quirks
(modelnet_fixtures): OFF parsing, counts and label order, renders, bad meshes, resume after SIGKILL, no-op
re-runs, MVCNN image sets, the preview sheet and `repro inspect`, the chunk checksums and `repro inspect --verify`."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from data_prep.common import PrepError, recipe_hash
from data_prep.inspect import describe, verify
from data_prep.modelnet40 import (
    KILL_AFTER_PARTS_ENV,
    _parts_dir,
    build_recipe,
    list_meshes,
    listing_hash,
    prepare_modelnet40,
)
from data_prep.off import MeshError, parse_off
from data_prep.preview import write_preview
from repro.cli import main
from repro.data.hdf5 import PreparedFileError
from repro.data.modelnet40 import load as load_modelnet40

from modelnet_fixtures import BAD_FILE, CLASSES, N_TEST, N_TRAIN, expected_names, write_mini_modelnet

QUIET = dict(progress=False, log=lambda m: None)


def _names(f, split):
    return [n.decode() if isinstance(n, bytes) else n for n in f[split]["name"][:]]


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    """(raw tree, prepared file, log lines) built once for the module."""
    base = tmp_path_factory.mktemp("mn40")
    raw = write_mini_modelnet(base / "ModelNet40")
    log = []
    out = prepare_modelnet40(base / "modelnet40.h5", raw=raw, progress=False, log=log.append)
    return raw, out, log


# --- the OFF reader ---------------------------------------------------------------------------------------
def test_off_quirks():
    v, t = parse_off("OFF4 2 0\n0 0 0\n1 0 0\n1 1 0\n0 1 0\n4 0 1 2 3\n3 0 0 1\n")  # fused header, quad, degenerate
    assert v.shape == (4, 3) and t.tolist() == [[0, 1, 2], [0, 2, 3]]
    v, t = parse_off("# c\n\n5 1 0\n0 0 0 # x\n1 0 0\n\n1 1 0\n0 1 0 0.5 0.5 0.5\n0 2 0\n5 0 1 2 3 4 255 0 0\n")
    # no keyword, comments, blank lines, colours, a pentagon's fan
    assert v.shape == (5, 3) and t.tolist() == [[0, 1, 2], [0, 2, 3], [0, 3, 4]]
    v, _ = parse_off("OFF\n3 1 0\n1e30 0 0\n0 1e30 0\n0 0 -1e30\n3 0 1 2\n")
    assert v.dtype == np.float64 and v.max() == 1e30


@pytest.mark.parametrize(
    "text, reason",
    [
        ("OFF\n8 12 0\n0 0 0\n", "truncated"),
        ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n", "refers to vertex 7"),
        ("OFF\n3 1 0\n0 0 zero\n1 0 0\n0 1 0\n3 0 1 2\n", "not a number"),
        ("OFF\nthree 1 0\n", "counts line"),
        ("", "empty"),
        ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 0 1\n", "degenerate"),
        ("OFF\n3 1 0\n0 0 nan\n1 0 0\n0 1 0\n3 0 1 2\n", "not finite"),
    ],
)
def test_off_errors_name_the_file_in_one_line(text, reason):
    with pytest.raises(MeshError) as e:
        parse_off(text, "x/y_0001.off")
    assert str(e.value).startswith("x/y_0001.off: ") and reason in str(e.value) and "\n" not in str(e.value)


# --- the stage on the miniature tree -----------------------------------------------------------------------
def test_counts_labels_names_shapes(mini):
    _, out, _ = mini
    with h5py.File(out, "r") as f:
        assert json.loads(f.attrs["classes"]) == sorted(CLASSES)
        assert f.attrs["source"] == "meshes" and json.loads(f.attrs["skipped"]) == []
        for split, n in (("train", N_TRAIN), ("test", N_TEST)):
            assert f[split]["views"].shape == (3 * n, 12, 224, 224) and f[split]["views"].dtype == np.uint8
            assert _names(f, split) == expected_names(split)  # car_0003.off.off is car_0003
            assert f[split]["label"][:].tolist() == [c for c in range(3) for _ in range(n)]


def test_renders_are_objects_and_front_differs_from_rear(mini):
    _, out, _ = mini
    with h5py.File(out, "r") as f:
        views = np.concatenate([f["train"]["views"][:], f["test"]["views"][:]])
    lit = (views > 0).mean(axis=(2, 3))  # (N, 12) fraction of object pixels
    assert (lit > 0.02).all() and (lit < 0.8).all(), "an empty or frame-filling view"
    assert (views.max(axis=(2, 3)) > 150).all() and (views[:, :, 0, :] == 0).all()  # lit object, black border
    front, rear = views[:, 0].astype(int), views[:, 6].astype(int)
    assert (np.abs(front - rear).mean(axis=(1, 2)) > 1).all()


def test_camera_ring_orientation_and_up_axis():
    """MVCNN's cameras, checked on renders: rotating an object by +90 deg about +z shifts its views by 3 (a
    30-deg ring, counter-clockwise), 180 deg by 6 (front <-> rear); +z is up in every view; view 0 looks along +y."""
    import trimesh

    from data_prep.render import ViewRenderer, camera_matrices

    mesh = trimesh.util.concatenate(
        [trimesh.creation.box((1, 2, 0.5)), trimesh.creation.icosphere(2, 0.4).apply_translation((0.3, 1.0, 0.5))]
    )
    renderer = ViewRenderer()
    try:
        views = renderer.render(mesh.vertices, mesh.faces).astype(int)
        for degrees, shift in ((90, 3), (180, 6)):
            rot = trimesh.transformations.rotation_matrix(np.radians(degrees), [0, 0, 1])[:3, :3]
            turned = renderer.render(mesh.vertices @ rot.T, mesh.faces).astype(int)
            assert np.abs(turned - np.roll(views, shift, axis=0)).mean() < 0.5
            assert np.abs(turned - views).mean() > 5
        top_heavy = trimesh.util.concatenate(
            [
                trimesh.creation.icosphere(2, 0.6).apply_translation((0, 0, 0.8)),
                trimesh.creation.icosphere(2, 0.2).apply_translation((0, 0, -0.8)),
            ]
        )
        lit = renderer.render(top_heavy.vertices, top_heavy.faces) > 0
        assert (lit[:, :112].sum(axis=(1, 2)) > 3 * lit[:, 112:].sum(axis=(1, 2))).all()
    finally:
        renderer.release()
    mv, _ = camera_matrices()[0]
    near, far = mv @ [0, -1, 0, 1], mv @ [0, 1, 0, 1]
    assert near[2] > far[2]  # -y is nearer the camera of view 0 (OpenGL view space looks down -z)


def test_rerun_is_a_noop(mini):
    raw, out, _ = mini
    before = (out.stat().st_mtime_ns, out.stat().st_ino)
    log = []
    prepare_modelnet40(out, raw=raw, progress=False, log=log.append)
    assert "up to date" in log[0] and (out.stat().st_mtime_ns, out.stat().st_ino) == before


def test_bad_mesh_fails_in_one_line_and_skip_bad_lists_it(tmp_path):
    raw = write_mini_modelnet(tmp_path / "raw", bad=True)
    out = tmp_path / "mn.h5"
    result = CliRunner().invoke(main, ["prep", "modelnet40", "--raw", str(raw), "--out", str(out)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    error = lines[-1]  # click's one "Error: ..." line, after the stage's log lines
    assert [line for line in lines if line.startswith("Error:")] == [error]
    assert error.startswith(f"Error: {raw / BAD_FILE}: truncated") and "--skip-bad" in error
    assert not out.exists() and not list(tmp_path.glob("mn.h5.tmp-*"))

    log = []
    prepare_modelnet40(out, raw=raw, skip_bad=True, progress=False, log=log.append)
    with h5py.File(out, "r") as f:
        skipped = json.loads(f.attrs["skipped"])
        assert [s["file"] for s in skipped] == [BAD_FILE] and "truncated" in skipped[0]["error"]
        assert "airplane_0009" not in _names(f, "train") and len(f["train"]["label"]) == 3 * N_TRAIN
    assert any(BAD_FILE in line for line in log)
    assert not out.with_name("mn.h5.parts").exists()


def test_killed_stage_resumes(tmp_path, mini):
    raw, reference, _ = mini
    out = tmp_path / "mn.h5"
    cmd = [
        sys.executable,
        "-c",
        "from data_prep.modelnet40 import prepare_modelnet40 as p; import sys; "
        "p(sys.argv[1], raw=sys.argv[2], chunk=2, progress=False)",
        str(out),
        str(raw),
    ]
    env = {**os.environ, KILL_AFTER_PARTS_ENV: "3"}
    killed = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=Path(__file__).parent.parent)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not out.exists() and len(list(out.with_name("mn.h5.parts").glob("*.npz"))) == 3
    resumed = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).parent.parent)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming, 3 of 7 parts" in resumed.stderr and "rendered 6 objects" in resumed.stderr
    with h5py.File(out, "r") as f, h5py.File(reference, "r") as g:
        assert f.attrs["arrays_checksum"] == g.attrs["arrays_checksum"]
    assert not out.with_name("mn.h5.parts").exists()


def test_workers_give_the_same_file(tmp_path, mini):
    raw, reference, _ = mini
    out = prepare_modelnet40(tmp_path / "w.h5", raw=raw, workers=2, chunk=4, **QUIET)
    with h5py.File(out, "r") as f, h5py.File(reference, "r") as g:
        assert f.attrs["arrays_checksum"] == g.attrs["arrays_checksum"]
        assert f.attrs["recipe_hash"] == g.attrs["recipe_hash"]


def test_from_images_rebuilds_the_same_views(tmp_path, mini):
    """modelnet40_images_new_12x layout written from the rendered file (PNG is lossless): same arrays back."""
    from PIL import Image

    _, out, _ = mini
    images = tmp_path / "modelnet40_images_new_12x"
    with h5py.File(out, "r") as f:
        for split in ("train", "test"):
            for name, label, views in zip(_names(f, split), f[split]["label"][:], f[split]["views"][:], strict=True):
                folder = images / sorted(CLASSES)[label] / split
                folder.mkdir(parents=True, exist_ok=True)
                for k in range(12):
                    Image.fromarray(views[k]).save(folder / f"{name}.obj.shaded_v{k + 1:03d}.png")
    (images / "car" / "train" / "car_0001.obj.shaded_v012.png").unlink()  # one object misses a view
    with pytest.raises(PrepError, match="car_0001.obj.shaded_v001.png: the object has 11 views"):
        prepare_modelnet40(tmp_path / "img.h5", from_images=images, **QUIET)
    prepare_modelnet40(tmp_path / "img.h5", from_images=images, skip_bad=True, **QUIET)
    with h5py.File(out, "r") as f, h5py.File(tmp_path / "img.h5", "r") as g:
        assert g.attrs["source"] == "modelnet40_images_new_12x"
        assert np.array_equal(g["test"]["views"][:], f["test"]["views"][:])
        keep = [i for i, n in enumerate(_names(f, "train")) if n != "car_0001"]
        assert np.array_equal(g["train"]["views"][:], f["train"]["views"][:][keep])


def test_from_images_modelnet40v1_jpegs(tmp_path, mini):
    """modelnet40v1 layout (``<name>_001.jpg`` ..., white background): detected, recorded, read in view order."""
    from PIL import Image

    _, out, _ = mini
    images = tmp_path / "modelnet40v1"
    with h5py.File(out, "r") as f:
        names, labels, views = _names(f, "test"), f["test"]["label"][:], 255 - f["test"]["views"][:]
    for name, label, object_views in zip(names, labels, views, strict=True):
        folder = images / sorted(CLASSES)[label] / "test"
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(12):
            Image.fromarray(object_views[k]).convert("RGB").save(folder / f"{name}_{k + 1:03d}.jpg", quality=95)
    prepare_modelnet40(tmp_path / "v1.h5", from_images=images, **QUIET)
    with h5py.File(tmp_path / "v1.h5", "r") as g:
        assert g.attrs["source"] == "modelnet40v1" and _names(g, "test") == names
        assert len(g["train"]["label"]) == 0
        assert np.abs(g["test"]["views"][:].astype(int) - views).mean() < 2  # JPEG is lossy


def test_preview_and_inspect(tmp_path, mini):
    from PIL import Image

    _, out, _ = mini
    png = write_preview(out, tmp_path / "sheet.png", tile=64)
    with Image.open(png) as im:
        assert im.size == (12 * 64, 3 * (64 + 14)) and np.asarray(im).std() > 10
    desc = describe(out)
    assert {k: v["count"] for k, v in desc["splits"].items()} == {"train": 3 * N_TRAIN, "test": 3 * N_TEST}
    assert desc["splits"]["train"]["arrays"]["views"]["shape"] == [3 * N_TRAIN, 12, 224, 224]
    assert desc["attrs"]["classes"] == sorted(CLASSES)
    assert desc["splits"]["test"]["labels"] == {c: N_TEST for c in sorted(CLASSES)}


def test_missing_tree_and_missing_egl_errors(tmp_path, monkeypatch):
    with pytest.raises(PrepError, match="no such directory; pass --raw"):
        prepare_modelnet40(tmp_path / "o.h5", raw=tmp_path / "nowhere", **QUIET)
    import moderngl

    from data_prep import render

    def no_egl(**kw):
        raise Exception("libEGL.so: cannot open shared object file")

    monkeypatch.setattr(moderngl, "create_standalone_context", no_egl)
    with pytest.raises(PrepError, match="apt-get install libegl1 libegl-mesa0 libgl1 libgl1-mesa-dri"):
        render.ViewRenderer()


def test_chunks_carry_checksums_and_verify_recomputes_the_arrays_checksum(tmp_path, mini):
    """Format version 2: every chunk of views and label has its Fletcher-32 checksum; `repro inspect --verify`
    recomputes arrays_checksum as the stage does; a damaged view fails the reader and verify in one line each."""
    _, out, _ = mini
    with h5py.File(out) as f:
        assert f.attrs["format_version"] == 2 and "fletcher32" in json.loads(f.attrs["recipe"])["chunk_checksum"]
        for split in ("train", "test"):
            assert f[split]["views"].fletcher32 and f[split]["label"].fletcher32
    result = verify(out)
    assert result["arrays_checksum"] == "matches" and result["unchecked_chunks"] == 0
    assert result["chunks"] == 12 * 3 * (N_TRAIN + N_TEST) + 2  # a view each, and one chunk of labels per split

    copy = tmp_path / "modelnet40.h5"
    shutil.copy(out, copy)
    with h5py.File(copy) as f:
        info = f["train/views"].id.get_chunk_info_by_coord((1, 6, 0, 0))  # object 1's rear view
    with open(copy, "r+b") as fh:
        fh.seek(info.byte_offset + info.size // 2)
        fh.write(b"\x13\x37" * 4)
    rebuild = f"rebuild it with `repro prep modelnet40 --raw DIR --out {copy} --force`"
    with pytest.raises(PreparedFileError) as raised:
        load_modelnet40(copy, ("front", "rear"))
    assert str(raised.value) == (
        f"{copy}: damaged prepared ModelNet40 (a chunk fails its checksum in /train/views); {rebuild}"
    )
    load_modelnet40(copy, ("front", "view5"))  # the views that are intact still load
    with pytest.raises(PrepError) as raised:
        verify(copy)
    assert str(raised.value) == f"{copy}: damaged (chunk /train/views[1, 6] fails its checksum); {rebuild}"


def test_rendered_parts_survive_the_format_version_change(tmp_path, mini):
    """The parts of a render interrupted under format version 1 are kept: the file's format and chunk checksums do
    not concern them."""
    raw, _, _ = mini
    classes, items = list_meshes(raw)
    recipe = build_recipe("meshes", classes, items, listing_hash(raw, items), 224, False)
    old = {k: v for k, v in recipe.items() if k not in ("chunk_checksum", "skip_bad")} | {"format_version": 1}
    parts = _parts_dir(tmp_path / "m.h5", recipe)
    assert (parts / "recipe_hash").read_text().strip() == recipe_hash(old)  # the key version 1 wrote
