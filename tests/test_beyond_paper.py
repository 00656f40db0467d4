"""The methods beyond the paper (OGM-GE, G-Blending, ModDrop, PMR): each core rule against a hand computation on a
toy model, the engine's wiring (held-out part, per-epoch statistics), and one epoch of each on each dataset's
miniature."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from repro.algorithms import ALGORITHMS, Algorithm, AlgorithmData, seed_for
from repro.algorithms.gblend import GBlending, blend_weights
from repro.algorithms.moddrop import ModDrop, drop_draws
from repro.algorithms.ogm_ge import OGMGE, ogm_coefficients
from repro.algorithms.pmr import PMR, class_means, entropy, pmr_coefficients, prototype_logits
from repro.config import resolve
from repro.engine import train
from repro.registry import ALGORITHMS as SPECS

from engine_fixtures import toy_two_branch

NEW = ("ogm_ge", "gblend", "moddrop", "pmr")


def _softmax_true(logits: list[list[float]], y: list[int]) -> float:
    """Σ_i softmax(z_i)[y_i], by hand."""
    return sum(math.exp(z[t]) / sum(math.exp(v) for v in z) for z, t in zip(logits, y, strict=True))


class _Split:
    """A split of feature vectors in one batch (the interface algorithms read: ``len`` and ``batches``)."""

    def __init__(self, inputs, y):
        self.inputs, self.y = inputs, y

    def __len__(self) -> int:
        return len(self.y)

    def batches(self, batch_size, generator=None):
        yield self.inputs, self.y

    def subset(self, indices):
        return self


def _toy(seed: int = 0):
    torch.manual_seed(seed)
    model = toy_two_branch(features=3, classes=4).double()
    x0, x1 = torch.randn(6, 3, dtype=torch.float64), torch.randn(6, 3, dtype=torch.float64)
    return model, (x0, x1), torch.tensor([0, 1, 2, 3, 0, 1])


def test_registry_lists_them_beyond_the_paper():
    for name in NEW:
        assert not SPECS[name].paper and not SPECS[name].packable and SPECS[name].needs_two_modalities
        assert issubclass(ALGORITHMS[name], Algorithm)


# --- OGM-GE ---


def test_ogm_coefficient_by_hand():
    z0, z1, y = [[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]], [[0.0, 0.0, 0.0], [0.0, 0.0, 3.0]], [0, 1]
    s0, s1 = _softmax_true(z0, y), _softmax_true(z1, y)
    alpha = 0.3
    expected = [1 - math.tanh(alpha * (s0 / s1 - 1)), 1.0]  # branch 0 dominates (s0 > s1)
    got = ogm_coefficients((torch.tensor(z0), torch.tensor(z1)), torch.tensor(y), alpha)
    assert got.tolist() == pytest.approx(expected, rel=1e-6)
    swapped = ogm_coefficients((torch.tensor(z1), torch.tensor(z0)), torch.tensor(y), alpha)
    assert swapped.tolist() == pytest.approx(expected[::-1], rel=1e-6)


def _gradients(alg: Algorithm, inputs, y) -> dict[str, torch.Tensor]:
    alg.zero_grad()
    out = alg.model(*inputs)
    alg.loss(out, y).backward()
    alg.after_backward(out, y)
    return {n: p.grad.clone() for n, p in alg.model.named_parameters()}


def test_ogm_scales_the_dominant_encoder_and_adds_noise_of_its_std():
    model, inputs, y = _toy()
    cfg = resolve("cmnist", algorithm="ogm_ge", ogm_alpha=0.5, ogm_noise=False)
    plain = Algorithm(copy.deepcopy(model), cfg)
    plain.begin_epoch(1)
    g = _gradients(plain, inputs, y)
    ogm = OGMGE(model, cfg)
    ogm.begin_epoch(1)
    k = ogm_coefficients(model(*inputs).logits, y, 0.5)
    assert (k < 1).sum() == 1  # one branch dominates on this batch
    scaled = _gradients(ogm, inputs, y)
    for name, grad in scaled.items():
        factor = k[0] if name.startswith("branch0.") else k[1] if name.startswith("branch1.") else 1.0
        torch.testing.assert_close(grad, factor * g[name], rtol=1e-12, atol=1e-15)  # MMTMs (fusion.*): unchanged

    noisy = OGMGE(copy.deepcopy(model), resolve("cmnist", algorithm="ogm_ge", ogm_alpha=0.5))
    noisy.begin_epoch(1)
    torch.manual_seed(7)
    got = _gradients(noisy, inputs, y)
    torch.manual_seed(7)
    for branch, factor in (("branch0.", k[0]), ("branch1.", k[1])):  # the draws' order: θ_0's tensors, then θ_1's
        for name, _ in model.named_parameters():
            if name.startswith(branch):
                expected = factor * g[name]
                if expected.numel() > 1:
                    expected = expected + torch.randn_like(expected) * expected.std()
                torch.testing.assert_close(got[name], expected, rtol=1e-12, atol=1e-15)

    late = OGMGE(copy.deepcopy(model), resolve("cmnist", algorithm="ogm_ge", ogm_end_epoch=3))
    late.begin_epoch(4)  # after the modulated epochs: plain gradients
    for name, grad in _gradients(late, inputs, y).items():
        torch.testing.assert_close(grad, g[name])


# --- G-Blending ---


def test_gblend_weights_by_hand():
    before = torch.tensor([[1.0, 1.2], [1.5, 1.6]], dtype=torch.float64)  # rows: L^T, L^V; columns: m0, m1
    after = torch.tensor([[0.5, 1.0], [1.3, 1.5]], dtype=torch.float64)
    # ΔG = (0.2, 0.1); O = (0.5, 0.4) -> (0.8, 0.5): ΔO = (0.3, 0.1); raw = (0.2 / 0.09, 0.1 / 0.01)
    raw = [0.2 / 0.09, 0.1 / 0.01]
    previous = torch.tensor([0.5, 0.5], dtype=torch.float64)
    assert blend_weights(before, after, previous).tolist() == pytest.approx([r / sum(raw) for r in raw])
    worse = after.clone()
    worse[1, 1] = 1.7  # m1's held-out loss rose: no weight
    assert blend_weights(before, worse, previous).tolist() == pytest.approx([1.0, 0.0])
    worse[1, 0] = 1.6
    assert blend_weights(before, worse, previous).tolist() == [0.5, 0.5]  # neither generalised: kept


def test_gblend_loss_is_vanilla_at_equal_weights_and_weighted_otherwise():
    model, inputs, y = _toy()
    cfg = resolve("cmnist", algorithm="gblend")
    alg = GBlending(model, cfg)
    out = model(*inputs)
    ce = [F.cross_entropy(z, y) for z in out.logits]
    torch.testing.assert_close(alg.loss(out, y), Algorithm.loss(alg, out, y))
    alg.weights.copy_(torch.tensor([0.2, 0.8]))
    torch.testing.assert_close(alg.loss(out, y), 2 * (0.2 * ce[0] + 0.8 * ce[1]))


def test_gblend_holds_out_part_of_training_and_records_its_weights(tiny_cmnist, tmp_path):
    cfg = resolve(
        "cmnist", algorithm="gblend", data=str(tiny_cmnist), max_epochs=3, gblend_super_epoch=1, gblend_holdout=0.25,
        batch_size=32, progress=False, threads=1,
    )  # fmt: skip
    record = train(cfg, tmp_path / "run")
    assert record["status"] == "done"
    weights = [e["algorithm"] for e in record["epochs"]]
    assert weights[0] == {"weight_m0": 0.5, "weight_m1": 0.5}  # before the first estimate
    assert weights[1] != weights[0] and sum(weights[1].values()) == pytest.approx(1.0)
    assert record["epochs"][0]["steps"] == math.ceil(256 * 0.75 / 32)  # 64 of 256 samples held out, never trained on


# --- ModDrop ---


def test_moddrop_draws_by_hand_and_their_rates():
    seed, epoch, p = 3, 2, 0.5
    stream = torch.Generator().manual_seed(seed_for(seed, "moddrop", epoch))
    by_hand = []
    for _ in range(5):
        u = torch.rand(2, generator=stream, dtype=torch.float64).tolist()
        by_hand.append(None if u[0] >= p else (0 if u[1] < 0.5 else 1))
    assert drop_draws(seed, epoch, 5, p) == by_hand
    many = drop_draws(seed, epoch, 4000, 0.3)
    assert many.count(None) / 4000 == pytest.approx(0.7, abs=0.03)
    assert many.count(0) / 4000 == pytest.approx(0.15, abs=0.02) and many.count(1) / 4000 == pytest.approx(
        0.15, abs=0.02
    )


def test_moddrop_zeroes_the_drawn_modality_at_each_step():
    model, inputs, _ = _toy()
    alg = ModDrop(model, resolve("cmnist", algorithm="moddrop", seed=3, moddrop_p=0.5))
    alg.begin_epoch(2)
    for drawn in drop_draws(3, 2, 20, 0.5):
        step = alg.step_inputs(inputs)
        for k in (0, 1):
            assert torch.equal(step[k], torch.zeros_like(inputs[k]) if drawn == k else inputs[k])
    dropped = drop_draws(3, 2, 20, 0.5)
    assert alg.epoch_stats() == {"dropped_m0": dropped.count(0) / 20, "dropped_m1": dropped.count(1) / 20}


# --- PMR ---


def test_pmr_prototype_loss_by_hand():
    model, inputs, y = _toy()
    split = _Split(inputs, y)  # (unused: the prototypes are set by hand below)
    alg = PMR(model, resolve("cmnist", algorithm="pmr", pmr_alpha=0.7, pmr_mu=0.2))
    alg.data = AlgorithmData(split, None, 6)
    alg.epoch = 1
    torch.manual_seed(1)
    protos = [torch.randn(4, 3, dtype=torch.float64) for _ in range(2)]
    alg.prototypes0.copy_(protos[0])
    alg.prototypes1.copy_(protos[1])
    out = model(*inputs)
    logits = []
    for z, c in zip(out.features, protos, strict=True):  # −‖z − c_j‖ by hand
        logits.append(
            torch.tensor([[-math.dist(zi.tolist(), cj.tolist()) for cj in c] for zi in z], dtype=torch.float64)
        )
        torch.testing.assert_close(prototype_logits(z, c).double(), logits[-1], rtol=1e-5, atol=1e-6)
    s = [_softmax_true(z.tolist(), y.tolist()) for z in logits]
    rho = [s[0] / s[1], s[1] / s[0]]
    beta = [0.7 * max(1 / r - 1, 0.0) for r in rho]
    gamma = [0.2 * max(r - 1, 0.0) for r in rho]
    got_beta, got_gamma = pmr_coefficients(tuple(z.float() for z in logits), y, 0.7, 0.2)
    assert got_beta.tolist() == pytest.approx(beta, rel=1e-4) and got_gamma.tolist() == pytest.approx(gamma, rel=1e-4)
    assert sum(b > 0 for b in beta) == 1 and sum(g > 0 for g in gamma) == 1  # one slow, one dominant branch
    entropies = [-sum(p * math.log(p) for p in F.softmax(z, 1)[i].tolist()) for z in logits for i in range(6)]
    assert entropy(logits[0]).item() == pytest.approx(sum(entropies[:6]) / 6)
    expected = sum(F.cross_entropy(z, y) for z in out.logits) + sum(
        beta[k] * F.cross_entropy(logits[k], y) - gamma[k] * sum(entropies[6 * k : 6 * k + 6]) / 6 for k in (0, 1)
    )
    assert alg.loss(out, y).item() == pytest.approx(expected.item(), rel=1e-5)
    alg.epoch = 11  # after the early stage: no entropy term
    late = sum(F.cross_entropy(z, y) for z in out.logits) + sum(beta[k] * F.cross_entropy(logits[k], y) for k in (0, 1))
    assert alg.loss(out, y).item() == pytest.approx(late.item(), rel=1e-5)


def test_pmr_prototypes_are_class_means_blended_with_momentum():
    model, (x0, x1), _ = _toy()
    y = torch.tensor([0, 0, 1, 1, 2, 2])  # class 3 absent
    means = class_means(model, [((x0, x1), y)], 4)
    features = model.eval()(x0, x1).features
    for k in (0, 1):
        for c in range(3):
            torch.testing.assert_close(means[k][c].double(), features[k][y == c].mean(0), rtol=1e-5, atol=1e-6)
        assert torch.isnan(means[k][3]).all()
    split = _Split((x0, x1), y)
    alg = PMR(model.train(), resolve("cmnist", algorithm="pmr", pmr_proto_fraction=1.0, pmr_momentum=0.25))
    alg.data = AlgorithmData(split, None, 6)
    alg.begin_epoch(1)  # first estimate: the means themselves
    torch.testing.assert_close(alg.prototypes0[:3].double(), means[0][:3].double(), rtol=1e-5, atol=1e-6)
    assert torch.isnan(alg.prototypes0[3]).all()
    old = alg.prototypes0.clone()
    with torch.no_grad():
        model.branch0.head.weight.zero_()  # heads do not change features: the means stay, so blend = old
        model.branch0.stages[0].weight.mul_(2)
    new = class_means(model, [((x0, x1), y)], 4)[0]
    alg.begin_epoch(2)
    torch.testing.assert_close(alg.prototypes0[:3], 0.75 * new[:3] + 0.25 * old[:3])


# --- one epoch on each dataset's miniature ---


def _train_each(data, dataset: str, tmp_path, **over):
    for name in NEW:
        extra = {"gblend_holdout": 0.5, "gblend_super_epoch": 1} if name == "gblend" else {}
        cfg = resolve(dataset, algorithm=name, data=str(data), max_epochs=2 if name == "gblend" else 1,
                      progress=False, threads=1, device="cpu", **over, **extra)  # fmt: skip
        record = train(cfg, tmp_path / name)
        assert record["status"] == "done", (name, record.get("error"))
        assert all(e["algorithm"] for e in record["epochs"]), name
        assert record["test"]["d_util"] is not None and record["test_reference"]["acc"] == record["test"]["acc"]


def test_each_method_trains_on_the_cmnist_miniature(tiny_cmnist, tmp_path):
    _train_each(tiny_cmnist, "cmnist", tmp_path, batch_size=64)


def test_each_method_trains_on_the_modelnet40_miniature(tmp_path):
    from data_prep.modelnet40 import prepare_modelnet40

    from modelnet_fixtures import write_mini_modelnet

    data = prepare_modelnet40(
        tmp_path / "modelnet40.h5", raw=write_mini_modelnet(tmp_path / "raw"), progress=False, log=lambda m: None
    )
    _train_each(data, "modelnet40", tmp_path, batch_size=4, train_limit=8, eval_limit=4)


def test_each_method_trains_on_the_nvgesture_miniature(tmp_path):
    from test_integrity import _nvgesture

    data = _nvgesture(tmp_path)
    _train_each(data, "nvgesture", tmp_path, batch_size=2, train_limit=4, eval_limit=2, workers=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", NEW)
def test_each_method_steps_without_host_sync_on_cuda(name):
    """The bookkeeping of every method stays on the device: no host synchronisation in a step (per parameter or
    otherwise); ModDrop's draws come from a CPU generator, which never waits for the device."""
    model, inputs, y = _toy()
    model = model.float().cuda()
    inputs, y = tuple(x.float().cuda() for x in inputs), y.cuda()
    alg = ALGORITHMS[name](model, resolve("cmnist", algorithm=name)).cuda()
    alg.data = AlgorithmData(_Split(inputs, y), _Split(inputs, y), 6)
    alg.begin_epoch(1)
    opt = torch.optim.SGD(alg.parameters(), lr=0.01, momentum=0.9)
    alg.training_step(inputs, y, opt)  # lazy set-up (optimizer state) on the first step
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            alg.training_step(inputs, y, opt)
    finally:
        torch.cuda.set_sync_debug_mode("default")
