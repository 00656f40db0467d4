"""Both evaluation protocols from one run (docs/fidelity.md) and the reference code's gate-mean behaviours.

- the training-state validation pass equals a pass driven by hand in the recorded state, and ``test_reference``
  equals its checkpoint tested by hand in that state;
- the second validation pass changes no training step (parameters and ``test`` as a run without it);
- ``all-passes`` / ``branch0`` gate means equal a hand computation over regular, re-balancing and evaluation passes;
- ``branch0`` is refused where the widths differ; the default spec hash is what it was before these options.
"""

import pytest
import torch

from repro.algorithms.balanced import Guided, RandomBalance
from repro.config import resolve
from repro.engine import Environment, Run, train
from repro.engine.checkpoint import load_torch
from repro.metrics.utilization import branch_accuracies
from repro.models.fusion import REBALANCE, REGULAR, DeviceFusion, fusion_for_state
from repro.models.mmtm import MMTM, FusionConfigError, configure_gate_means, squeeze
from repro.rundir import BEST_REFERENCE_NAME, CHECKPOINT_NAME

from engine_fixtures import toy_two_branch


def _cfg(data, **kw):
    base = dict(data=str(data), max_epochs=3, batch_size=32, progress=False, threads=1, alpha=0.0)
    base.update(kw)
    return resolve("cmnist", **base)


def _restored(cfg, out) -> Run:
    """A run holding its state after its last epoch (what the epoch's validation saw)."""
    t = Run(cfg, out)
    assert t.prepare(Environment.open(cfg))
    return t


@pytest.mark.parametrize("algorithm,seed", [("guided", 0), ("random", 1)])
def test_training_state_validation_is_a_pass_in_that_state(tiny_cmnist, tmp_path, algorithm, seed):
    cfg = _cfg(tiny_cmnist, algorithm=algorithm, seed=seed)
    record = train(cfg, tmp_path / "run")
    states = [e["eval_state"] for e in record["epochs"]]
    assert states[0] == "regular"  # after the warm-up epoch nothing has been decided yet
    last = record["epochs"][-1]
    assert last["eval_state"] != "regular", states  # the check below must compare a re-balancing state
    t = _restored(cfg, tmp_path / "run")
    by_hand = branch_accuracies(
        t.model,
        t.env.splits["val"].batches(t.env.eval_batch_size),
        unimodal=False,
        fusion=fusion_for_state(last["eval_state"]),
    )
    assert by_hand == {k: last[f"val_reference_{k}"] for k in by_hand}
    regular = branch_accuracies(t.model, t.env.splits["val"].batches(t.env.eval_batch_size), unimodal=False)
    assert regular == {k: last[f"val_{k}"] for k in regular}

    ref = record["test_reference"]
    assert ref["epoch"] == record["best_reference_epoch"]
    assert ref["state"] == record["epochs"][ref["epoch"] - 1]["eval_state"]
    best = load_torch(tmp_path / "run" / BEST_REFERENCE_NAME)
    t.model.load_state_dict(best["model"])
    tested = branch_accuracies(
        t.model,
        t.env.splits["test"].batches(t.env.eval_batch_size),
        unimodal=False,
        fusion=fusion_for_state(ref["state"]),
    )
    assert tested == {k: ref[k] for k in tested}
    assert record["best_reference_val_acc"] == max(e["val_reference_acc"] for e in record["epochs"])


def test_vanilla_needs_no_second_pass(tiny_cmnist, tmp_path):
    record = train(_cfg(tiny_cmnist, algorithm="vanilla", max_epochs=2), tmp_path / "run")
    for e in record["epochs"]:
        assert e["eval_state"] == "regular" and e["val_reference_acc"] == e["val_acc"]
    ref, test = record["test_reference"], record["test"]
    assert ref == {
        "acc": test["acc"],
        "acc_branch0": test["acc_branch0"],
        "acc_branch1": test["acc_branch1"],
        "state": "regular",
        "epoch": record["best_epoch"],
    }
    assert not (tmp_path / "run" / BEST_REFERENCE_NAME).exists()


@pytest.mark.parametrize("algorithm", ["guided", "random"])
def test_second_validation_pass_changes_no_training_step(tiny_cmnist, tmp_path, monkeypatch, algorithm):
    cfg = _cfg(tiny_cmnist, algorithm=algorithm)
    with_pass = train(cfg, tmp_path / "with")
    monkeypatch.setattr(Guided, "evaluation_fusion", lambda self, epoch: None)
    monkeypatch.setattr(RandomBalance, "evaluation_fusion", lambda self, epoch: None)
    without = train(cfg, tmp_path / "without")
    assert any(e["eval_state"] != "regular" for e in with_pass["epochs"])  # the second pass did run
    assert all(e["eval_state"] == "regular" for e in without["epochs"])
    assert with_pass["test"] == without["test"]
    for a, b in zip(with_pass["epochs"], without["epochs"], strict=True):
        for key in ("train_loss", "train_acc", "val_acc", "d_speed", "rebalance_steps_m0", "rebalance_steps_m1"):
            assert a[key] == b[key]
    params_with = load_torch(tmp_path / "with" / CHECKPOINT_NAME)["algorithm"]
    params_without = load_torch(tmp_path / "without" / CHECKPOINT_NAME)["algorithm"]
    assert params_with.keys() == params_without.keys()
    for key in params_with:
        assert torch.equal(params_with[key], params_without[key]), key


def _passes():
    g = torch.Generator().manual_seed(3)
    return [torch.randn(n, 4, 2, 2, generator=g) for n in (4, 2, 5, 3, 6)], [
        torch.randn(n, 4, 3, generator=g) for n in (4, 2, 5, 3, 6)
    ]


def test_all_passes_gate_means_by_hand():
    """The reference code's running means: every forward pass (training of any kind, evaluation), each pass's batch
    mean weighing one, the current pass counted before a re-balancing step uses the mean."""
    torch.manual_seed(0)
    m = MMTM(4, 4)
    configure_gate_means(m_wrap := _Wrap(m), "all-passes", "own")
    assert m_wrap.mmtms()[0].gate_mean_mode == "all-passes"
    xs, ys = _passes()
    kinds = [
        ("train", REGULAR),
        ("train", REBALANCE[1]),
        ("eval", REGULAR),
        ("train", REBALANCE[0]),
        ("train", DeviceFusion(torch.tensor(1))),
    ]
    seen_a, seen_b = [], []
    for (mode, fusion), a, b in zip(kinds, xs, ys, strict=True):
        m.train(mode == "train")
        with torch.no_grad():
            gate_a, gate_b = m.gates(squeeze(a), squeeze(b))
        seen_a.append(gate_a.mean(0))
        seen_b.append(gate_b.mean(0))
        out_a, out_b = m(a, b, fusion)
        mean_a, mean_b = torch.stack(seen_a).mean(0), torch.stack(seen_b).mean(0)
        torch.testing.assert_close(m.gate_mean_a, mean_a)
        torch.testing.assert_close(m.gate_mean_b, mean_b)
        code = int(fusion.code)
        if code == 1:  # the mean in use already includes this pass (as the reference code updates it first)
            torch.testing.assert_close(out_b, b * mean_b[None, :, None])
        if code == 0:
            torch.testing.assert_close(out_a, a * mean_a[None, :, None, None])
    assert int(m.gate_count) == len(kinds)


def test_branch0_source_takes_branch1_mean_from_branch0_gate():
    torch.manual_seed(0)
    m = MMTM(4, 4)
    configure_gate_means(_Wrap(m), "all-passes", "branch0")
    xs, ys = _passes()
    with torch.no_grad():  # no optimizer step in between: each pass's gates are these
        gates_a = torch.stack([m.gates(squeeze(a), squeeze(b))[0].mean(0) for a, b in zip(xs, ys, strict=True)])
    m.train()
    for a, b in zip(xs, ys, strict=True):
        m(a, b, REBALANCE[1])
    torch.testing.assert_close(m.gate_mean_a, gates_a.mean(0))
    torch.testing.assert_close(m.gate_mean_b, gates_a.mean(0))  # branch 1's mean is branch 0's gate's


def test_default_gate_means_are_regular_training_samples_only():
    torch.manual_seed(0)
    m = MMTM(4, 4)
    xs, ys = _passes()
    kinds = [("train", REGULAR), ("train", REBALANCE[1]), ("eval", REGULAR), ("train", REGULAR)]
    counted = []
    for (mode, fusion), a, b in zip(kinds, xs, ys, strict=False):
        m.train(mode == "train")
        if mode == "train" and fusion.is_regular:
            with torch.no_grad():
                counted.append(m.gates(squeeze(a), squeeze(b))[1])
        m(a, b, fusion)
    torch.testing.assert_close(m.gate_mean_b, torch.cat(counted).mean(0))  # sample-weighted, batches 4 and 3
    assert int(m.gate_count) == 4 + 3


def test_branch0_refused_for_unequal_widths():
    with pytest.raises(FusionConfigError, match="MMTM 0 joins 4 and 6 channels"):
        configure_gate_means(_Wrap(MMTM(4, 6)), "all-passes", "branch0")
    configure_gate_means(_Wrap(MMTM(4, 6)), "all-passes", "own")  # own works at any width
    configure_gate_means(toy_two_branch(), "regular-steps", "branch0")  # equal widths: accepted


def test_protocol_switch_and_default_identity():
    assert resolve("cmnist", algorithm="guided").spec_hash() == "e25372ce2a80"  # as before the options existed
    ref = resolve("cmnist", algorithm="guided", protocol="reference")
    assert (ref.gate_mean, ref.gate_mean_source) == ("all-passes", "branch0")
    assert ref.spec_hash() != "e25372ce2a80"
    assert resolve("cmnist", algorithm="guided", protocol="paper").spec_hash() == "e25372ce2a80"
    with pytest.raises(ValueError, match="give one or the other"):
        resolve("cmnist", protocol="reference", gate_mean_source="own")
    with pytest.raises(ValueError, match="unknown gate mean"):
        resolve("cmnist", gate_mean="every-pass")


class _Wrap(torch.nn.Module):
    """A model of one MMTM, for configure_gate_means."""

    def __init__(self, mmtm: MMTM):
        super().__init__()
        self.mmtm = mmtm

    def mmtms(self) -> list[MMTM]:
        return [self.mmtm]


def test_demo_table_prints_both_evaluation_protocols():
    from repro.cli.tools import _table

    test = {"acc": 69.13, "d_util": 0.265, "u_m1_given_m0": 0.144, "u_m0_given_m1": -0.121, "d_speed": -0.352}
    records = {"guided": {"test": test, "test_reference": {"acc": 90.07, "state": "rebalance_m1"}, "epochs": [{}] * 12}}
    table = _table(records)
    assert "test acc (%), standard | test acc (%), reference [state]" in table
    assert "| guided | 69.13 | 90.07 [rebalance_m1] | +0.265 |" in table


def test_reference_protocol_run_counts_every_pass(tiny_cmnist, tmp_path):
    """--protocol reference end to end: the gate means of the saved state average over every training step and both
    validation passes of every epoch (evaluation batches of the training size), branch 1's equal to branch 0's."""
    cfg = _cfg(tiny_cmnist, algorithm="guided", protocol="reference")
    record = train(cfg, tmp_path / "run")
    assert record["status"] == "done" and record["test_reference"]["acc"] is not None
    state = load_torch(tmp_path / "run" / CHECKPOINT_NAME)["algorithm"]
    steps = sum(e["steps"] for e in record["epochs"])
    val_passes = 2 * len(record["epochs"]) * -(-64 // cfg.batch_size)  # 64 validation samples, batches of 32
    counts = {k: int(v) for k, v in state.items() if k.endswith("gate_count")}
    assert counts and set(counts.values()) == {steps + val_passes}
    for key in (k for k in state if k.endswith("gate_mean_a")):
        assert torch.equal(state[key], state[key.replace("gate_mean_a", "gate_mean_b")])
