"""--precision and --compile : what belongs to a run's identity, and bf16 training runs end to end."""

import math

import pytest

from repro.config import resolve
from repro.engine import train
from repro.engine import train_runs as train_packed


def test_precision_is_identity_compile_is_runtime():
    paper = resolve("cmnist")
    assert paper.precision == "fp32" and paper.compile is False
    assert resolve("cmnist", compile=True).spec_hash() == paper.spec_hash()  # same computation, resumable
    assert resolve("cmnist", precision="bf16").spec_hash() != paper.spec_hash()  # other numbers
    assert "precision" not in paper.identity()  # fp32 runs keep the hash they had before the option existed
    with pytest.raises(ValueError, match="precision"):
        resolve("cmnist", precision="fp16")


def test_bf16_runs_train_alone_and_packed(tiny_cmnist, tmp_path):
    common = dict(
        data=str(tiny_cmnist), max_epochs=1, batch_size=64, progress=False, threads=1, precision="bf16", alpha=0.0
    )
    alone = train(resolve("cmnist", algorithm="guided", **common), tmp_path / "alone")
    packed = train_packed(
        [resolve("cmnist", algorithm="guided", seed=s, **common) for s in (0, 1)], [tmp_path / "p0", tmp_path / "p1"]
    )
    for record in [alone, *packed]:
        assert record["status"] == "done" and record["config"]["precision"] == "bf16"
        assert math.isfinite(record["epochs"][0]["train_loss"]) and record["test"]["acc"] is not None
