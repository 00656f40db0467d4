"""The ModelNet40 model (two ResNet18 branches + MMTMs after layer2-4, §5), its data loader (views as
modalities, 20% validation, random flips) and a tiny end-to-end `repro train --dataset modelnet40`."""

import json

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from data_prep.modelnet40 import prepare_modelnet40
from repro.cli import main
from repro.config import resolve
from repro.data import load_dataset
from repro.data.modelnet40 import validation_indices
from repro.models import REBALANCE, build_model
from repro.models.twobranch import TwoBranchNet, UniModalNet

from modelnet_fixtures import write_mini_modelnet


@pytest.fixture(scope="module")
def mini_h5(tmp_path_factory):
    base = tmp_path_factory.mktemp("mn40model")
    return prepare_modelnet40(
        base / "modelnet40.h5", raw=write_mini_modelnet(base / "raw"), progress=False, log=lambda m: None
    )


@pytest.fixture
def one_thread():
    """One torch thread: two ResNet18s on a shared 2-core machine are many times slower oversubscribed."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_resnet_two_branch_shapes_groups_and_gradients(one_thread):
    torch.manual_seed(0)
    model = build_model("modelnet40", (1, 1), 40)
    assert isinstance(model, TwoBranchNet)
    assert [(m.squeeze.in_features, m.excite_a.out_features) for m in model.mmtms()] == [
        (256, 128),
        (512, 256),
        (1024, 512),
    ]
    groups = model.parameter_groups()
    covered = {id(p) for g in groups.values() for p in g}
    assert covered == {id(p) for p in model.parameters()}
    assert model.branch0.stages[0][0].in_channels == 1 and model.branch0.feature_dim == 512
    x0, x1 = torch.rand(2, 1, 64, 64), torch.rand(2, 1, 64, 64)
    model.train()
    out = model(x0, x1)
    assert [tuple(t.shape) for t in out.logits] == [(2, 40), (2, 40)]
    sum(o.sum() for o in out.logits).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    with torch.no_grad():  # a re-balancing pass (A.2) runs on the gate means the training pass recorded
        model.eval()
        regular, rebalanced = model(x0, x1), model(x0, x1, fusion=REBALANCE[0])
    assert all(int(m.gate_count) == 2 for m in model.mmtms())
    assert not torch.equal(regular.logits[0], rebalanced.logits[0])
    assert isinstance(build_model("modelnet40", (1,), 40), UniModalNet)


def test_loader_views_validation_split_and_flips(mini_h5):
    with h5py.File(mini_h5, "r") as f:
        views, labels = f["train"]["views"][:], f["train"]["label"][:]
        test_views = f["test"]["views"][:]
    n = len(labels)
    val = validation_indices(n)
    assert len(val) == int(0.2 * n) and np.array_equal(val, validation_indices(n))
    train_rows = np.setdiff1d(np.arange(n), val)

    bundle = load_dataset("modelnet40", str(mini_h5), ("front", "rear"))
    assert bundle.in_channels == (1, 1) and bundle.num_classes == 3
    assert bundle.provenance["source"] == "meshes"
    s = bundle.splits
    assert (len(s["train"]), len(s["val"]), len(s["test"])) == (n - len(val), len(val), len(test_views))
    assert torch.equal(s["train"].images[0][:, 0], torch.from_numpy(views[train_rows, 0]))
    assert torch.equal(s["train"].images[1][:, 0], torch.from_numpy(views[train_rows, 6]))
    assert torch.equal(s["val"].images[0][:, 0], torch.from_numpy(views[val, 0]))
    assert torch.equal(s["test"].labels, torch.tensor([0, 1, 2]))

    same = load_dataset("modelnet40", str(mini_h5), ("front", "view0"), train_limit=2).splits["train"]
    assert len(same) == 2 and torch.equal(same.images[0], same.images[1])
    moved = same.to(torch.device("meta"))  # identical views: one copy on the device
    assert moved.images[0] is moved.images[1] and moved.flip
    with pytest.raises(ValueError, match="unknown ModelNet40 modality 'side'"):
        load_dataset("modelnet40", str(mini_h5), ("front", "side"))

    # Evaluation batches are the stored images in order; training batches flip some, reproducibly.
    (x0, _), y = next(s["train"].batches(100))
    assert torch.equal(x0[:, 0], s["train"].images[0][:, 0].float() / 255)
    runs = [next(s["train"].batches(100, generator=torch.Generator().manual_seed(3))) for _ in range(2)]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][0], runs[1][0], strict=True))
    flipped = []
    for k, batch in enumerate(runs[0][0]):  # each modality: some images mirrored, some not
        originals = s["train"].images[k].float() / 255
        flipped += [
            not torch.equal(img, originals[i]) for img, i in zip(batch, _match_rows(batch, originals), strict=True)
        ]
    assert any(flipped) and not all(flipped)


def _match_rows(batch, originals):
    """For each image of a training batch, the row of the split it came from, as is or mirrored (fails if none)."""
    rows = []
    for img in batch:
        rows.append(next(i for i, o in enumerate(originals) if torch.equal(img, o) or torch.equal(img, o.flip(2))))
    return rows


def test_paper_settings():
    cfg = resolve("modelnet40")
    assert (cfg.modality_names, cfg.lr, cfg.momentum, cfg.batch_size, cfg.alpha, cfg.window) == (
        ("front", "rear"),
        0.1,
        0.0,
        8,
        0.01,
        5,
    )


def test_train_end_to_end(mini_h5, tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--dataset",
            "modelnet40",
            "--algorithm",
            "guided",
            "--data",
            str(mini_h5),
            "--max-epochs",
            "1",
            "--threads",
            "1",
            "--progress",
            "false",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    record = json.loads((out / "record.json").read_text())
    assert record["status"] == "done" and record["modalities"] == ["front", "rear"]
    assert record["data_provenance"]["source"] == "meshes" and len(record["epochs"]) == 1
    test = record["test"]
    assert all(test[k] is not None for k in ("acc", "acc_branch0_unimodal", "d_util", "d_speed"))
