"""Conditional learning speed (Def. 4.1) against a hand computation on a toy two-branch model."""

import math

import torch
import torch.nn.functional as F

from repro.metrics.speed import ConditionalSpeed

from engine_fixtures import toy_two_branch


def _group_of(name: str) -> list[str]:
    """Hand-written membership by parameter name (§4.1, footnote 1): shared squeeze in both fusion groups."""
    if name.startswith("branch0."):
        return ["theta0"]
    if name.startswith("branch1."):
        return ["theta1"]
    if ".squeeze." in name:
        return ["theta0_fusion", "theta1_fusion"]
    if ".excite_a." in name:
        return ["theta0_fusion"]
    if ".excite_b." in name:
        return ["theta1_fusion"]
    raise AssertionError(name)


def test_d_speed_equals_hand_computation():
    torch.manual_seed(0)
    model = toy_two_branch()
    speed = ConditionalSpeed(model.parameter_groups(), log_base=10)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    hand = dict.fromkeys(["theta0", "theta0_fusion", "theta1", "theta1_fusion"], 0.0)
    for _ in range(3):
        x0, x1, y = torch.randn(8, 3), torch.randn(8, 3), torch.randint(4, (8,))
        out = model(x0, x1)
        loss = F.cross_entropy(out.logits[0], y) + F.cross_entropy(out.logits[1], y)
        opt.zero_grad()
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters()}
        g2 = speed.gradient_sq()
        opt.step()
        speed.update(g2)
        num, den = dict.fromkeys(hand, 0.0), dict.fromkeys(hand, 0.0)
        for n, p in model.named_parameters():
            for group in _group_of(n):
                num[group] += float((grads[n] ** 2).sum())  # ||G||^2, G taken before the step
                den[group] += float((p.detach() ** 2).sum())  # ||theta_(i)||^2, after the step
        for group in hand:
            hand[group] += num[group] / den[group]
    s10 = math.log10(hand["theta0_fusion"] / hand["theta0"])
    s01 = math.log10(hand["theta1_fusion"] / hand["theta1"])
    assert math.isclose(float(speed.d_speed()), s10 - s01, rel_tol=1e-5, abs_tol=1e-7)
    torch.testing.assert_close(speed.speeds(), torch.tensor([s10, s01], dtype=torch.float64), rtol=1e-5, atol=1e-7)


def test_log_base_only_rescales():
    torch.manual_seed(0)
    model = toy_two_branch()
    s10 = ConditionalSpeed(model.parameter_groups(), log_base=10)
    se = ConditionalSpeed(model.parameter_groups(), log_base=math.e)
    out = model(torch.randn(4, 3), torch.randn(4, 3))
    (out.logits[0].sum() + out.logits[1].sum()).backward()
    for s in (s10, se):
        s.update(s.gradient_sq())
    assert math.isclose(float(se.d_speed()), float(s10.d_speed()) * math.log(10), rel_tol=1e-6)


def test_parameter_without_gradient_counts_as_zero():
    model = toy_two_branch()
    speed = ConditionalSpeed(model.parameter_groups())
    assert float(speed.gradient_sq().sum()) == 0.0  # no backward yet: every gradient is None
