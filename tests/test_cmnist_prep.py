"""Colored-and-gray MNIST stage (and the shared prep helpers it rests on), on tiny synthetic MNIST."""

from __future__ import annotations

import json
import os

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from data_prep import cmnist
from data_prep.cli import prep
from data_prep.cmnist import DEFAULT_VARIANCE, PALETTE, build_recipe, colorize, prepare_cmnist
from data_prep.common import PrepError, atomic_h5, is_up_to_date, recipe_hash

from conftest import TINY_SPLIT_SIZES

SPLITS = ("train", "val", "test")
QUIET = {"progress": False, "log": lambda msg: None}


def _prep(out, mnist_dir, **kw):
    return prepare_cmnist(out, mnist_dir=mnist_dir, verify=False, split_sizes=TINY_SPLIT_SIZES, **{**QUIET, **kw})


def _nearest_palette(color):
    return ((color[:, None, :] - np.asarray(PALETTE)[None]) ** 2).sum(-1).argmin(1)


# --- colorize --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def many_digits():
    """5,000 random 'digits' (half the pixels black), balanced labels: enough for accuracy statistics."""
    rng = np.random.default_rng(1)
    gray = (rng.random((5000, 28, 28)) < 0.5) * rng.integers(0, 256, (5000, 28, 28))
    return gray.astype(np.uint8), rng.permutation(np.arange(5000) % 10)


@pytest.mark.parametrize("split", SPLITS)
def test_colorize_shapes_dtypes_and_formula(many_digits, split):
    gray, labels = many_digits
    mono, color, color_class = colorize(gray, labels, split, PALETTE, 0.02, np.random.default_rng(0))
    assert mono.shape == (5000, 28, 28, 3) and mono.dtype == np.uint8
    assert color.shape == (5000, 3) and color.dtype == np.float32
    assert color_class.shape == (5000,) and color_class.dtype == np.int64
    assert color.min() >= 0 and color.max() <= 1
    expected = np.rint(gray[..., None].astype(np.float64) / 255 * color[:, None, None, :].astype(np.float64) * 255)
    assert np.abs(mono.astype(int) - expected).max() <= 1  # float32 vs float64 rounding at .5 only
    assert (mono[gray == 0] == 0).all(), "background must stay black"


def test_colorize_train_color_follows_label_eval_does_not(many_digits):
    gray, labels = many_digits
    acc = {}
    for split in SPLITS:
        _, color, color_class = colorize(gray, labels, split, PALETTE, DEFAULT_VARIANCE, np.random.default_rng(0))
        if split == "train":
            np.testing.assert_array_equal(color_class, labels)
        else:  # colour class drawn independently of the label, uniformly
            assert 0.06 < np.mean(color_class == labels) < 0.14
            assert np.bincount(color_class, minlength=10).min() > 400
        acc[split] = np.mean(_nearest_palette(color) == labels)
    assert acc["train"] > 0.9
    assert 0.06 < acc["val"] < 0.14 and 0.06 < acc["test"] < 0.14


def test_colorize_zero_variance_is_the_palette(many_digits):
    gray, labels = many_digits
    _, color, _ = colorize(gray[:50], labels[:50], "train", PALETTE, 0.0, np.random.default_rng(0))
    np.testing.assert_array_equal(color, np.asarray(PALETTE, dtype=np.float32)[labels[:50]])


def test_palette_is_ten_distinct_well_separated_colours():
    p = np.asarray(PALETTE)
    d = np.sqrt(((p[:, None] - p[None]) ** 2).sum(-1))
    assert p.shape == (10, 3) and p.min() >= 0 and p.max() <= 1
    assert d[~np.eye(10, dtype=bool)].min() > 0.5
    assert p.max(1).min() >= 0.5, "no near-black colour (the digit would vanish)"


# --- prep stage ------------------------------------------------------------------------------------------
def test_prepared_file_layout(tiny_cmnist_h5, tiny_mnist):
    n = TINY_SPLIT_SIZES
    with h5py.File(tiny_cmnist_h5, "r") as f:
        for split in SPLITS:
            g = f[split]
            assert set(g) == {"mono", "gray", "label", "color", "color_class"}
            assert g["mono"].shape == (n[split], 28, 28, 3) and g["mono"].dtype == np.uint8
            assert g["gray"].shape == (n[split], 28, 28, 1) and g["gray"].dtype == np.uint8
            assert g["label"].shape == (n[split],) and g["label"].dtype == np.int64
            assert g["color"].shape == (n[split], 3) and g["color"].dtype == np.float32
            assert g["color_class"].shape == (n[split],) and g["color_class"].dtype == np.int64
            assert (g["mono"][...][g["gray"][..., 0] == 0] == 0).all()
            for name in g:  # every chunk carries its checksum
                assert g[name].fletcher32 and g[name].compression == "lzf", name
        # splits: train = MNIST train[:80], val = MNIST train[80:], test = MNIST test, in order
        np.testing.assert_array_equal(f["train/gray"][..., 0], tiny_mnist["train_images"][:80])
        np.testing.assert_array_equal(f["val/gray"][..., 0], tiny_mnist["train_images"][80:])
        np.testing.assert_array_equal(f["test/gray"][..., 0], tiny_mnist["test_images"])
        np.testing.assert_array_equal(f["val/label"], tiny_mnist["train_labels"][80:])
        np.testing.assert_array_equal(f["train/color_class"], f["train/label"])

        a = dict(f.attrs)
        assert a["dataset"] == "cmnist" and a["format_version"] == 2 and a["seed"] == 0
        recipe = json.loads(a["recipe"])
        assert a["recipe_hash"] == recipe_hash(recipe)
        assert recipe["variance"] == DEFAULT_VARIANCE and recipe["split_sizes"] == TINY_SPLIT_SIZES
        assert recipe["palette"] == [list(c) for c in PALETTE]
        assert a["source"].startswith("mnist-dir:") and len(a["source_checksum"]) == 64
        assert len(a["content_checksum"]) == 64 and len(a["arrays_checksum"]) == 64
        assert a["created_by"].startswith("greedy-multimodal-repro ")


def test_same_seed_same_file_other_seed_differs(tmp_path, tiny_mnist_dir):
    def checksum(name, seed):
        with h5py.File(_prep(tmp_path / name, tiny_mnist_dir, seed=seed), "r") as f:
            return f.attrs["arrays_checksum"]

    assert checksum("a.h5", 0) == checksum("b.h5", 0) != checksum("c.h5", 1)


def test_rerun_is_a_noop_and_does_not_load_mnist(tmp_path, tiny_mnist_dir, monkeypatch):
    out = _prep(tmp_path / "c.h5", tiny_mnist_dir)
    mtime = os.stat(out).st_mtime_ns
    monkeypatch.setattr(cmnist, "load_mnist", lambda **kw: pytest.fail("an up-to-date file must not fetch MNIST"))
    said = []
    assert _prep(out, tiny_mnist_dir, log=said.append) == out
    assert os.stat(out).st_mtime_ns == mtime
    assert any("up to date" in s for s in said)


def test_force_and_a_new_variance_rebuild(tmp_path, tiny_mnist_dir):
    out = _prep(tmp_path / "c.h5", tiny_mnist_dir)
    with h5py.File(out, "r") as f:
        first = f.attrs["recipe_hash"]
    _prep(out, tiny_mnist_dir, force=True)
    _prep(out, tiny_mnist_dir, variance=0.05)
    with h5py.File(out, "r") as f:
        assert f.attrs["recipe_hash"] != first and json.loads(f.attrs["recipe"])["variance"] == 0.05


def test_recipe_hash_depends_on_parameters_only():
    base = build_recipe(variance=0.02, seed=0)
    assert recipe_hash(base) == recipe_hash(build_recipe(variance=0.02, seed=0))
    assert recipe_hash(base) != recipe_hash(build_recipe(variance=0.03, seed=0))
    assert recipe_hash(base) != recipe_hash(build_recipe(variance=0.02, seed=1))
    assert recipe_hash(base) != recipe_hash(build_recipe(variance=0.02, seed=0, verify=False))
    assert base["split_sizes"] == {"train": 50000, "val": 10000, "test": 10000}
    assert recipe_hash({"a": 1, "b": [1, 2]}) == recipe_hash({"b": [1, 2], "a": 1})


def test_failure_mid_write_leaves_no_file_and_no_temp(tmp_path, tiny_mnist_dir, monkeypatch):
    calls = []

    def fail_on_second_split(group, arrays):
        calls.append(group.name)
        if len(calls) == 2:
            raise RuntimeError("disk full (simulated)")
        real_write(group, arrays)

    real_write = cmnist._write_split
    monkeypatch.setattr(cmnist, "_write_split", fail_on_second_split)
    with pytest.raises(RuntimeError, match="simulated"):
        _prep(tmp_path / "c.h5", tiny_mnist_dir)
    assert list(tmp_path.iterdir()) == [tiny_mnist_dir]


def test_failed_rebuild_keeps_the_old_file(tmp_path, tiny_mnist_dir, monkeypatch):
    out = _prep(tmp_path / "c.h5", tiny_mnist_dir)
    before = out.read_bytes()
    monkeypatch.setattr(cmnist, "_write_split", lambda group, arrays: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        _prep(out, tiny_mnist_dir, force=True)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.h5", "mnist"]


def test_wrong_split_sizes_are_a_clear_error(tmp_path, tiny_mnist_dir):
    with pytest.raises(PrepError, match="recipe needs 60000 / 10000"):
        prepare_cmnist(tmp_path / "c.h5", mnist_dir=tiny_mnist_dir, verify=False, **QUIET)
    assert not (tmp_path / "c.h5").exists()


# --- shared helpers --------------------------------------------------------------------------------------
def test_atomic_h5_and_is_up_to_date(tmp_path):
    out = tmp_path / "sub" / "x.h5"
    recipe = {"k": 1}
    assert not is_up_to_date(out, recipe)
    with pytest.raises(KeyError), atomic_h5(out) as f:
        f["a"] = np.zeros(3)
        raise KeyError("boom")
    assert not out.exists() and list(out.parent.iterdir()) == []
    with atomic_h5(out) as f:
        f.attrs["recipe_hash"] = recipe_hash(recipe)
    assert is_up_to_date(out, recipe) and not is_up_to_date(out, {"k": 2})
    (tmp_path / "junk.h5").write_text("not hdf5")
    assert not is_up_to_date(tmp_path / "junk.h5", recipe)


# --- CLI -------------------------------------------------------------------------------------------------
def test_cli_prep_cmnist(tmp_path, tiny_mnist_dir):
    out = tmp_path / "c.h5"
    args = [
        "cmnist",
        "--out",
        str(out),
        "--mnist-dir",
        str(tiny_mnist_dir),
        "--no-verify",
        "--split-sizes",
        "80,40,40",
        "--variance",
        "0.03",
        "--seed",
        "2",
    ]
    r = CliRunner().invoke(prep, args)
    assert r.exit_code == 0, r.output
    with h5py.File(out, "r") as f:
        recipe = json.loads(f.attrs["recipe"])
        assert recipe["variance"] == 0.03 and recipe["seed"] == 2 and recipe["mnist_content_sha256"] == "unverified"
    r = CliRunner().invoke(prep, args)
    assert r.exit_code == 0 and "up to date" in r.output


def test_cli_always_verifies_unless_told(tmp_path, tiny_mnist_dir):
    r = CliRunner().invoke(
        prep,
        [
            "cmnist",
            "--out",
            str(tmp_path / "c.h5"),
            "--mnist-dir",
            str(tiny_mnist_dir),
            "--split-sizes",
            "80,40,40",
        ],
    )
    assert r.exit_code == 1
    last = r.output.strip().splitlines()[-1]
    assert last.startswith("Error: MNIST from mnist-dir:") and "content sha256" in last
    assert not (tmp_path / "c.h5").exists()
