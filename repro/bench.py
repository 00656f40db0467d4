"""``repro bench``: step-time ratios measured in one process, so the figures survive a noisy shared machine.

    guided_over_vanilla_step        time of a guided training step / a vanilla one (same model, same batches)
    speed_stats_fused_over_per_parameter
                                    our Def. 4.1 statistics (fused, no host sync) / a per-parameter loop that
                                    synchronises twice per parameter, as the reference code does
    train_samples_per_s             guided training throughput

Measurements alternate between the contenders in rounds and report medians, so a burst of load from another
process hits both alike. Inputs are random tensors of the dataset's shapes: no prepared data needed.
"""

from __future__ import annotations

import json
import statistics
import time

import click
import torch

from .algorithms import ALGORITHMS
from .hparams import resolve
from .models import build_model

SHAPES = {"cmnist": ((3, 28, 28), (1, 28, 28), 10), "modelnet40": ((1, 224, 224), (1, 224, 224), 40)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _make(dataset: str, algorithm: str, device: torch.device, **overrides):
    cfg = resolve(dataset, algorithm=algorithm, **overrides)
    shape0, shape1, classes = SHAPES[dataset]
    torch.manual_seed(0)
    model = build_model(dataset, (shape0[0], shape1[0]), classes).to(device, memory_format=torch.channels_last)
    alg = ALGORITHMS[algorithm](model, cfg).to(device)
    alg.begin_epoch(cfg.warmup_epochs + 1)  # past the warm-up, so guided makes its decisions
    opt = torch.optim.SGD(alg.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    return alg, opt, cfg


def _batch(dataset: str, batch_size: int, device: torch.device, seed: int):
    shape0, shape1, classes = SHAPES[dataset]
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand((batch_size,) + shape0, generator=g).to(device).contiguous(memory_format=torch.channels_last)
    x1 = torch.rand((batch_size,) + shape1, generator=g).to(device).contiguous(memory_format=torch.channels_last)
    return (x0, x1), torch.randint(classes, (batch_size,), generator=g).to(device)


def _time_steps(alg, opt, batches, device) -> tuple[float, int]:
    """Mean seconds per step over ``batches``, and how many of the steps were re-balancing steps."""
    rebalancing = 0
    _sync(device)
    start = time.perf_counter()
    for inputs, y in batches:
        rebalancing += alg.training_step(inputs, y, opt).fusion.rebalance is not None
    _sync(device)
    return (time.perf_counter() - start) / len(batches), rebalancing


def step_ratio(dataset: str, device: torch.device, rounds: int, steps: int, batch_size: int) -> dict:
    """Vanilla and guided alternate round by round; the ratio is the median of the per-round ratios, so load
    from other processes, which drifts slowly, cancels within each pair."""
    vanilla, opt_v, _ = _make(dataset, "vanilla", device, batch_size=batch_size)
    guided, opt_g, _ = _make(dataset, "guided", device, batch_size=batch_size)
    batches = [_batch(dataset, batch_size, device, i) for i in range(steps)]
    for alg, opt in ((vanilla, opt_v), (guided, opt_g)):  # warm-up: allocator, kernels, first decisions
        _time_steps(alg, opt, batches[:3], device)
    times_v, times_g, rebalancing = [], [], 0
    for _ in range(rounds):
        times_v.append(_time_steps(vanilla, opt_v, batches, device)[0])
        seconds, n = _time_steps(guided, opt_g, batches, device)
        times_g.append(seconds)
        rebalancing += n
    ratio = statistics.median(g / v for g, v in zip(times_g, times_v, strict=True))
    med_g = statistics.median(times_g)
    return {"vanilla_step_s": statistics.median(times_v), "guided_step_s": med_g,
            "guided_over_vanilla_step": ratio, "guided_rebalancing_fraction": rebalancing / (rounds * steps),
            "train_samples_per_s": batch_size / med_g}


def speed_stats_ratio(dataset: str, device: torch.device, rounds: int, repeats: int) -> dict:
    """Our fused statistics against the reference code's per-parameter loop (two host syncs per parameter)."""
    alg, opt, _ = _make(dataset, "vanilla", device)
    inputs, y = _batch(dataset, 32, device, 0)
    alg.training_step(inputs, y, opt)  # gradients in place
    speed = alg.speed
    groups = alg.model.parameter_groups()

    def fused():
        speed.update(speed.gradient_sq())
        _sync(device)

    def per_parameter():
        mu = {}
        for name, params in groups.items():
            g2 = w2 = 0.0
            for p in params:
                w2 += (p ** 2).sum().item()
                g2 += (p.grad ** 2).sum().item()
            mu[name] = g2 / w2
        return mu

    def timed(fn) -> float:
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        return (time.perf_counter() - start) / repeats

    timed(fused), timed(per_parameter)
    t_fused, t_loop = [], []
    for _ in range(rounds):
        t_fused.append(timed(fused))
        t_loop.append(timed(per_parameter))
    ratio = statistics.median(f / p for f, p in zip(t_fused, t_loop, strict=True))
    return {"speed_stats_fused_s": statistics.median(t_fused), "speed_stats_per_parameter_s": statistics.median(t_loop),
            "speed_stats_fused_over_per_parameter": ratio, "parameters": len(speed.params)}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


@click.command()
@click.option("--dataset", type=click.Choice(sorted(SHAPES)), default="cmnist", show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N")
@click.option("--batch-size", type=int, default=128, show_default=True)
@click.option("--steps", type=int, default=10, show_default=True, help="training steps per timed round")
@click.option("--rounds", type=int, default=15, show_default=True, help="alternating rounds (median reported)")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def bench(dataset: str, device: str, batch_size: int, steps: int, rounds: int, as_json: bool) -> None:
    """Time a training step (guided vs vanilla) and the d_speed statistics (fused vs per-parameter)."""
    from .engine import pick_device

    dev = pick_device(device)
    result = {"dataset": dataset, "device": device_name(dev), "batch_size": batch_size, "torch": torch.__version__}
    result.update(step_ratio(dataset, dev, rounds, steps, batch_size))
    result.update(speed_stats_ratio(dataset, dev, rounds, repeats=20))
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        for k, v in result.items():
            click.echo(f"{k:40s} {v:.4g}" if isinstance(v, float) else f"{k:40s} {v}")
