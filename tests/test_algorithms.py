"""The algorithms: every parameter learns, RUBi's loss, the guided state machine (Alg. 1), random steps (A.3)."""

import pytest
import torch
import torch.nn.functional as F

from repro.algorithms import ALGORITHMS, AlgorithmData
from repro.algorithms.balanced import Guided, GuidedReference
from repro.config import resolve
from repro.data.memory import InMemorySplit
from repro.models import REBALANCE, REGULAR, build_model


def _setup(algorithm, **overrides):
    torch.manual_seed(0)
    cfg = resolve("cmnist", algorithm=algorithm, **overrides)
    model = build_model("cmnist", (3, 1), 10)
    alg = ALGORITHMS[algorithm](model, cfg)
    return alg, torch.optim.SGD(alg.parameters(), lr=0.01, momentum=0.9), cfg


def _batch(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    inputs = torch.rand(n, 3, 28, 28, generator=g), torch.rand(n, 1, 28, 28, generator=g)
    return inputs, torch.randint(10, (n,), generator=g)


def test_every_parameter_gets_a_finite_gradient_in_a_regular_step():
    inputs, y = _batch()
    as_bytes = tuple((x * 255).to(torch.uint8) for x in inputs)
    split = InMemorySplit(as_bytes, y)  # the data PMR's prototypes and G-Blending's held-out losses read
    for name in ALGORITHMS:
        alg, opt, _ = _setup(name)
        alg.data = AlgorithmData(split, split, 16)
        alg.begin_epoch(1)
        result = alg.training_step(inputs, y, opt)
        assert torch.isfinite(result.loss)
        for pname, p in alg.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), f"{name}: {pname}"


def test_rubi_masks_logits_with_the_bias_branch_and_trains_it_alone():
    alg, _, _ = _setup("rubi")
    inputs, y = _batch()
    out = alg.model(*inputs)
    q = alg.bias_mlp(out.features[0].detach())
    expected = sum(F.cross_entropy(lg * torch.sigmoid(q), y) for lg in out.logits)
    expected = expected + F.cross_entropy(alg.bias_classifier(q), y)
    torch.testing.assert_close(alg.loss(out, y), expected)
    # The bias branch reads detached features: its loss alone sends nothing into the model.
    alg.zero_grad()
    F.cross_entropy(alg.bias_classifier(alg.bias_mlp(alg.model(*inputs).features[0].detach())), y).backward()
    assert all(p.grad is None for p in alg.model.parameters())


class ScriptedSpeed:
    """Stands in for d_speed with a scripted sequence of values (the last one repeats)."""

    def __init__(self, values):
        self.values = list(values)

    def __call__(self):
        return torch.tensor(self.values.pop(0) if len(self.values) > 1 else self.values[0], dtype=torch.float64)


@pytest.mark.parametrize("cls", [Guided, GuidedReference])
def test_guided_state_machine_follows_algorithm_1(cls):
    torch.manual_seed(0)
    cfg = resolve("cmnist", algorithm="guided", alpha=0.1, window=3)
    alg = cls(build_model("cmnist", (3, 1), 10), cfg)
    kinds = []

    def step(d=None):
        fusion = alg.next_fusion()
        kinds.append("R" if fusion.is_regular else f"B{fusion.rebalance}")
        if d is not None:
            alg.speed.d_speed = ScriptedSpeed([d])
        alg.after_step(fusion)

    alg.begin_epoch(1)  # warm-up: regular steps whatever d_speed says
    step(5.0)
    step(5.0)
    alg.begin_epoch(2)
    step(0.05)  # |d| <= alpha: stay regular
    step(0.5)  # d > alpha: accelerate m0 for Q = 3 steps
    step(), step(), step()
    step(-0.2)  # regular again; d < -alpha: accelerate m1
    step(), step(), step()
    step(0.0)
    assert kinds == ["R", "R", "R", "R", "B0", "B0", "B0", "R", "B1", "B1", "B1", "R"]


def test_random_steps_are_uniform_and_reproducible():
    alg, _, _ = _setup("random")
    alg.begin_epoch(1)
    assert all(alg.next_fusion() is REGULAR for _ in range(20))
    alg.begin_epoch(2)
    draws = [alg.next_fusion() for _ in range(3000)]
    counts = [sum(d is f for d in draws) for f in (REGULAR, *REBALANCE)]
    assert all(900 < c < 1100 for c in counts), counts
    alg.begin_epoch(2)
    assert [alg.next_fusion() for _ in range(3000)] == draws  # a function of (seed, epoch): resumable
