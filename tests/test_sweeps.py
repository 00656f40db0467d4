"""Sweeps as data (repro.experiments.sweeps): the paper's study sizes, stable spec hashes, datasets skipped without
their prepared data, the L1 field that leaves older runs' hashes alone, and R(f)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from repro.config import resolve
from repro.experiments.sweeps import LR_RANGES, STUDIES, expand
from repro.metrics.sparsity import l1_norm, small_weight_fraction


@pytest.fixture
def data_dir(tmp_path):
    (tmp_path / "cmnist.h5").touch()  # expand() only checks the file is there
    return tmp_path


def test_lr_greedy_full_is_the_papers_cmnist_study(data_dir):
    plan = expand("lr-greedy", "full", data_dir)
    specs = [s for s in plan.specs if s.cfg.dataset == "cmnist"]
    assert len(specs) == 20 * 4 * 3  # §5.2: 20 lrs x 4 seeds, for mono+gray, gray+gray and mono+mono
    assert {s.cfg.modalities for s in specs} == {"mono,gray", "gray,gray", "mono,mono"}
    assert {s.pair for s in specs if s.cfg.modalities != "mono,gray"} == {"identical"}
    lrs = sorted({s.cfg.lr for s in specs})
    assert len(lrs) == 20 and 1e-5 <= lrs[0] and lrs[-1] <= 1.0
    assert {s.cfg.seed for s in specs} == {0, 1, 2, 3}
    assert all(s.cfg.algorithm == "vanilla" and s.cfg.momentum == 0.9 and s.cfg.batch_size == 128 for s in specs)
    assert all(s.cfg.data == str(data_dir / "cmnist.h5") for s in specs)


def test_expansion_is_deterministic_and_hashes_are_unique(data_dir):
    first = [s.cfg.spec_hash() for s in expand("lr-greedy", "full", data_dir).specs]
    again = [s.cfg.spec_hash() for s in expand("lr-greedy", "full", data_dir).specs]
    assert first == again and len(set(first)) == len(first)
    names = [s.name for s in expand("lr-greedy", "full", data_dir).specs]
    assert all(n.endswith(h) for n, h in zip(names, first, strict=True))


def test_shared_runs_have_the_same_directory_in_every_study(data_dir):
    """Fig. 4's vanilla runs are Fig. 2's distinct-pair runs: same spec, same run, trained once."""
    greedy = {s.name for s in expand("lr-greedy", "full", data_dir).specs if s.pair == "distinct"}
    guided = expand("guided-vs-vanilla", "full", data_dir).specs
    assert {s.name for s in guided if s.cfg.algorithm == "vanilla"} == greedy
    assert {s.name for s in expand("lr-vs-dutil", "full", data_dir).specs} == greedy
    assert sum(s.cfg.algorithm == "guided" for s in guided) == len(greedy)


def test_sensitivity_studies(data_dir):
    l1 = expand("l1", "full", data_dir).specs
    lambdas = sorted({s.cfg.l1 for s in l1})
    assert len(l1) == 30 and len(lambdas) == 10 and lambdas[0] == 1e-9 and lambdas[-1] == 1e-3  # §5.3
    assert sorted({s.cfg.window for s in expand("window", "full", data_dir).specs}) == [1, 5, 10, 20, 50]
    tolerance = expand("tolerance", "full", data_dir).specs
    # A.6: α as fractions of |E[d_util]| (CMNIST: 0.3 in §5.2); guided, the dataset's paper lr.
    assert sorted({s.cfg.alpha for s in tolerance}) == [0.003, 0.03, 0.075, 0.15, 0.3]
    assert all(s.cfg.algorithm == "guided" and s.cfg.lr == 0.01 for s in tolerance)


def test_small_budget_is_smaller_and_separate(data_dir):
    small = expand("lr-greedy", "small", data_dir).specs
    full = {s.name for s in expand("lr-greedy", "full", data_dir).specs}
    assert 0 < len(small) < len(full) and not {s.name for s in small} & full
    assert all(s.cfg.train_limit > 0 and s.cfg.max_epochs < 300 for s in small)


def test_datasets_without_prepared_data_are_skipped(tmp_path):
    plan = expand("lr-greedy", "full", tmp_path)
    assert plan.specs == [] and "cmnist" in plan.skipped and "no prepared data" in plan.skipped["cmnist"]
    assert set(plan.skipped) == set(LR_RANGES)
    with pytest.raises(ValueError, match="unknown study"):
        expand("no-such-study")


def test_every_study_expands_on_every_dataset(data_dir):
    for dataset in LR_RANGES:
        (data_dir / f"{dataset}.h5").touch()
    for name in STUDIES:
        for budget in ("full", "small"):
            plan = expand(name, budget, data_dir)
            assert {s.cfg.dataset for s in plan.specs} == set(LR_RANGES) and not plan.skipped, (name, budget)
    greedy = expand("lr-greedy", "full", data_dir).specs
    modelnet = [s for s in greedy if s.cfg.dataset == "modelnet40"]  # §5.2: 9 lrs x 3, front+rear and front+front
    assert len(modelnet) == 54 and {s.cfg.modalities for s in modelnet} == {"front,rear", "front,front"}
    nvgesture = [s for s in greedy if s.cfg.dataset == "nvgesture"]  # 20 lrs x 3, rgb+depth, rgb+rgb, depth+depth
    assert len(nvgesture) == 180 and max(s.cfg.lr for s in nvgesture) <= 10**-1.5


def test_spec_hash_ignores_runtime_fields_and_keeps_older_hashes():
    base = resolve("cmnist")
    # Pinned: the hash of this spec before the l1 field existed (commit f934d5f); older runs must keep theirs.
    assert base.spec_hash() == "18319f8589c6"
    assert resolve("cmnist", threads=3, device="cpu", progress=False).spec_hash() == base.spec_hash()
    assert resolve("cmnist", l1=0.0).spec_hash() == base.spec_hash()
    assert (
        len(
            {
                base.spec_hash(),
                resolve("cmnist", l1=1e-5).spec_hash(),
                resolve("cmnist", lr=0.1).spec_hash(),
                resolve("cmnist", seed=1).spec_hash(),
            }
        )
        == 4
    )


def test_l1_norm_and_small_weight_fraction():
    model = nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -2.0], [0.0, 5e-8]]))
        model.bias.copy_(torch.tensor([0.5, -1e-6]))
    assert math.isclose(float(l1_norm(model).detach()), 3.5 + 5e-8 + 1e-6, rel_tol=1e-6)
    assert small_weight_fraction(model) == 2 / 6  # 0 and 5e-8 are below 1e-7; 1e-6 is not


def test_the_l1_penalty_enters_the_training_loss():
    """§5.3: L' = L + λ ||θ||_1, λ from the config; λ = 0 leaves the loss of §2."""
    from repro.algorithms import ALGORITHMS

    from engine_fixtures import toy_two_branch

    losses = {}
    for lam in (0.0, 1e-2):
        torch.manual_seed(0)
        model = toy_two_branch()
        alg = ALGORITHMS["vanilla"](model, resolve("cmnist", l1=lam))
        penalty = float(l1_norm(model).detach())
        g = torch.Generator().manual_seed(0)
        inputs, y = (torch.rand(8, 3, generator=g), torch.rand(8, 3, generator=g)), torch.arange(8) % 4
        alg.begin_epoch(1)
        losses[lam] = float(alg.training_step(inputs, y, torch.optim.SGD(alg.parameters(), lr=0.0)).loss)
    assert math.isclose(losses[1e-2] - losses[0.0], 1e-2 * penalty, rel_tol=1e-4)


def test_the_beyond_paper_study_lists_every_registered_algorithm(data_dir):
    from repro.registry import ALGORITHMS

    (data_dir / "cmnist.h5").touch()
    specs = expand("beyond-paper", "full", data_dir).specs
    assert sorted((s.cfg.algorithm, s.cfg.seed) for s in specs) == sorted((a, k) for a in ALGORITHMS for k in range(3))
    assert {"ogm_ge", "gblend", "moddrop", "pmr"} <= {s.cfg.algorithm for s in specs}
    assert all(s.cfg.modalities == "mono,gray" and s.cfg.max_epochs == 300 for s in specs)  # Table 1's protocol
