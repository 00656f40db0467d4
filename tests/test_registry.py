"""The registry is the one list of algorithms and datasets: every entry resolves and agrees with its class, and a new
algorithm added by the documented recipe (a class, one registry entry) trains with nothing else touched."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from repro import registry
from repro.algorithms import ALGORITHMS, Algorithm
from repro.config import DATASET_DEFAULTS, resolve
from repro.engine import train
from repro.engine.packing import why_not_packable
from repro.registry import AlgorithmSpec


def test_every_algorithm_entry_resolves_to_a_class_that_agrees_with_it():
    for name, spec in registry.ALGORITHMS.items():
        cls = ALGORITHMS[name]
        assert issubclass(cls, Algorithm), name
        assert spec.packable == (cls.packed_policy is not None), f"{name}: packable says one thing, the class another"
    assert list(ALGORITHMS) == list(registry.ALGORITHMS)


def test_every_dataset_entry_resolves_and_gives_the_paper_defaults():
    assert set(DATASET_DEFAULTS) == set(registry.DATASETS)
    for name, spec in registry.DATASETS.items():
        assert callable(registry.load(spec.loader)) and callable(registry.load(spec.model)), name
        m0, m1 = resolve(name).modality_names
        assert spec.input_shapes[0][0] == spec.modalities[m0] and spec.input_shapes[1][0] == spec.modalities[m1]


class ToyAlgorithm(Algorithm):
    """A new method, as a researcher would add one: it only changes the loss (here: the CE of y_hat alone)."""

    def loss(self, out, y):
        return F.cross_entropy(out.prediction, y)


def test_a_toy_algorithm_added_by_the_recipe_trains(tiny_cmnist, tmp_path, monkeypatch):
    spec = AlgorithmSpec("toy", f"{__name__}:ToyAlgorithm", "toy", "tab:purple", paper=False)
    monkeypatch.setitem(registry.ALGORITHMS, "toy", spec)  # step 2 of the recipe: one registry entry
    cfg = resolve(
        "cmnist", algorithm="toy", data=str(tiny_cmnist), train_limit=64, batch_size=64, max_epochs=1, progress=False
    )
    record = train(cfg, tmp_path / "toy")
    assert record["status"] == "done" and record["algorithm"] == "toy"
    assert record["epochs"][0]["steps"] == 1 and torch.isfinite(torch.tensor(record["epochs"][0]["train_loss"]))
    assert why_not_packable(cfg) is not None  # no batched policy: it trains alone
