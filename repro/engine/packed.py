"""The stepper of K packed runs: one epoch of K CMNIST networks stacked into one (:class:`StackedStepper`).

The runs may differ in seed, lr, alpha and window; everything else is equal (:mod:`.packing`). Each keeps its own
data order, initialisation, optimizer state (SGD momentum, learning rate and its plateau schedule), balancing state
(M of Def. 4.1, Alg. 1's window, A.3's draws), stop rule, best checkpoint and record, as if trained alone.

How: between epochs every run lives in its own :class:`.run.Run` (model, algorithm, optimizer, scheduler). An epoch
stacks the runs' parameters, buffers and momentum buffers along a leading dimension K, trains the K models as one
network (:mod:`repro.models.stacked_cmnist`) with a stacked SGD step and the algorithm's batched policy
(``Algorithm.packed_policy``), then writes the state back into the runs; validation, the LR schedule, checkpoints, the
stop rule and the test then run per run, as for a run trained alone.

Equivalence: the same arithmetic as K separate runs, but grouped convolutions and batched matrix products sum in
another order, so records agree to rounding (float32) rather than bit for bit; tests/test_packed.py states the
tolerance.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..algorithms import seed_for
from ..models.stacked_cmnist import PackedCMNISTNet, stack_states
from .run import EpochTally, Run


class StackedStepper:
    """One epoch of K runs trained together; the stacked state exists only during the epoch."""

    def __init__(self, runs: list[Run], convolutions: str = "auto"):
        self.runs = runs
        self.cfg = runs[0].cfg
        self.device = runs[0].device
        self.k = len(runs)
        self.epochs = [r.progress.epoch + 1 for r in runs]
        models = [r.model for r in runs]
        self.net = PackedCMNISTNet(models[0], convolutions)
        self.names = [n for n, _ in models[0].named_parameters()]
        self.params, self.buffers = stack_states(models)
        own = [dict(zip(self.names, r.model.parameters(), strict=True)) for r in runs]
        self.momentum_buffers = {
            n: torch.stack([_momentum(r, own[j][n]) for j, r in enumerate(runs)]) for n in self.names
        }
        dtype = self.params[self.names[0]].dtype
        self.lr = torch.tensor([r.optimizer.param_groups[0]["lr"] for r in runs], dtype=dtype, device=self.device)
        speeds = [r.algorithm.speed for r in runs]
        self.accumulated = torch.stack([s.accumulated for s in speeds])
        self.membership = speeds[0].membership
        speed_index = {id(p): j for j, p in enumerate(speeds[0].params)}
        speed_order = torch.tensor([speed_index[id(p)] for p in runs[0].model.parameters()])
        self.to_speed_order = torch.argsort(speed_order).to(self.device)  # rows in ConditionalSpeed.params order
        self.excite_branch = {n: 0 if ".excite_a." in n else 1 for n in self.names if ".excite_" in n}
        self.regular_names = [n for n in self.names if n not in self.excite_branch]
        # Each model's learning rate expanded to every parameter's shape once an epoch, for the foreach update.
        self.lr_per_element = {
            n: self.lr.view((self.k,) + (1,) * (p.dim() - 1)).expand_as(p).contiguous() for n, p in self.params.items()
        }
        algorithms = [r.algorithm for r in runs]
        self.policy = type(algorithms[0]).packed_policy(algorithms, self.epochs, self.device)

    # --- one step -----------------------------------------------------------------------------------------------
    def _squared_norms(self, tensors: list[Tensor]) -> Tensor:
        """(4, K) sums of squared norms over each model's parameter groups (Def. 4.1's numerators and denominators),
        with the same per-parameter kernel as ``ConditionalSpeed``."""
        per_param = torch.stack(torch._foreach_norm([v for t in tensors for v in t.unbind(0)])).float().pow(2)
        per_param = per_param.view(len(tensors), self.k).index_select(0, self.to_speed_order)
        return self.membership @ per_param

    @torch.no_grad()
    def _sgd(self, kinds: Tensor) -> None:
        """torch.optim.SGD's update (momentum, weight decay, no dampening or Nesterov), per model's learning rate.
        A re-balancing step on m_j leaves model's branch-j excitation layers untouched, as SGD skips a parameter
        without gradient (see ``Guided._device_decided_update``). The other parameters take the update as a few
        multi-tensor (foreach) operations, one fused kernel each on CUDA."""
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
        torch._foreach_addcmul_(params, [self.lr_per_element[n] for n in names], bufs, value=-1)
        for n, branch in self.excite_branch.items():  # the same update, kept where model k re-balances branch
            p, g, buf = self.params[n], self.params[n].grad, self.momentum_buffers[n]
            if cfg.weight_decay:
                g = g.add(p, alpha=cfg.weight_decay)
            new_buf = buf * cfg.momentum + g if cfg.momentum else g
            new_p = p.addcmul(self.lr_per_element[n], new_buf, value=-1)
            keep = (kinds == branch).view((self.k,) + (1,) * (p.dim() - 1))
            p.copy_(torch.where(keep, p, new_p))
            buf.copy_(torch.where(keep, buf, new_buf))

    def step(self, x0: Tensor, x1: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One training step of every model on its own batch, x0 (K, B, C0, H, W), x1 (K, B, C1, H, W), y (B, K);
        returns (loss (K,), prediction (B, K, classes), kinds of step (K,))."""
        kinds = self.policy.step_kinds()
        autocast = self.cfg.precision == "bf16"
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = self.net(self.params, self.buffers, x0, x1, kinds, training=True)
            losses = sum(F.cross_entropy(lg.permute(0, 2, 1), y, reduction="none").mean(0) for lg in logits)
        for p in self.params.values():
            p.grad = None
        losses.sum().backward()
        names = self.names
        gradient_sq = self._squared_norms([self.params[n].grad for n in names])
        self._sgd(kinds)
        with torch.no_grad():
            weight_sq = self._squared_norms([self.params[n] for n in names])
            mu = (gradient_sq / weight_sq).double().T
            regular = kinds < 0
            self.accumulated += torch.where(regular.unsqueeze(1), mu, 0.0)
            self.policy.after_step(regular, self.accumulated)
        prediction = torch.stack([lg.detach() for lg in logits]).mean(0)
        return losses.detach(), prediction, kinds

    # --- the epoch ----------------------------------------------------------------------------------------------
    def train_epoch(self) -> list[EpochTally]:
        k, device = self.k, self.device
        train = self.runs[0].env.splits["train"]
        orders = [
            torch.Generator().manual_seed(seed_for(r.cfg.seed, "data", e))
            for r, e in zip(self.runs, self.epochs, strict=True)
        ]
        loss_sum = torch.zeros(k, dtype=torch.float64, device=device)
        correct = torch.zeros(k, dtype=torch.long, device=device)
        kinds = torch.zeros(k, 3, dtype=torch.long, device=device)
        steps = 0
        for (x0, x1), y in train.stacked_batches(orders, self.cfg.batch_size):
            losses, prediction, step_kinds = self.step(x0, x1, y)
            loss_sum += losses.double() * y.shape[0]
            correct += (prediction.argmax(2) == y).sum(0)
            kinds += F.one_hot(step_kinds + 1, 3)
            steps += 1
        self.write_back()
        n = len(train)
        return [
            EpochTally(loss, count, n, steps, kind)
            for loss, count, kind in zip(loss_sum.tolist(), correct.tolist(), kinds.tolist(), strict=True)
        ]

    @torch.no_grad()
    def write_back(self) -> None:
        """Each model's stacked state into its run (model, momentum, M, the policy's state)."""
        for j, r in enumerate(self.runs):
            for n, p in zip(self.names, r.model.parameters(), strict=True):
                p.copy_(self.params[n][j])
                r.optimizer.state[p]["momentum_buffer"] = self.momentum_buffers[n][j].clone()
            for n, b in r.model.named_buffers():
                b.copy_(self.buffers[n][j])
            r.algorithm.speed.accumulated.copy_(self.accumulated[j])
        self.policy.write_back()


def _momentum(run: Run, p: Tensor) -> Tensor:
    buf = run.optimizer.state.get(p, {}).get("momentum_buffer")
    return torch.zeros_like(p) if buf is None else buf  # zero momentum then one step = SGD's first step
