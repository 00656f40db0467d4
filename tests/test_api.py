"""The public API (repro/api.py, docs/own-model.md): its names, the builder, the algorithms in a user's loop, the
diagnostics equal to the engine's for the same weights and batches, and the worked example's greedy effect."""

from __future__ import annotations

import copy
import importlib.util
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import repro
from repro.algorithms import seed_for
from repro.api import LOOP_FIELDS
from repro.config import resolve
from repro.engine import Environment, Run, train
from repro.engine.checkpoint import load_torch
from repro.metrics.utilization import branch_accuracies, compute_squeeze_means
from repro.metrics.utilization import utilization_rates as rates_from_accuracies
from repro.registry import ALGORITHMS
from repro.rundir import BEST_NAME, CHECKPOINT_NAME

from engine_fixtures import toy_two_branch

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = [
    "MMTM",
    "Algorithm",
    "ConditionalSpeed",
    "ModelOutput",
    "TwoBranchNet",
    "make_algorithm",
    "two_branch",
    "utilization_rates",
]


def _example():
    spec = importlib.util.spec_from_file_location("own_model", ROOT / "examples" / "own_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the names ----------------------------------------------------------------------------------------------------
def test_all_lists_exactly_the_public_names_each_documented_with_the_paper():
    assert repro.__all__ == PUBLIC
    api = importlib.import_module("repro.api")
    assert api.__all__ == PUBLIC
    for name in PUBLIC:
        obj = getattr(repro, name)
        assert obj is getattr(api, name)
        doc = inspect.getdoc(obj)
        assert doc, name
        assert re.search(r"§\d|Def\. \d|Alg\. \d|Fig\. \d|A\.\d", doc), f"{name}'s docstring cites no part of the paper"
    public_functions = {n for n, v in vars(api).items() if inspect.isfunction(v) and v.__module__ == api.__name__}
    assert {n for n in public_functions if not n.startswith("_")} <= set(PUBLIC)
    assert set(PUBLIC) <= set(dir(repro))
    with pytest.raises(AttributeError):
        repro.no_such_name  # noqa: B018


def test_import_repro_loads_no_torch_until_a_name_is_used():
    code = (
        "import sys, repro, repro.config, repro.registry\n"
        "print('torch' in sys.modules)\n"
        "repro.two_branch\n"
        "print('torch' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "True"]


# --- the builder --------------------------------------------------------------------------------------------------
def _mlp(inputs: int, hidden: int = 8) -> list[nn.Module]:
    return [nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU()), nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU())]


def test_two_mlps_on_feature_vectors():
    torch.manual_seed(0)
    model = repro.two_branch(_mlp(5), _mlp(7, hidden=6), num_classes=3, example=((5,), (7,)), fuse_after=[1])
    assert isinstance(model, repro.TwoBranchNet) and len(model.mmtms()) == 1
    mmtm = model.mmtms()[0]
    assert (mmtm.gate_mean_a.numel(), mmtm.gate_mean_b.numel()) == (8, 6)  # the two widths after stage 1
    x0, x1 = torch.randn(4, 5), torch.randn(4, 7)
    out = model(x0, x1)
    assert isinstance(out, repro.ModelOutput) and out.prediction.shape == (4, 3)
    # MMTM on (N, C) vectors: the squeeze is the vector itself, the gate scales each feature
    h0, h1 = model.branch0.stages[1](model.branch0.stages[0](x0)), model.branch1.stages[1](model.branch1.stages[0](x1))
    z = torch.relu(mmtm.squeeze(torch.cat([h0, h1], 1)))
    g0, g1 = torch.sigmoid(mmtm.excite_a(z)), torch.sigmoid(mmtm.excite_b(z))
    torch.testing.assert_close(out.logits[0], model.branch0.head(h0 * g0))
    torch.testing.assert_close(out.logits[1], model.branch1.head(h1 * g1))


def test_conv_stages_of_different_widths_from_a_batch():
    def convs(c_in, widths):
        pairs = zip((c_in, *widths[:-1]), widths, strict=True)
        return [nn.Sequential(nn.Conv2d(a, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU()) for a, b in pairs]

    torch.manual_seed(0)
    stages0, stages1 = convs(3, (4, 8, 16)), convs(1, (2, 6, 12))
    x0, x1 = torch.randn(2, 3, 10, 10), torch.randn(2, 1, 12, 12)
    model = repro.two_branch(stages0, stages1, num_classes=5, example=(x0, x1), fuse_after=[2, 0])
    assert [(m.gate_mean_a.numel(), m.gate_mean_b.numel()) for m in model.mmtms()] == [(4, 2), (16, 12)]
    assert model.branch0.head.in_features == 16 and model.branch1.head.in_features == 12
    assert all(m.training for m in model.modules())  # the dry pass left no stage in evaluation mode
    assert all(float(s[1].num_batches_tracked) == 0 for s in stages0)  # nor touched the batch-norm statistics
    algorithm = repro.make_algorithm("guided", model, warmup_epochs=0, alpha=0.0)
    optimizer = torch.optim.SGD(algorithm.parameters(), lr=0.01)
    algorithm.begin_epoch(1)
    for _ in range(3):
        step = algorithm.training_step((x0, x1), torch.tensor([0, 4]), optimizer)
    assert int(step.fusion.code) in (0, 1)  # alpha 0: re-balancing after the first regular step
    assert model(x0, x1).prediction.shape == (2, 5)


def test_builder_refuses_what_cannot_be_fused():
    with pytest.raises(ValueError, match="same number of stages"):
        repro.two_branch(_mlp(3)[:1], _mlp(3), num_classes=2, example=((3,), (3,)))
    with pytest.raises(ValueError, match="fuse_after"):
        repro.two_branch(_mlp(3), _mlp(3), num_classes=2, example=((3,), (3,)), fuse_after=[2])


# --- the algorithms in a user's loop ------------------------------------------------------------------------------
def _pairs(n: int = 48, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x0, x1, y = torch.randn(n, 5, generator=g), torch.randn(n, 7, generator=g), torch.randint(3, (n,), generator=g)
    return [((x0[i], x1[i]), y[i]) for i in range(n)]


@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_every_registered_algorithm_trains_in_a_users_loop(name):
    torch.manual_seed(0)
    model = repro.two_branch(_mlp(5), _mlp(7), num_classes=3, example=((5,), (7,)))
    data = _pairs()
    algorithm = repro.make_algorithm(
        name, model, train_set=data[:40], holdout_set=data[40:], eval_batch_size=16, warmup_epochs=0
    )
    assert isinstance(algorithm, repro.Algorithm) and algorithm.cfg.algorithm == name
    optimizer = torch.optim.SGD(algorithm.parameters(), lr=0.05, momentum=0.9)
    loader = torch.utils.data.DataLoader(data[:40], batch_size=8, shuffle=True)
    before = copy.deepcopy(model.state_dict())
    for epoch in (1, 2):
        algorithm.begin_epoch(epoch)
        algorithm.train()
        for inputs, y in loader:
            step = algorithm.training_step(inputs, y, optimizer)
            assert torch.isfinite(step.loss)
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    d = algorithm.d_speed()
    assert d is not None and d == d  # finite or infinite, never NaN


def test_make_algorithm_refuses_what_is_not_an_algorithms():
    model = repro.two_branch(_mlp(5), _mlp(7), num_classes=3, example=((5,), (7,)))
    with pytest.raises(ValueError, match="unknown algorithm"):
        repro.make_algorithm("no-such", model)
    with pytest.raises(TypeError, match="lr"):
        repro.make_algorithm("guided", model, lr=0.1)
    with pytest.raises(TypeError, match="nonsense"):
        repro.make_algorithm("guided", model, nonsense=1)
    with pytest.raises(ValueError, match="holdout_set"):
        repro.make_algorithm("gblend", model)
    with pytest.raises(ValueError, match="moddrop-p must be in"):  # the same range checks as `repro train`
        repro.make_algorithm("moddrop", model, moddrop_p=1.5)
    assert {"lr", "batch_size", "max_epochs", "dataset"} <= LOOP_FIELDS


def test_the_documented_conditional_speed_loop_equals_the_algorithms_d_speed():
    """docs/own-model.md and ConditionalSpeed's docstring: tracking Def. 4.1 by hand in a plain loop gives the same
    d_speed as the vanilla algorithm's over the same steps."""
    torch.manual_seed(0)
    model = repro.two_branch(_mlp(5), _mlp(7), num_classes=3, example=((5,), (7,)))
    by_hand = copy.deepcopy(model)
    algorithm = repro.make_algorithm("vanilla", model)
    speed = repro.ConditionalSpeed(by_hand.parameter_groups())
    opt_a = torch.optim.SGD(algorithm.parameters(), lr=0.05, momentum=0.9)
    opt_b = torch.optim.SGD(by_hand.parameters(), lr=0.05, momentum=0.9)
    loader = torch.utils.data.DataLoader(_pairs(), batch_size=8)
    algorithm.begin_epoch(1)
    for (x0, x1), y in loader:
        algorithm.training_step((x0, x1), y, opt_a)
        loss = sum(F.cross_entropy(logits, y) for logits in by_hand(x0, x1).logits)
        opt_b.zero_grad()
        loss.backward()
        g = speed.gradient_sq()
        opt_b.step()
        speed.update(g)
        assert algorithm.d_speed() == float(speed.d_speed())


# --- the diagnostics equal the engine's ---------------------------------------------------------------------------
def test_utilization_rates_from_a_dataloader_equal_the_metric_functions():
    torch.manual_seed(0)
    model = toy_two_branch().eval()
    g = torch.Generator().manual_seed(1)
    x0, x1, y = torch.randn(40, 3, generator=g), torch.randn(40, 3, generator=g), torch.randint(4, (40,), generator=g)
    data = [((x0[i], x1[i]), y[i]) for i in range(40)]
    loaders = [torch.utils.data.DataLoader(part, batch_size=b) for part, b in ((data[:24], 7), (data[24:], 5))]
    api = repro.utilization_rates(model, *loaders)
    by_parts = copy.deepcopy(model)
    compute_squeeze_means(by_parts, [((x0[:24], x1[:24]), y[:24])])
    accs = branch_accuracies(by_parts, [((x0[24:], x1[24:]), y[24:])])
    expected = {**accs, **rates_from_accuracies(accs)}
    assert api.keys() == expected.keys()
    for key, value in expected.items():
        assert api[key] == pytest.approx(value, abs=1e-12), key
    with pytest.raises(ValueError, match="two-branch"):
        repro.utilization_rates(nn.Linear(2, 2), [], [])


@pytest.mark.parametrize("algorithm", ["guided", "random"])
def test_the_apis_algorithm_and_diagnostics_equal_the_engines(tiny_cmnist, tmp_path, algorithm):
    """A user's loop with make_algorithm over the engine's batches reproduces the engine's run step for step
    (d_speed after every epoch, the final weights), and utilization_rates on the kept checkpoint is its test record."""
    small = dict(max_epochs=2, batch_size=32, progress=False, threads=1, alpha=0.0, seed=3)
    cfg = resolve("cmnist", data=str(tiny_cmnist), algorithm=algorithm, **small)
    record = train(cfg, tmp_path / "run")
    mine = Run(cfg, tmp_path / "mine")
    assert not mine.prepare(Environment.open(cfg))  # the engine's model, freshly initialised from the run's seed
    model, env = mine.model, mine.env
    user = repro.make_algorithm(algorithm, model, alpha=cfg.alpha, window=cfg.window, seed=cfg.seed)
    optimizer = torch.optim.SGD(user.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    for epoch in (1, 2):
        user.begin_epoch(epoch)
        user.train()
        order = torch.Generator().manual_seed(seed_for(cfg.seed, "data", epoch))
        for inputs, y in env.splits["train"].batches(cfg.batch_size, generator=order):
            user.training_step(inputs, y, optimizer)
        assert user.d_speed() == record["epochs"][epoch - 1]["d_speed"]
    assert sum(e["rebalance_steps"] for e in record["epochs"]) > 0  # the comparison covers re-balancing steps
    engine_state = load_torch(tmp_path / "run" / CHECKPOINT_NAME)["algorithm"]
    for key, value in model.state_dict().items():
        assert torch.equal(value, engine_state[f"model.{key}"]), key

    model.load_state_dict(load_torch(tmp_path / "run" / BEST_NAME)["model"])
    batches = {name: env.splits[name].batches(env.eval_batch_size) for name in ("train", "test")}
    rates = repro.utilization_rates(model, batches["train"], batches["test"])
    assert rates == {key: record["test"][key] for key in rates}
    assert len(rates) == 8


# --- the worked example -------------------------------------------------------------------------------------------
def test_the_example_shows_the_greedy_effect(capsys):
    results = _example().main(["--seed", "0"])
    printed = capsys.readouterr().out
    vanilla, guided = results["vanilla"], results["guided"]
    for name, r in results.items():
        row = next(line for line in printed.splitlines() if line.startswith(name + " "))
        assert f"{r['acc']:.2f}" in row and f"{r['d_util']:+.3f}" in row and f"{r['d_speed']:+.3f}" in row, printed
    assert guided["acc"] > vanilla["acc"] + 10  # guided lets branch 1 learn the true signal
    assert guided["acc_branch1"] > vanilla["acc_branch1"] + 20
    assert abs(vanilla["d_util"]) > abs(guided["d_util"]) + 0.2
    assert vanilla["u_m0_given_m1"] < -0.2 < guided["u_m0_given_m1"]  # the shortcut misleads vanilla's branch 1
    assert vanilla["d_speed"] < -0.1  # so guided accelerates m1
    assert vanilla["rebalance_m1"] == 0 < guided["rebalance_m1"]
