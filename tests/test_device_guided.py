"""Alg. 1 on the device: the tensor state machine of ``Guided`` against the host-decided
``GuidedReference``, step by step on the CMNIST network: same kinds of step, same d_speed, same parameters and
buffers (bit for bit on CPU); and, where a GPU is present, no host synchronisation inside a guided step."""

import pytest
import torch

from repro.algorithms.balanced import Guided, GuidedReference
from repro.config import resolve
from repro.models import DeviceFusion, build_model


def _pair(device="cpu", **overrides):
    cfg = resolve("cmnist", algorithm="guided", **overrides)
    algs = []
    for cls in (GuidedReference, Guided):
        torch.manual_seed(0)
        model = build_model("cmnist", (3, 1), 10).to(device, memory_format=torch.channels_last)
        alg = cls(model, cfg).to(device)
        algs.append((alg, torch.optim.SGD(alg.parameters(), lr=0.05, momentum=0.9)))
    return algs


def _batches(n, size=8, device="cpu"):
    g = torch.Generator().manual_seed(1)
    out = []
    for _ in range(n):
        x0 = torch.rand(size, 3, 28, 28, generator=g).to(device).contiguous(memory_format=torch.channels_last)
        x1 = torch.rand(size, 1, 28, 28, generator=g).to(device).contiguous(memory_format=torch.channels_last)
        out.append(((x0, x1), torch.randint(10, (size,), generator=g).to(device)))
    return out


@pytest.mark.parametrize("alpha", [0.0, 0.004])
def test_device_state_machine_matches_the_host_reference_step_by_step(alpha):
    torch.set_num_threads(1)
    (ref, opt_ref), (dev, opt_dev) = _pair(alpha=alpha, window=3)
    kinds = []
    for epoch, batches in ((1, _batches(3)), (2, _batches(14))):
        ref.begin_epoch(epoch), dev.begin_epoch(epoch)
        for i, (inputs, y) in enumerate(batches):
            if epoch == 2 and i == 7:  # swap the modalities' M in both: d_speed changes sign, m1 gets its turn
                for alg in (ref, dev):
                    alg.speed.accumulated.copy_(alg.speed.accumulated[[2, 3, 0, 1]])
            r = ref.training_step(inputs, y, opt_ref)
            d = dev.training_step(inputs, y, opt_dev)
            assert isinstance(d.fusion, DeviceFusion) == (epoch == 2)  # warm-up: host path, regular steps
            assert r.fusion.code == int(d.fusion.code)
            kinds.append(r.fusion.code)
            assert torch.equal(r.loss, d.loss)
            assert torch.equal(ref.speed.accumulated, dev.speed.accumulated)
            for (name, a), b in zip(ref.state_dict().items(), dev.state_dict().values(), strict=True):
                assert torch.equal(a, b), name
            for p, q in zip(ref.parameters(), dev.parameters(), strict=True):
                buf_p = opt_ref.state[p].get("momentum_buffer")
                assert torch.equal(buf_p, opt_dev.state[q]["momentum_buffer"])
    assert {-1, 0, 1} <= set(kinds[3:]), kinds  # regular steps and re-balancing on each modality


def test_a_rebalancing_step_leaves_the_accelerated_branchs_excitations_alone():
    """As SGD skips parameters without gradient: branch k's excitation layers (value and momentum) stay put."""
    _, (dev, opt) = _pair(alpha=0.0, window=2)
    batches = _batches(4)
    dev.begin_epoch(1)
    dev.training_step(*batches[0], opt)
    dev.begin_epoch(2)
    dev.training_step(*batches[1], opt)  # regular; alpha 0 switches to re-balancing
    k = int(dev.accelerated)
    assert bool(dev.rebalancing)
    excite = [p for m in dev.model.mmtms() for p in (m.excite_a if k == 0 else m.excite_b).parameters()]
    other = [p for m in dev.model.mmtms() for p in (m.excite_b if k == 0 else m.excite_a).parameters()]
    before = [p.detach().clone() for p in excite + other]
    bufs = [opt.state[p]["momentum_buffer"].clone() for p in excite]
    result = dev.training_step(*batches[2], opt)
    assert int(result.fusion.code) == k
    assert all(torch.equal(p, b) for p, b in zip(excite, before, strict=False))
    assert all(torch.equal(opt.state[p]["momentum_buffer"], b) for p, b in zip(excite, bufs, strict=True))
    assert not all(torch.equal(p, b) for p, b in zip(other, before[len(excite) :], strict=True))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_guided_step_issues_no_host_sync_on_cuda():
    (_, _), (dev, opt) = _pair("cuda", alpha=0.0, window=3)
    batches = _batches(12, size=32, device="cuda")
    dev.begin_epoch(1)
    dev.training_step(*batches[0], opt)
    dev.begin_epoch(2)
    dev.training_step(*batches[1], opt)  # first device step: lazy set-up (masks) happens here
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for inputs, y in batches[2:]:
            dev.training_step(inputs, y, opt)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert int(dev.steps_in_window) >= 0


def test_engine_records_are_those_of_the_host_decided_algorithm(tiny_cmnist, tmp_path, monkeypatch):
    """`repro train` with the device state machine writes the record the host-decided Alg. 1 writes (fp32, CPU)."""
    from dataclasses import replace

    from repro import engine, registry

    cfg = resolve(
        "cmnist",
        algorithm="guided",
        data=str(tiny_cmnist),
        alpha=0.02,
        window=3,
        max_epochs=3,
        batch_size=32,
        progress=False,
        threads=1,
    )
    device = engine.train(cfg, tmp_path / "device")
    reference = replace(registry.ALGORITHMS["guided"], cls="repro.algorithms.balanced:GuidedReference")
    monkeypatch.setitem(registry.ALGORITHMS, "guided", reference)  # the same run, Alg. 1 decided on the host
    host = engine.train(cfg, tmp_path / "host")
    assert sum(e["rebalance_steps"] for e in host["epochs"]) > 0
    assert {k: v for k, v in device.items() if k != "timing"} == {k: v for k, v in host.items() if k != "timing"}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_guided_step_replays_from_a_cuda_graph():
    """Sync-free means capturable: one guided step captured once and replayed follows eager steps."""
    (_, _), (graphed, opt_g) = _pair("cuda", alpha=0.0, window=3)
    (_, _), (eager, opt_e) = _pair("cuda", alpha=0.0, window=3)
    (x0, x1), y = _batches(1, size=32, device="cuda")[0]
    for alg, opt in ((graphed, opt_g), (eager, opt_e)):
        alg.begin_epoch(1)
        alg.training_step((x0, x1), y, opt)
        alg.begin_epoch(2)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up on a side stream, as the CUDA-graph recipe asks
        for _ in range(3):
            graphed.training_step((x0, x1), y, opt_g)
            eager.training_step((x0, x1), y, opt_e)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        graphed.training_step((x0, x1), y, opt_g)
    kinds_graph, kinds_eager = [], []
    for _ in range(8):
        graph.replay()
        kinds_graph.append(int(graphed.rebalancing) * (1 + int(graphed.accelerated)))
        eager.training_step((x0, x1), y, opt_e)
        kinds_eager.append(int(eager.rebalancing) * (1 + int(eager.accelerated)))
    # (capturing records the step's kernels without running them)
    assert kinds_graph == kinds_eager and len(set(kinds_graph)) >= 2  # the state machine moves between replays
    for p, q in zip(graphed.parameters(), eager.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-3, atol=1e-4)
