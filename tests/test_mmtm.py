"""MMTM (Joze et al. 2020; paper A.1, A.2): shapes, gating, running gate means, cut and re-balancing."""

import pytest
import torch

from repro.models.fusion import CUT, REBALANCE, REGULAR, Fusion
from repro.models.mmtm import MMTM


def _maps(batch=5, ca=4, cb=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, ca, 3, 3, generator=g), torch.randn(batch, cb, 2, 2, 2, generator=g)


def test_shapes_and_hidden_size():
    m = MMTM(4, 6, ratio=4)
    assert m.squeeze.out_features == int(2 * 10 / 4)
    a, b = _maps()
    out_a, out_b = m(a, b)
    assert out_a.shape == a.shape and out_b.shape == b.shape


def test_gating_is_sigmoid_of_excitation_channelwise():
    torch.manual_seed(0)
    m = MMTM(4, 6)
    a, b = _maps()
    s_a, s_b = a.mean((2, 3)), b.mean((2, 3, 4))
    z = torch.relu(m.squeeze(torch.cat([s_a, s_b], 1)))
    gate_a, gate_b = torch.sigmoid(m.excite_a(z)), torch.sigmoid(m.excite_b(z))
    out_a, out_b = m(a, b)
    torch.testing.assert_close(out_a, a * gate_a[:, :, None, None])
    torch.testing.assert_close(out_b, b * gate_b[:, :, None, None, None])
    with torch.no_grad():  # zero excitation: every gate is sigma(0) = 1/2
        for lin in (m.excite_a, m.excite_b):
            lin.weight.zero_()
            lin.bias.zero_()
    out_a, out_b = m(a, b)
    torch.testing.assert_close(out_a, a / 2)
    torch.testing.assert_close(out_b, b / 2)


def test_running_gate_means_track_regular_training_steps_only():
    torch.manual_seed(0)
    m = MMTM(4, 6)
    seen_a, seen_b = [], []
    m.train()
    for seed, batch in enumerate((3, 5, 2)):  # unequal batches: a per-sample mean, not a mean of means
        a, b = _maps(batch=batch, seed=seed)
        with torch.no_grad():
            ga, gb = m.gates(a.mean((2, 3)), b.mean((2, 3, 4)))
        seen_a.append(ga)
        seen_b.append(gb)
        m(a, b)
    torch.testing.assert_close(m.gate_mean_a, torch.cat(seen_a).mean(0))
    torch.testing.assert_close(m.gate_mean_b, torch.cat(seen_b).mean(0))
    assert int(m.gate_count) == 10
    frozen = {k: v.clone() for k, v in m.state_dict().items()}
    a, b = _maps(seed=9)
    m(a, b, fusion=REBALANCE[0])  # re-balancing step: not a regular step
    m.eval()
    m(a, b)  # evaluation pass
    for k, v in m.state_dict().items():
        torch.testing.assert_close(v, frozen[k], msg=f"{k} changed outside a regular training step")


def test_buffers_are_saved_restored_and_moved():
    m = MMTM(4, 6)
    keys = set(m.state_dict())
    assert {"gate_mean_a", "gate_mean_b", "gate_count", "squeeze_mean_a", "squeeze_mean_b"} <= keys
    m.train()
    m(*_maps())
    clone = MMTM(4, 6)
    clone.load_state_dict(m.state_dict())
    torch.testing.assert_close(clone.gate_mean_b, m.gate_mean_b)
    assert m.to(torch.float64).gate_mean_a.dtype == torch.float64


@pytest.mark.parametrize("k", [0, 1])
def test_rebalancing_replaces_branch_k_gates_by_the_running_mean(k):
    torch.manual_seed(0)
    m = MMTM(4, 6).train()
    for seed in range(3):
        m(*_maps(seed=seed))
    a, b = _maps(seed=7)
    out = m(a, b, fusion=REBALANCE[k])
    x, mean = (a, m.gate_mean_a) if k == 0 else (b, m.gate_mean_b)
    gate = (out[k] / x).flatten(2)[:, :, 0]  # the factor each channel was scaled by
    torch.testing.assert_close(gate, mean.expand_as(gate))  # constant across the batch, = running mean
    other_x = b if k == 0 else a
    assert not torch.allclose((out[1 - k] / other_x).flatten(2)[:, :, 0].std(0), torch.zeros(1))


def test_cut_makes_each_branch_blind_to_the_other_modality():
    torch.manual_seed(0)
    m = MMTM(4, 6).eval()
    m.squeeze_mean_a.normal_()
    m.squeeze_mean_b.normal_()
    a, b = _maps(seed=1)
    a2, b2 = _maps(seed=2)
    out_a, out_b = m(a, b, fusion=CUT)
    torch.testing.assert_close(m(a, b2, fusion=CUT)[0], out_a)  # f'_0 ignores m1
    torch.testing.assert_close(m(a2, b, fusion=CUT)[1], out_b)  # f'_1 ignores m0
    assert not torch.allclose(m(a, b2)[0], m(a, b)[0])  # while the fused module does not


def test_fusion_rejects_nonsense():
    with pytest.raises(ValueError):
        Fusion(rebalance=2)
    with pytest.raises(ValueError):
        Fusion(rebalance=0, cut=True)
    assert REGULAR.is_regular and not CUT.is_regular
