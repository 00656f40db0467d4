"""K CMNIST runs packed into one network: one packed step equals K separate steps (float64, to 1e-9),
packed records equal separate runs' records to float32 rounding (tolerances below), what may not be packed."""

import json

import pytest
import torch

from repro.config import resolve
from repro.engine import Run, train
from repro.engine import train_runs as train_packed
from repro.engine.packed import StackedStepper
from repro.engine.packing import check_packable

from engine_fixtures import write_tiny_cmnist

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _trainers(algorithm, runs, dtype=torch.float64, device="cpu"):
    out = []
    for seed, lr, alpha in runs:
        t = Run(resolve("cmnist", algorithm=algorithm, seed=seed, lr=lr, alpha=alpha, window=2), "/nonexistent")
        t.build((3, 1), 10, torch.device(device))
        t.algorithm.to(dtype)
        t.algorithm.speed.membership = t.algorithm.speed.membership.float()  # as the float32 norms it weighs
        out.append(t)
    return out


def _batch(k, b, seed, dtype=torch.float64, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(k, b, 3, 28, 28, generator=g, dtype=dtype)
    x1 = torch.rand(k, b, 1, 28, 28, generator=g, dtype=dtype)
    return x0.to(device), x1.to(device), torch.randint(10, (k, b), generator=g).to(device)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
@pytest.mark.parametrize("convolutions", ["grouped", "loop"])
@pytest.mark.parametrize("algorithm", ["guided", "random"])
def test_a_packed_step_is_k_separate_steps(algorithm, convolutions, device):
    """Same arithmetic: in float64 the packed parameters and momentum follow the separate ones to 1e-9, M (whose
    norms are float32 by design, as in ConditionalSpeed) to 1e-6, and every model takes the same kind of step."""
    torch.set_num_threads(1)
    runs = [(0, 0.05, 0.0), (1, 0.1, 0.0), (2, 0.02, 10.0)]  # alpha 0: re-balance after every regular step
    separate, packed = _trainers(algorithm, runs, device=device), _trainers(algorithm, runs, device=device)
    codes = []
    for epoch, n_steps in ((1, 2), (2, 6)):
        for t in separate:
            t.algorithm.begin_epoch(epoch)
        for t in packed:
            t.progress.epoch = epoch - 1
        pack = StackedStepper(packed, convolutions)
        for i in range(n_steps):
            x0, x1, y = _batch(len(runs), 8, 10 * epoch + i, device=device)
            sep_codes = []
            for j, t in enumerate(separate):
                inputs = (
                    x0[j].contiguous(memory_format=torch.channels_last),
                    x1[j].contiguous(memory_format=torch.channels_last),
                )
                result = t.algorithm.training_step(inputs, y[j], t.optimizer)
                sep_codes.append(int(torch.as_tensor(result.fusion.code)))
            _, _, code = pack.step(x0, x1, y.T)
            assert code.tolist() == sep_codes
            codes += sep_codes
        pack.write_back()
        for s, p in zip(separate, packed, strict=True):
            for (name, a), b in zip(s.algorithm.state_dict().items(), p.algorithm.state_dict().values(), strict=True):
                tol = 1e-6 if name == "speed.accumulated" else 1e-9  # M: float32 norms, summed in another order
                torch.testing.assert_close(a, b, rtol=tol, atol=tol, msg=name)
            for a, b in zip(s.model.parameters(), p.model.parameters(), strict=True):
                torch.testing.assert_close(
                    s.optimizer.state[a]["momentum_buffer"],
                    p.optimizer.state[b]["momentum_buffer"],
                    rtol=1e-9,
                    atol=1e-9,
                )
    assert len(set(codes[6:])) >= 2, codes  # regular and re-balancing steps after the warm-up


@CUDA
@pytest.mark.parametrize("convolutions", ["grouped", "loop"])
def test_packed_guided_steps_issue_no_host_sync_on_cuda(convolutions):
    """As a single guided step (tests/test_device_guided.py): K models' kinds of step, updates and Alg. 1's state
    stay on the device."""
    runs = [(0, 0.05, 0.0), (1, 0.1, 0.0), (2, 0.02, 10.0), (3, 0.01, 0.0)]
    trainers = _trainers("guided", runs, torch.float32, "cuda")
    for t in trainers:
        t.progress.epoch = 1
    pack = StackedStepper(trainers, convolutions)
    batches = [_batch(len(runs), 32, i, torch.float32, "cuda") for i in range(8)]
    pack.step(batches[0][0], batches[0][1], batches[0][2].T)  # first step: allocations, lazy set-up
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for x0, x1, y in batches[1:]:
            pack.step(x0, x1, y.T)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert pack.policy.rebalancing.device.type == "cuda"


# float32: grouped convolutions and batched matrix products round differently from K separate models, and the
# difference grows over training. Measured on toy sets of 128-256 samples, three epochs: re-balancing counts and
# best epochs equal; train loss within 2e-4 (relative), d_speed within 3e-3 (absolute); accuracies equal or one to
# four samples apart on some epochs (a borderline sample flips). Asserted with that margin.
LOSS_RTOL, D_SPEED_ATOL, ACC_SAMPLES = 1e-3, 1e-2, 4


def test_packed_records_match_separate_runs(tmp_path):
    n_train, n_eval = 128, 64
    data = write_tiny_cmnist(tmp_path / "cmnist.h5", n_train=n_train, n_eval=n_eval)
    cfgs = [
        resolve(
            "cmnist",
            algorithm="guided",
            seed=s,
            lr=lr,
            alpha=a,
            data=str(data),
            max_epochs=3,
            batch_size=16,
            progress=False,
            threads=1,
            window=3,
        )
        for s, lr, a in [(0, 0.01, 0.0), (1, 0.02, 0.05), (2, 0.01, 0.1)]
    ]
    separate = [train(c, tmp_path / f"sep{j}") for j, c in enumerate(cfgs)]
    outs = [tmp_path / f"packed{j}" for j in range(len(cfgs))]
    packed = train_packed(cfgs, outs)
    for a, b in zip(separate, packed, strict=True):
        assert (
            b["status"] == "done"
            and b["spec_hash"] == a["spec_hash"]
            and b["config"] == {**a["config"], "data": a["config"]["data"]}
        )
        assert len(a["epochs"]) == len(b["epochs"]) and a["best_epoch"] == b["best_epoch"]
        for ea, eb in zip(a["epochs"], b["epochs"], strict=True):
            assert set(ea) == set(eb)
            for key in ea:
                if key == "train_loss":
                    assert eb[key] == pytest.approx(ea[key], rel=LOSS_RTOL)
                elif key == "d_speed":
                    assert eb[key] == pytest.approx(ea[key], abs=D_SPEED_ATOL)
                elif key.endswith("acc") or "_acc_" in key:
                    n = n_train if key == "train_acc" else n_eval
                    assert eb[key] == pytest.approx(ea[key], abs=100 * ACC_SAMPLES / n + 1e-9), key
                else:
                    assert eb[key] == ea[key], key
        for key in a["test"]:
            tol = {"d_speed": D_SPEED_ATOL, "d_util": 0.5, "u_m1_given_m0": 0.5, "u_m0_given_m1": 0.5}.get(
                key, 100 * ACC_SAMPLES / n_eval + 1e-9
            )
            assert b["test"][key] == pytest.approx(a["test"][key], abs=tol), key
    assert train_packed(cfgs, outs) == packed  # finished: returned as they are
    assert train(cfgs[1], outs[1])["test"] == packed[1]["test"]  # a packed run's folder is an ordinary run's


@pytest.mark.parametrize(
    "second, message",
    [
        (dict(algorithm="guided", seed=1, lr=0.1, batch_size=64), "batch_size"),  # seed and lr may differ, not this
        (dict(algorithm="vanilla", seed=1), "algorithm"),
    ],
)
def test_what_may_not_share_a_pack(second, message):
    with pytest.raises(ValueError, match=message):
        check_packable([resolve("cmnist", algorithm="guided"), resolve("cmnist", **second)])
    with pytest.raises(ValueError, match="packing supports"):
        check_packable([resolve("cmnist", algorithm="rubi", seed=s) for s in (0, 1)])
    check_packable(
        [
            resolve("cmnist", algorithm="guided", seed=s, lr=lr, alpha=a, window=w)
            for s, lr, a, w in [(0, 0.01, 0.1, 5), (1, 0.1, 0.01, 3)]
        ]
    )


def test_train_packed_command(tiny_cmnist, tmp_path):
    from click.testing import CliRunner

    from repro.cli import main

    args = [
        "train-packed",
        "--dataset",
        "cmnist",
        "--algorithm",
        "guided",
        "--seeds",
        "0,1",
        "--lrs",
        "0.01,0.02",
        "--data",
        str(tiny_cmnist),
        "--max-epochs",
        "1",
        "--batch-size",
        "64",
        "--threads",
        "1",
        "--progress",
        "false",
        "--out",
        str(tmp_path),
        "--pack",
        "3",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    records = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("*/record.json"))]
    assert sorted((r["config"]["seed"], r["config"]["lr"]) for r in records) == [
        (0, 0.01),
        (0, 0.02),
        (1, 0.01),
        (1, 0.02),
    ]
    assert all(r["status"] == "done" for r in records)
    assert sorted(r["timing"]["pack_size"] for r in records) == [1, 3, 3, 3]  # packs of at most 3


def test_an_interrupted_pack_resumes_packed_or_alone(tiny_cmnist, tmp_path, monkeypatch):
    """Checkpoints after every epoch: a pack killed in its second epoch resumes to the uninterrupted records
    (packed, bit for bit), and one of its runs may instead be finished by ordinary `repro train`."""
    import repro.engine.packed as packed_module

    cfgs = [
        resolve(
            "cmnist",
            algorithm="guided",
            seed=s,
            data=str(tiny_cmnist),
            max_epochs=3,
            batch_size=64,
            alpha=0.0,
            progress=False,
            threads=1,
        )
        for s in (0, 1, 2)
    ]
    straight = train_packed(cfgs, [tmp_path / f"straight{j}" for j in range(3)])
    outs = [tmp_path / f"resumed{j}" for j in range(3)]
    original = packed_module.StackedStepper.train_epoch
    calls = []

    def interrupted(self):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(packed_module.StackedStepper, "train_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_packed(cfgs, outs)
    monkeypatch.setattr(packed_module.StackedStepper, "train_epoch", original)
    assert json.loads((outs[0] / "record.json").read_text())["status"] == "interrupted"  # a sweep resumes it
    alone = train(cfgs[0], outs[0])  # run 0 finishes outside the pack, from the packed checkpoint
    resumed = train_packed(cfgs[1:], outs[1:])

    def strip(r):
        return {k: v for k, v in r.items() if k != "timing"}

    assert [strip(r) for r in resumed] == [strip(r) for r in straight[1:]]
    assert alone["status"] == "done" and len(alone["epochs"]) == 3
    assert alone["epochs"][0] == straight[0]["epochs"][0]  # the epoch trained packed, before the interruption
