"""The stepper of one run: an epoch of ``Algorithm.training_step`` over the run's shuffled batches."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..algorithms import seed_for
from .run import EpochTally, Run


class SingleStepper:
    def __init__(self, run: Run):
        self.run = run

    def train_epoch(self) -> list[EpochTally]:
        run = self.run
        cfg, alg, device = run.cfg, run.algorithm, run.device
        epoch = run.progress.epoch + 1
        torch.manual_seed(seed_for(cfg.seed, "epoch", epoch))
        order = torch.Generator().manual_seed(seed_for(cfg.seed, "data", epoch))
        alg.begin_epoch(epoch)
        alg.train()
        train = run.train_split
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.long, device=device)
        kinds = torch.zeros(3, dtype=torch.long, device=device)  # regular, re-balance m0, re-balance m1
        steps = 0
        batches = train.batches(cfg.batch_size, generator=order)
        total = -(-len(train) // cfg.batch_size)
        # disable=None: a bar on a terminal, none in a log file (cluster jobs); epoch lines are printed anyway.
        bar = tqdm(
            batches,
            total=total,
            desc=f"epoch {epoch}",
            leave=False,
            unit="step",
            disable=None if cfg.progress else True,
        )
        for inputs, y in bar:
            result = alg.training_step(inputs, y, run.optimizer)
            loss_sum += result.loss.double() * y.shape[0]
            correct += (result.prediction.argmax(1) == y).sum()
            kind = result.fusion.code  # an int (host-decided step) or a device tensor (no sync either way)
            if isinstance(kind, int):
                kinds[kind + 1] += 1
            else:
                kinds += F.one_hot(kind + 1, 3)
            steps += 1
        return [EpochTally(float(loss_sum), int(correct), len(train), steps, kinds.tolist())]
