"""K CMNIST runs in one process and one set of kernels (issue 7): ``train_packed(cfgs, out_dirs)``.

The runs may differ in seed, lr, alpha and window; everything else must be equal (:mod:`repro.engine.packing`). Each run
keeps its own data order, initialisation, optimizer state (SGD momentum, learning rate and its plateau schedule),
balancing state (M of Def. 4.1, Alg. 1's window, A.3's draws), stop rule, best checkpoint and record: the same
record, written to the same files (checkpoint included, so a packed run resumes packed or alone), as ``repro train``
would write.

How: between epochs every run lives in an ordinary :class:`repro.engine.Trainer` (model, algorithm, optimizer,
scheduler: the *shadow*). An epoch stacks the shadows' parameters, buffers and momentum buffers along a leading
dimension K, trains the K models as one grouped network (:mod:`repro.models.stacked_cmnist`) with a stacked SGD step,
then writes the state back; validation, the LR schedule, checkpoints, the stop rule and the test evaluation then run
per shadow through the engine's own code. A run that has finished drops out of the next epoch's stack. Runs at
different epochs (after a resume) pack too: warm-up and data order are per run.

Equivalence: the same arithmetic as K separate runs, but grouped convolutions and batched matrix products sum in
another order, so records agree to rounding (float32) rather than bit for bit; tests/test_packed.py states the
tolerance. RUBi and uni-modal runs are not packable (their own modules and losses).
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from ..algorithms import ALGORITHMS, seed_for
from ..algorithms.balanced import Guided, RandomBalance, alg1_transition
from ..config import RunConfig
from ..data import load_dataset
from ..metrics.speed import speeds_from
from ..models.stacked_cmnist import PackedCMNISTNet, stack_states
from ..rundir import write_json
from .packing import check_packable
from .run import Trainer, make_deterministic, pick_device


class _Pack:
    """One epoch of K shadows trained together; the stacked state exists only during the epoch."""

    def __init__(self, trainers: list[Trainer], epochs: list[int], convolutions: str = "auto"):
        self.trainers, self.epochs = trainers, epochs
        self.cfg = trainers[0].cfg
        self.device = trainers[0].device
        self.k = len(trainers)
        models = [t.model for t in trainers]
        self.net = PackedCMNISTNet(models[0], convolutions)
        self.names = [n for n, _ in models[0].named_parameters()]
        self.params, self.buffers = stack_states(models)
        shadow = [dict(zip(self.names, self._shadow_params(j), strict=True)) for j in range(self.k)]
        self.momentum_buffers = {
            n: torch.stack([_momentum(t, shadow[j][n]) for j, t in enumerate(trainers)]) for n in self.names
        }
        dtype = self.params[self.names[0]].dtype
        self.lr = torch.tensor([t.optimizer.param_groups[0]["lr"] for t in trainers], dtype=dtype, device=self.device)
        self.accumulated = torch.stack([t.algorithm.speed.accumulated for t in trainers])
        self.membership = trainers[0].algorithm.speed.membership
        speed_index = {id(p): j for j, p in enumerate(trainers[0].algorithm.speed.params)}
        speed_order = torch.tensor([speed_index[id(p)] for p in self._shadow_params(0)])
        self.to_speed_order = torch.argsort(speed_order).to(self.device)  # rows in ConditionalSpeed.params order
        self.excite_branch = {n: 0 if ".excite_a." in n else 1 for n in self.names if ".excite_" in n}
        self.regular_names = [n for n in self.names if n not in self.excite_branch]
        self._lr_like = {
            n: self.lr.view((self.k,) + (1,) * (p.dim() - 1)).expand_as(p).contiguous() for n, p in self.params.items()
        }  # each model's lr, for foreach ops (equal shapes)
        self.warming_up = [e <= self.cfg.warmup_epochs for e in epochs]
        self.warm = torch.tensor(self.warming_up, device=self.device)
        self.guided = isinstance(trainers[0].algorithm, Guided)
        if self.guided:
            algs = [t.algorithm for t in trainers]
            self.rebalancing = torch.stack([a.rebalancing for a in algs])
            self.steps_in_window = torch.stack([a.steps_in_window for a in algs])
            self.accelerated = torch.stack([a.accelerated for a in algs])
            self.alpha = torch.tensor([t.cfg.alpha for t in trainers], dtype=torch.float64, device=self.device)
            self.window = torch.tensor([t.cfg.window for t in trainers], device=self.device)
        self.random = [
            torch.Generator().manual_seed(seed_for(t.cfg.seed, "random-steps", e))
            if isinstance(t.algorithm, RandomBalance)
            else None
            for t, e in zip(trainers, epochs, strict=True)
        ]

    def _shadow_params(self, k: int) -> list[Tensor]:
        return list(self.trainers[k].model.parameters())

    # --- one step ---------------------------------------------------------------------------------------------
    def _code(self) -> Tensor:
        """Each model's kind of step (-1 regular, j re-balance m_j), as Guided / RandomBalance decide it."""
        if self.guided:
            code = torch.where(self.rebalancing, self.accelerated, -1)
        elif self.random[0] is not None:
            draws = [
                -1 if warm else int(torch.randint(3, (), generator=g)) - 1  # no draw in the warm-up (A.3)
                for g, warm in zip(self.random, self.warming_up, strict=True)
            ]
            code = torch.tensor(draws).to(self.device, non_blocking=True)
        else:
            code = torch.full((self.k,), -1, device=self.device)
        return torch.where(self.warm, -1, code)

    def _squared_norms(self, tensors: list[Tensor]) -> Tensor:
        """(4, K) sums of squared norms over each model's parameter groups (Def. 4.1's numerators and denominators),
        with the same per-parameter kernel as ``ConditionalSpeed``."""
        per_param = torch.stack(torch._foreach_norm([v for t in tensors for v in t.unbind(0)])).float().pow(2)
        per_param = per_param.view(len(tensors), self.k).index_select(0, self.to_speed_order)
        return self.membership @ per_param

    @torch.no_grad()
    def _sgd(self, code: Tensor) -> None:
        """torch.optim.SGD's update (momentum, weight decay, no dampening or Nesterov), per model's learning rate.
        A re-balancing step on m_j leaves model's branch-j excitation layers untouched, as SGD skips a parameter
        without gradient (see ``Algorithm._device_decided_update``). The other parameters take the update as a few
        multi-tensor (foreach) operations, one fused kernel each on CUDA, with each model's learning rate expanded to
        the parameter's shape once an epoch (``_lr_like``)."""
        cfg, names = self.cfg, self.regular_names
        params = [self.params[n] for n in names]
        grads = [p.grad for p in params]
        if cfg.weight_decay:
            grads = torch._foreach_add(grads, params, alpha=cfg.weight_decay)
        bufs = [self.momentum_buffers[n] for n in names]
        if cfg.momentum:
            torch._foreach_mul_(bufs, cfg.momentum)
            torch._foreach_add_(bufs, grads)
        else:
            torch._foreach_copy_(bufs, grads)
        torch._foreach_addcmul_(params, [self._lr_like[n] for n in names], bufs, value=-1)
        for n, branch in self.excite_branch.items():  # the same update, kept where model k re-balances branch
            p, g, buf = self.params[n], self.params[n].grad, self.momentum_buffers[n]
            if cfg.weight_decay:
                g = g.add(p, alpha=cfg.weight_decay)
            new_buf = buf * cfg.momentum + g if cfg.momentum else g
            new_p = p.addcmul(self._lr_like[n], new_buf, value=-1)
            keep = (code == branch).view((self.k,) + (1,) * (p.dim() - 1))
            p.copy_(torch.where(keep, p, new_p))
            buf.copy_(torch.where(keep, buf, new_buf))

    def step(self, x0: Tensor, x1: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One training step of every model on its own batch, x0 (K, B, C0, H, W), x1 (K, B, C1, H, W), y (B, K);
        returns (loss (K,), prediction (B, K, classes), code (K,))."""
        code = self._code()
        autocast = self.cfg.precision == "bf16"
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = self.net(self.params, self.buffers, x0, x1, code, training=True)
            losses = sum(F.cross_entropy(lg.permute(0, 2, 1), y, reduction="none").mean(0) for lg in logits)
        for p in self.params.values():
            p.grad = None
        losses.sum().backward()
        names = self.names
        gradient_sq = self._squared_norms([self.params[n].grad for n in names])
        self._sgd(code)
        with torch.no_grad():
            weight_sq = self._squared_norms([self.params[n] for n in names])
            mu = (gradient_sq / weight_sq).double().T
            regular = code < 0
            self.accumulated += torch.where(regular.unsqueeze(1), mu, 0.0)
            if self.guided:
                d = speeds_from(self.accumulated, self.cfg.log_base)
                state = alg1_transition(
                    self.rebalancing,
                    self.steps_in_window,
                    self.accelerated,
                    regular,
                    d[0] - d[1],
                    self.alpha,
                    self.window,
                )
                self.rebalancing, self.steps_in_window, self.accelerated = (
                    torch.where(self.warm, old, new)
                    for old, new in zip((self.rebalancing, self.steps_in_window, self.accelerated), state, strict=True)
                )
        prediction = torch.stack([lg.detach() for lg in logits]).mean(0)
        return losses.detach(), prediction, code

    # --- the epoch --------------------------------------------------------------------------------------------
    def train_epoch(self) -> list[dict]:
        cfg, k, device = self.cfg, self.k, self.device
        train = self.trainers[0].splits["train"]
        n = len(train)
        orders = torch.stack(
            [
                torch.randperm(n, generator=torch.Generator().manual_seed(seed_for(t.cfg.seed, "data", e)))
                for t, e in zip(self.trainers, self.epochs, strict=True)
            ]
        ).to(device)
        loss_sum = torch.zeros(k, dtype=torch.float64, device=device)
        correct = torch.zeros(k, dtype=torch.long, device=device)
        kinds = torch.zeros(k, 3, dtype=torch.long, device=device)
        steps = 0
        for idx in orders.split(cfg.batch_size, dim=1):
            b = idx.shape[1]
            flat = idx.reshape(-1)
            x0, x1 = (x.index_select(0, flat).view(k, b, *x.shape[1:]).float() / 255.0 for x in train.images)
            y = train.labels.index_select(0, flat).view(k, b).T  # (B, K)
            losses, prediction, code = self.step(x0, x1, y)
            loss_sum += losses.double() * b
            correct += (prediction.argmax(2) == y).sum(0)
            kinds += F.one_hot(code + 1, 3)
            steps += 1
        self._write_back()
        counts, kinds = correct.tolist(), kinds.tolist()
        losses = (loss_sum / n).tolist()
        stats = []
        for j, t in enumerate(self.trainers):
            stats.append(
                {
                    "epoch": self.epochs[j],
                    "lr": t.optimizer.param_groups[0]["lr"],
                    "steps": steps,
                    "train_loss": losses[j],
                    "train_acc": 100.0 * counts[j] / n,
                    "train_all_correct": counts[j] == n,
                    **t._validate(self.epochs[j]),
                    "d_speed": t.algorithm.d_speed(),
                    "rebalance_steps": kinds[j][1] + kinds[j][2],
                    "rebalance_steps_m0": kinds[j][1],
                    "rebalance_steps_m1": kinds[j][2],
                }
            )
        return stats

    @torch.no_grad()
    def _write_back(self) -> None:
        """Each model's stacked state into its shadow (model, momentum, M, Alg. 1's buffers)."""
        for j, t in enumerate(self.trainers):
            for n, p in zip(self.names, self._shadow_params(j), strict=True):
                p.copy_(self.params[n][j])
                t.optimizer.state[p]["momentum_buffer"] = self.momentum_buffers[n][j].clone()
            for n, b in t.model.named_buffers():
                b.copy_(self.buffers[n][j])
            t.algorithm.speed.accumulated.copy_(self.accumulated[j])
            if self.guided:
                t.algorithm.rebalancing.copy_(self.rebalancing[j])
                t.algorithm.steps_in_window.copy_(self.steps_in_window[j])
                t.algorithm.accelerated.copy_(self.accelerated[j])


def _momentum(trainer: Trainer, p: Tensor) -> Tensor:
    buf = trainer.optimizer.state.get(p, {}).get("momentum_buffer")
    return torch.zeros_like(p) if buf is None else buf  # zero momentum then one step = SGD's first step


def train_packed(cfgs: list[RunConfig], out_dirs: list[str | Path], force: bool = False) -> list[dict]:
    """Train the runs ``cfgs`` (into ``out_dirs``) as one pack; returns their records in order. Finished runs are
    returned as they are, interrupted ones resume from their checkpoints (packed or not)."""
    if len(cfgs) != len(out_dirs):
        raise ValueError("one output directory per run")
    check_packable(cfgs)
    trainers = [Trainer(c, o, force=force) for c, o in zip(cfgs, out_dirs, strict=True)]
    records: list[dict | None] = [t._check_existing() for t in trainers]
    active = [j for j, r in enumerate(records) if r is None]
    if not active:
        return records
    cfg = cfgs[0]
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    make_deterministic()
    device = pick_device(cfg.device)
    bundle = load_dataset(
        cfg.dataset, cfg.data, cfg.modality_names, cfg.train_limit, cfg.eval_limit, workers=cfg.workers
    )
    splits = {k: v.to(device) for k, v in bundle.splits.items()}
    state: dict[int, list] = {}  # run -> [epoch, record, streak]
    for j in active:
        t = trainers[j]
        t.device, t.splits, t.eval_batch_size = device, splits, bundle.eval_batch_size
        t.data_provenance = {k: str(v) for k, v in bundle.provenance.items()}
        t._build_model(bundle)
        if not isinstance(t.algorithm, ALGORITHMS[cfg.algorithm]):
            raise ValueError(f"unexpected algorithm class for {cfg.algorithm}")
        restored = t._restore()
        epoch, record, streak = restored if restored is not None else (0, t._new_record(), 0)
        record.update(status="running", error=None, device=str(device))
        record["timing"]["pack_size"] = len(active)
        write_json(t.record_path, record)
        state[j] = [epoch, record, streak]
    try:
        while True:
            for j in list(active):  # finished runs: test evaluation, record done, out of the pack
                stop = trainers[j]._finished(state[j][0], state[j][2])
                if stop is not None:
                    trainers[j]._finish(state[j][1], stop)
                    records[j] = state[j][1]
                    active.remove(j)
            if not active:
                return records
            start = time.perf_counter()
            pack = _Pack([trainers[j] for j in active], [state[j][0] + 1 for j in active])
            for j, stats in zip(active, pack.train_epoch(), strict=True):
                state[j][0] += 1
                print(f"[{trainers[j].out.name}] ", end="")
                state[j][2] = trainers[j]._end_epoch(state[j][0], stats, state[j][1], state[j][2], start)
    except BaseException as exc:
        # As repro.engine: an interruption (Ctrl-C, SystemExit) is not a failure, a sweep resumes the runs.
        status = "failed" if isinstance(exc, Exception) else "interrupted"
        error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        for j in active:
            state[j][1].update(status=status, error=error)
            write_json(trainers[j].record_path, state[j][1])
        raise
