"""``repro bench``'s figures: step-time ratios measured in one process, so they survive a noisy shared machine.

    guided_over_vanilla_step        time of a guided training step / a vanilla one (same model, same batches)
    speed_stats_fused_over_per_parameter
                                    our Def. 4.1 statistics (fused, no host sync) / a per-parameter loop that
                                    synchronises twice per parameter, as the reference code does
    train_samples_per_s             guided training throughput
    epoch_s                         one guided training epoch over ``--epoch-samples`` samples held on the device
                                    as uint8 (the engine's fast path: batches gathered and converted there);
                                    epoch_s_per_60k scales it to a 60,000-sample epoch
    <method>_over_vanilla_step      for each method beyond the paper (OGM-GE, G-Blending, ModDrop, PMR): its
                                    training step / a vanilla one, alternating round by round as above
    packed_speedup                  K guided runs (different seeds and learning rates) trained packed in one
                                    network / the same K runs stepped one after the other (``--pack K``)
    loader_samples_per_s            with ``--data FILE``: training samples per second delivered to the device by
                                    the dataset's loader, as ``repro train`` draws them (:mod:`repro.bench.loader`)
    loader_over_model               loader_samples_per_s / train_samples_per_s: above 1, the loader keeps up
                                    (null when the model's inputs were sized otherwise than the file's, --clip)

Measurements alternate between the contenders in rounds and report medians, so a burst of load from another
process hits both alike. Model inputs are random tensors of the dataset's shapes: no prepared data needed (NVGesture
clips are 64 x 224 x 224 as in A.4; ``--clip T,S`` sizes them down for a CPU).
"""

from __future__ import annotations

import contextlib
import statistics
import time

import torch

from ..algorithms import ALGORITHMS
from ..config import resolve
from ..models import build_model
from ..registry import DATASETS
from . import sync

#: dataset -> (m0's input shape, m1's input shape, classes), from the registry; ``--clip`` resizes NVGesture's.
SHAPES = {name: (*spec.input_shapes, spec.num_classes) for name, spec in DATASETS.items()}


class BenchDataError(Exception):
    """The file given to ``--data`` cannot be read as the dataset's (the message names it)."""


def clip_shapes(frames: int, side: int) -> tuple:
    """NVGesture's input shapes at another clip size (``--clip``)."""
    (c0, *_), (c1, *_) = DATASETS["nvgesture"].input_shapes
    return (c0, frames, side, side), (c1, frames, side, side), DATASETS["nvgesture"].num_classes


def _make(dataset: str, algorithm: str, device: torch.device, compile: bool = False, **overrides):
    cfg = resolve(dataset, algorithm=algorithm, **overrides)
    shape0, shape1, classes = SHAPES[dataset]
    torch.manual_seed(0)
    model = build_model(dataset, (shape0[0], shape1[0]), classes)
    model = model.to(device, memory_format=getattr(model, "memory_format", torch.channels_last))  # as the engine
    if compile:
        model.compile()
    alg = ALGORITHMS[algorithm](model, cfg).to(device)
    alg.begin_epoch(cfg.warmup_epochs + 1)  # past the warm-up, so guided makes its decisions
    opt = torch.optim.SGD(alg.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    return alg, opt, cfg


def _batch(dataset: str, batch_size: int, device: torch.device, seed: int):
    shape0, shape1, classes = SHAPES[dataset]
    g = torch.Generator().manual_seed(seed)
    inputs = []
    for shape in (shape0, shape1):
        x = torch.rand((batch_size,) + shape, generator=g).to(device)
        inputs.append(x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x)  # as the loaders
    return tuple(inputs), torch.randint(classes, (batch_size,), generator=g).to(device)


def _time_steps(alg, opt, batches, device) -> tuple[float, int]:
    """Mean seconds per step over ``batches``, and how many of the steps were re-balancing steps (counted on the
    device for device-decided steps, so the count adds no host synchronisation to the timed loop)."""
    rebalancing = torch.zeros((), dtype=torch.long, device=device)
    sync(device)
    start = time.perf_counter()
    for inputs, y in batches:
        rebalancing += alg.training_step(inputs, y, opt).fusion.code >= 0  # int or device tensor: no sync
    sync(device)
    return (time.perf_counter() - start) / len(batches), int(rebalancing)


def step_ratio(dataset: str, device: torch.device, rounds: int, steps: int, batch_size: int) -> dict:
    """Vanilla and guided alternate round by round; the ratio is the median of the per-round ratios, so load
    from other processes, which drifts slowly, cancels within each pair."""
    vanilla, opt_v, _ = _make(dataset, "vanilla", device, batch_size=batch_size)
    # alpha 0: guided re-balances Q steps after each regular one (5/6 of the steps), the mix it takes on real
    # CMNIST, where |d_speed| stays above the paper's alpha; random batches alone would rarely cross it.
    guided, opt_g, _ = _make(dataset, "guided", device, batch_size=batch_size, alpha=0.0)
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
    return {
        "vanilla_step_s": statistics.median(times_v),
        "guided_step_s": med_g,
        "guided_over_vanilla_step": ratio,
        "guided_rebalancing_fraction": rebalancing / (rounds * steps),
        "train_samples_per_s": batch_size / med_g,
    }


class _Batches:
    """The bench's batches as a split (``len``, ``batches``, ``subset``), for the algorithms that read data at the
    start of an epoch (PMR's prototypes, G-Blending's held-out losses)."""

    def __init__(self, batches: list, batch_size: int):
        self.list, self.batch_size = batches, batch_size

    def __len__(self) -> int:
        return len(self.list) * self.batch_size

    def batches(self, batch_size: int, *, generator=None):
        return iter(self.list)

    def subset(self, indices) -> _Batches:
        return self


def beyond_ratios(dataset: str, device: torch.device, rounds: int, steps: int, batch_size: int) -> dict:
    """Each method beyond the paper against vanilla, on the same batches, alternating in every round; the ratios are
    medians of the per-round ratios (the methods' own bookkeeping must add no host synchronisation per step)."""
    from ..algorithms import AlgorithmData
    from ..registry import ALGORITHMS as SPECS

    batches = [_batch(dataset, batch_size, device, i) for i in range(steps)]
    split = _Batches(batches, batch_size)
    contenders = {"vanilla": _make(dataset, "vanilla", device, batch_size=batch_size)[:2]}
    for name, spec in SPECS.items():
        if spec.paper:
            continue
        cfg = resolve(dataset, algorithm=name, batch_size=batch_size)
        torch.manual_seed(0)
        shape0, shape1, classes = SHAPES[dataset]
        model = build_model(dataset, (shape0[0], shape1[0]), classes)
        model = model.to(device, memory_format=getattr(model, "memory_format", torch.channels_last))
        alg = ALGORITHMS[name](model, cfg).to(device)
        alg.data = AlgorithmData(split, split, batch_size)
        alg.begin_epoch(1)  # G-Blending measures, PMR computes its prototypes: before the timed steps
        contenders[name] = (alg, torch.optim.SGD(alg.parameters(), lr=cfg.lr, momentum=cfg.momentum))
    for alg, opt in contenders.values():  # warm-up: allocator, kernels
        _time_steps(alg, opt, batches[:3], device)
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, (alg, opt) in contenders.items():
            times[name].append(_time_steps(alg, opt, batches, device)[0])
    return {
        f"{name}_over_vanilla_step": statistics.median(
            t / v for t, v in zip(times[name], times["vanilla"], strict=True)
        )
        for name in contenders
        if name != "vanilla"
    }


def speed_stats_ratio(dataset: str, device: torch.device, rounds: int, repeats: int, batch_size: int = 32) -> dict:
    """Our fused statistics against the reference code's per-parameter loop (two host syncs per parameter)."""
    alg, opt, _ = _make(dataset, "vanilla", device)
    inputs, y = _batch(dataset, batch_size, device, 0)
    alg.training_step(inputs, y, opt)  # gradients in place
    speed = alg.speed
    groups = alg.model.parameter_groups()

    def fused():
        speed.update(speed.gradient_sq())
        sync(device)

    def per_parameter():
        mu = {}
        for name, params in groups.items():
            g2 = w2 = 0.0
            for p in params:
                w2 += (p**2).sum().item()
                g2 += (p.grad**2).sum().item()
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
    return {
        "speed_stats_fused_s": statistics.median(t_fused),
        "speed_stats_per_parameter_s": statistics.median(t_loop),
        "speed_stats_fused_over_per_parameter": ratio,
        "parameters": len(speed.params),
    }


def epoch_time(
    dataset: str, device: torch.device, samples: int, batch_size: int, compile: bool, precision: str
) -> dict:
    """One guided epoch (after the warm-up) over ``samples`` random uint8 images held on the device, batched by
    :class:`repro.data.memory.InMemorySplit` as in ``repro train``; loss and accuracy summed on the device."""
    from ..data.memory import InMemorySplit

    shape0, shape1, classes = SHAPES[dataset]
    g = torch.Generator().manual_seed(0)
    images = tuple(
        torch.randint(256, (samples, s[1], s[2], s[0]), generator=g, dtype=torch.uint8).permute(0, 3, 1, 2).to(device)
        for s in (shape0, shape1)
    )
    split = InMemorySplit(images, torch.randint(classes, (samples,), generator=g).to(device))
    alg, opt, _ = _make(dataset, "guided", device, compile=compile, batch_size=batch_size, precision=precision)

    def epoch(limit: int | None = None) -> float:
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.long, device=device)
        sync(device)
        start = time.perf_counter()
        for i, (inputs, y) in enumerate(split.batches(batch_size, generator=torch.Generator().manual_seed(1))):
            if limit is not None and i >= limit:
                break
            result = alg.training_step(inputs, y, opt)
            loss_sum += result.loss.double() * y.shape[0]
            correct += (result.prediction.argmax(1) == y).sum()
        float(loss_sum), int(correct)  # the epoch's one host synchronisation, as in the engine
        sync(device)
        return time.perf_counter() - start

    compile_s = epoch(limit=3)  # warm-up: kernels, allocator, compilation
    seconds = epoch()
    return {
        "epoch_samples": samples,
        "epoch_s": seconds,
        "epoch_s_per_60k": seconds * 60000 / samples,
        "epoch_warmup_s": compile_s,
        "compile": compile,
        "precision": precision,
    }


def packed_ratio(
    dataset: str, device: torch.device, k: int, rounds: int, steps: int, batch_size: int, convolutions: str = "auto"
) -> dict:
    """K guided runs stepped one after the other vs the same K runs packed (``repro.engine.packed``), in alternating
    rounds; the speedup is the median of the per-round ratios sequential / packed."""
    from ..engine import Run
    from ..engine.packed import StackedStepper

    shape0, shape1, classes = SHAPES[dataset]

    def runs():
        out = []
        for j in range(k):
            cfg = resolve(dataset, algorithm="guided", seed=j, lr=0.01 * (1 + j), batch_size=batch_size)
            run = Run(cfg, "/nonexistent")
            run.build((shape0[0], shape1[0]), classes, device)
            run.progress.epoch = cfg.warmup_epochs  # the next epoch is past the warm-up: guided makes decisions
            run.algorithm.begin_epoch(cfg.warmup_epochs + 1)
            out.append(run)
        return out

    separate, pack = runs(), StackedStepper(runs(), convolutions)
    batches = []
    for i in range(steps):
        per_run = [_batch(dataset, batch_size, device, 1000 * j + i) for j in range(k)]
        x0 = torch.stack([b[0][0] for b in per_run])
        x1 = torch.stack([b[0][1] for b in per_run])
        y = torch.stack([b[1] for b in per_run]).T
        batches.append((per_run, (x0, x1, y)))

    def run_separate(n: int) -> float:
        sync(device)
        start = time.perf_counter()
        for per_run, _ in batches[:n]:
            for t, (inputs, y) in zip(separate, per_run, strict=True):
                t.algorithm.training_step(inputs, y, t.optimizer)
        sync(device)
        return time.perf_counter() - start

    def run_packed(n: int) -> float:
        sync(device)
        start = time.perf_counter()
        for _, packed in batches[:n]:
            pack.step(*packed)
        sync(device)
        return time.perf_counter() - start

    run_separate(2), run_packed(2)
    t_sep, t_packed = [], []
    for _ in range(rounds):
        t_sep.append(run_separate(steps))
        t_packed.append(run_packed(steps))
    return {
        "pack": k,
        "packed_convolutions": "grouped" if pack.net.grouped(device) else "loop",
        "packed_step_s": statistics.median(t_packed) / steps,
        "separate_steps_s": statistics.median(t_sep) / steps,
        "packed_speedup": statistics.median(s / p for s, p in zip(t_sep, t_packed, strict=True)),
    }


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


@contextlib.contextmanager
def _clip_size(clip: tuple[int, int] | None):
    """NVGesture's model inputs at ``clip`` = (frames, side) while the bench runs."""
    saved = SHAPES["nvgesture"]
    if clip is not None:
        SHAPES["nvgesture"] = clip_shapes(*clip)
    try:
        yield
    finally:
        SHAPES["nvgesture"] = saved


def run(
    *,
    dataset: str,
    device: str,
    batch_size: int,
    steps: int,
    rounds: int,
    pack: int,
    beyond: bool,
    pack_convolutions: str,
    epoch_samples: int,
    compile_: bool,
    precision: str,
    threads: int,
    data: str | None,
    workers: int,
    loader_batches: int,
    clip: tuple[int, int] | None,
) -> dict:
    """Every figure of ``repro bench`` (the module's docstring; the options are the command's), as one dict. Raises
    :class:`BenchDataError` when ``data`` cannot be read."""
    from ..engine import pick_device
    from .loader import loader_throughput

    if threads > 0:
        torch.set_num_threads(threads)
    dev = pick_device(device)
    with _clip_size(clip):
        result = {
            "dataset": dataset,
            "device": device_name(dev),
            "batch_size": batch_size,
            "torch": torch.__version__,
            "model_input_shapes": [list(s) for s in SHAPES[dataset][:2]],
        }
        if data is not None:  # first: a wrong file fails before minutes of model timing
            try:
                result.update(loader_throughput(dataset, data, dev, batch_size, workers, loader_batches))
            except (ValueError, FileNotFoundError) as exc:
                raise BenchDataError(str(exc)) from exc
        result.update(step_ratio(dataset, dev, rounds, steps, batch_size))
        if beyond:
            result.update(beyond_ratios(dataset, dev, rounds, steps, batch_size))
        result.update(speed_stats_ratio(dataset, dev, rounds, repeats=20, batch_size=min(32, batch_size)))
        if pack > 0 and dataset == "cmnist":  # packing supports the CMNIST network (repro.engine.packed)
            result.update(packed_ratio(dataset, dev, pack, rounds, steps, batch_size, pack_convolutions))
        if epoch_samples > 0 and DATASETS[dataset].in_memory:  # a streamed dataset's epoch is its loader's
            result.update(epoch_time(dataset, dev, epoch_samples, batch_size, compile_, precision))
    if data is not None:
        same = result["loader_input_shapes"] == result["model_input_shapes"]  # else the ratio compares two sizes
        result["loader_over_model"] = result["loader_samples_per_s"] / result["train_samples_per_s"] if same else None
    return result
