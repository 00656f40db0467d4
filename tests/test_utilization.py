"""Conditional utilization rates (Def. 2.1) and the A.1 uni-modal derivation, against hand computations."""

import math

import torch

from repro.metrics.utilization import branch_accuracies, compute_squeeze_means, utilization_rates

from engine_fixtures import toy_two_branch


def test_rates_equal_hand_computation():
    accs = {"acc_branch0": 80.0, "acc_branch0_unimodal": 60.0, "acc_branch1": 90.0, "acc_branch1_unimodal": 99.0}
    r = utilization_rates(accs)
    assert math.isclose(r["u_m1_given_m0"], (80 - 60) / 80)
    assert math.isclose(r["u_m0_given_m1"], (90 - 99) / 90)  # negative: cutting m0 helps branch 1
    assert math.isclose(r["d_util"], 0.25 - (-0.1))  # > 0 and outside nothing: reported as computed
    assert math.isnan(utilization_rates({**accs, "acc_branch0": 0.0})["u_m1_given_m0"])


def _batches(n=40, bs=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    x0, x1, y = torch.randn(n, 3, generator=g), torch.randn(n, 3, generator=g), torch.randint(4, (n,), generator=g)
    return [((x0[i : i + bs], x1[i : i + bs]), y[i : i + bs]) for i in range(0, n, bs)]


def test_squeeze_means_are_training_set_means_of_the_mmtm_inputs():
    torch.manual_seed(0)
    model = toy_two_branch()
    batches = _batches()
    compute_squeeze_means(model, batches)
    mmtm = model.mmtms()[0]
    with torch.no_grad():
        h0 = torch.cat([model.branch0.stages[0](x0) for (x0, _), _ in batches])
        h1 = torch.cat([model.branch1.stages[0](x1) for (_, x1), _ in batches])
    torch.testing.assert_close(mmtm.squeeze_mean_a, h0.mean(0))
    torch.testing.assert_close(mmtm.squeeze_mean_b, h1.mean(0))
    assert int(mmtm.gate_count) == 0  # an evaluation pass: running gate means untouched


def test_branch_accuracies_by_hand():
    torch.manual_seed(0)
    model = toy_two_branch().eval()
    batches = _batches(seed=1)
    compute_squeeze_means(model, batches)
    accs = branch_accuracies(model, batches)
    mmtm = model.mmtms()[0]
    hits = torch.zeros(5)
    with torch.no_grad():
        for (x0, x1), y in batches:
            h0, h1 = model.branch0.stages[0](x0), model.branch1.stages[0](x1)
            z = torch.relu(mmtm.squeeze(torch.cat([h0, h1], 1)))
            l0 = model.branch0.head(h0 * torch.sigmoid(mmtm.excite_a(z)))
            l1 = model.branch1.head(h1 * torch.sigmoid(mmtm.excite_b(z)))
            # A.1: Z_A = W[S_A, mean S_B], Z_B = W[mean S_A, S_B]
            za = torch.relu(mmtm.squeeze(torch.cat([h0, mmtm.squeeze_mean_b.expand_as(h1)], 1)))
            zb = torch.relu(mmtm.squeeze(torch.cat([mmtm.squeeze_mean_a.expand_as(h0), h1], 1)))
            c0 = model.branch0.head(h0 * torch.sigmoid(mmtm.excite_a(za)))
            c1 = model.branch1.head(h1 * torch.sigmoid(mmtm.excite_b(zb)))
            for i, logits in enumerate(((l0 + l1) / 2, l0, l1, c0, c1)):
                hits[i] += (logits.argmax(1) == y).sum()
    expected = (100 * hits / 40).tolist()
    names = ["acc", "acc_branch0", "acc_branch1", "acc_branch0_unimodal", "acc_branch1_unimodal"]
    for name, value in zip(names, expected, strict=True):
        assert math.isclose(accs[name], value, abs_tol=1e-9), name
