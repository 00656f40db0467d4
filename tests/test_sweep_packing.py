"""`repro sweep --pack K`: which runs share a pack, and a packed sweep against the same runs trained
alone (both launchers)."""

from __future__ import annotations

import json

import pytest

from repro.config import resolve
from repro.engine.packing import group_into_packs, pack_key
from repro.experiments.launchers import SlurmOptions, launch_local, launch_slurm
from repro.experiments.runner import execute
from repro.experiments.sweeps import STUDIES, Plan, RunSpec


def test_group_into_packs_keeps_order_size_and_loners():
    items = ["a1", "b1", "a2", "x", "a3", "b2", "a4"]
    key = lambda s: None if s == "x" else s[0]  # noqa: E731
    assert group_into_packs(items, key, 3) == [["a1", "a2", "a3"], ["b1", "b2"], ["x"], ["a4"]]
    assert group_into_packs(items, key, 1) == [[i] for i in items]


def test_pack_keys():
    guided = [
        resolve("cmnist", algorithm="guided", seed=s, lr=lr, alpha=a, window=w)
        for s, lr, a, w in ((0, 0.01, 0.1, 5), (1, 0.3, 0.5, 2))
    ]
    assert pack_key(guided[0]) == pack_key(guided[1]) is not None
    assert pack_key(resolve("cmnist", algorithm="vanilla")) != pack_key(guided[0])
    assert pack_key(resolve("cmnist", algorithm="guided", batch_size=64)) != pack_key(guided[0])
    for alone in (
        resolve("cmnist", algorithm="rubi"),
        resolve("cmnist", algorithm="guided", l1=1e-5),
        resolve("cmnist", modalities="gray"),
        resolve("modelnet40", algorithm="guided"),
    ):
        assert pack_key(alone) is None


def _spec(data, algorithm, lr, seed):
    cfg = resolve(
        "cmnist", algorithm=algorithm, lr=lr, seed=seed, data=str(data), max_epochs=2, batch_size=64, progress=False
    )
    return RunSpec(cfg, {"lr": lr, "seed": seed})


def _record(results, spec):
    return json.loads((results / "runs" / spec.name / "record.json").read_text())


@pytest.fixture
def specs(tiny_cmnist):
    return [_spec(tiny_cmnist, "guided", lr, seed) for lr, seed in ((0.01, 0), (0.1, 1), (0.05, 2))] + [
        _spec(tiny_cmnist, "rubi", 0.01, 0)
    ]


def test_a_packed_sweep_gives_the_records_of_runs_trained_alone(specs, tmp_path):
    plan = Plan(STUDIES["guided-vs-vanilla"], "small", specs, {})
    log = []
    outcomes = launch_local(plan, tmp_path / "packed", workers=1, threads=1, pack=4, log=log.append)
    assert [o.state for o in outcomes] == ["done"] * 4
    assert "--pack 4: 3 of 4 runs in 1 pack(s), 1 alone" in log
    for spec in specs:
        alone = execute(dict(spec.cfg.__dict__), tmp_path / "alone" / spec.name)
        assert alone.state == "done"
        packed, single = (
            _record(tmp_path / "packed", spec),
            json.loads((tmp_path / "alone" / spec.name / "record.json").read_text()),
        )
        in_pack = spec.cfg.algorithm != "rubi"
        assert packed["timing"].get("pack_size") == (3 if in_pack else 1)
        assert ("packed with" in (tmp_path / "packed" / "runs" / spec.name / "train.log").read_text()) == in_pack
        assert len(packed["epochs"]) == len(single["epochs"]) == 2
        for a, b in zip(packed["epochs"], single["epochs"], strict=True):  # float32 rounding (tests/test_packed.py)
            assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-3)
            assert a["rebalance_steps"] == b["rebalance_steps"]
        assert abs(packed["test"]["acc"] - single["test"]["acc"]) <= 100 * 4 / 64  # at most 4 of 64 samples
    assert launch_local(plan, tmp_path / "packed", workers=1, threads=1, pack=4, log=log.append) == []


def test_slurm_array_tasks_train_packs(specs, tmp_path):
    options = SlurmOptions(cluster="local", gpus_per_task=0, cpus_per_task=1, runs_per_task=1, timeout_min=5)
    log = []
    jobs = launch_slurm(
        Plan(STUDIES["guided-vs-vanilla"], "small", specs[:2], {}), tmp_path, options, wait=True, pack=2, log=log.append
    )
    assert len(jobs) == 1  # one pack of two runs, one pack per array task
    assert [_record(tmp_path, s)["timing"]["pack_size"] for s in specs[:2]] == [2, 2]
    assert "all array tasks finished: 2 done" in log[-1]
