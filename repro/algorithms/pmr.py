"""PMR: prototypical modal rebalance (Fan, Xu, Wei, Xu, Wang and Wang, "PMR: Prototypical modal rebalance for
multimodal learning", CVPR 2023, §3).

Prototypes: c^k_j, the mean pooled feature of class j in branch k, computed at the start of every epoch, in
evaluation mode, from the first ``pmr_proto_fraction`` of a seeded shuffle of the training batches (the authors' code
uses a tenth), and updated as c ← (1 − m) c_new + m c_old with m = ``pmr_momentum`` (0.2, the authors' code). From
them, each branch has a non-parametric classifier: p^k(j | x) = softmax_j(−‖z^k(x) − c^k_j‖) (Euclidean distance).

Per step, with s_k = Σ_i p^k(y_i | x_i) over the batch and the imbalance ratio ρ_k = s_k / s_{1−k}:

    L = L_CE + Σ_k β_k PCE_k − Σ_k γ_k H(p^k),    β_k = α max(1/ρ_k − 1, 0),   γ_k = μ max(ρ_k − 1, 0),

where L_CE is §2's loss, PCE_k = CE(y, −‖z^k − c^k‖) the prototypical cross-entropy, which pulls the slow modality's
(ρ_k < 1) features to their class prototypes and so accelerates it, and H(p^k) the entropy of the dominant modality's
(ρ_k > 1) prototypical distribution, whose maximisation holds it back from premature convergence in the first
``pmr_entropy_epochs`` epochs only (the "early training stage"). The coefficients are the ratio-weighted form we
read in the paper; the authors' code instead switches a constant α on the slower modality. α = 1 is the code's
default; μ = 0.1 and the 10 early epochs are ours (no value recovered for these datasets). β and γ are computed
without gradient, on the device (no host synchronisation).
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import RunConfig
from ..models.fusion import REGULAR
from ..models.twobranch import ModelOutput
from .base import Algorithm, seed_for


def prototype_logits(features: Tensor, prototypes: Tensor) -> Tensor:
    """(B, classes): −‖z − c_j‖ for each sample and class."""
    return -torch.cdist(features.float(), prototypes.float())


@torch.no_grad()
def pmr_coefficients(logits: tuple[Tensor, Tensor], y: Tensor, alpha: float, mu: float) -> tuple[Tensor, Tensor]:
    """(β, γ), each (2,): the prototypical cross-entropy and entropy weights of both branches from their prototype
    logits (see the module's docstring)."""
    scores = torch.stack([F.softmax(z, 1).gather(1, y[:, None]).sum() for z in logits])
    ratios = scores / scores.flip(0)
    return alpha * (1 / ratios - 1).clamp(min=0), mu * (ratios - 1).clamp(min=0)


def entropy(logits: Tensor) -> Tensor:
    """Mean over the batch of H(softmax(logits))."""
    return -(F.softmax(logits, 1) * F.log_softmax(logits, 1)).sum(1).mean()


@torch.no_grad()
def class_means(model: nn.Module, batches, num_classes: int) -> tuple[Tensor, Tensor]:
    """Each branch's mean pooled feature per class over ``batches`` (evaluation mode, regular fusion); a class
    without a sample gets NaN."""
    was_training = model.training
    model.eval()
    sums: list[Tensor | None] = [None, None]
    counts = None
    try:
        for inputs, y in batches:
            out = model(*inputs, fusion=REGULAR)
            for k, z in enumerate(out.features):
                z = z.float()
                if sums[k] is None:
                    sums[k] = torch.zeros(num_classes, z.shape[1], device=z.device)
                sums[k].index_add_(0, y, z)
            ones = torch.bincount(y, minlength=num_classes).float()
            counts = ones if counts is None else counts + ones
    finally:
        model.train(was_training)
    return tuple(s / counts[:, None] for s in sums)


class PMR(Algorithm):
    def __init__(self, model: nn.Module, cfg: RunConfig):
        super().__init__(model, cfg)
        dims = (model.branch0.feature_dim, model.branch1.feature_dim)
        classes = model.num_classes
        self.register_buffer("prototypes0", torch.full((classes, dims[0]), float("nan")))
        self.register_buffer("prototypes1", torch.full((classes, dims[1]), float("nan")))
        self._beta_sum: Tensor | None = None
        self._gamma_sum: Tensor | None = None
        self._steps = 0

    def begin_epoch(self, epoch: int) -> None:
        super().begin_epoch(epoch)
        self._beta_sum = self._gamma_sum = None
        self._steps = 0
        data = self.data
        if data is None:
            raise RuntimeError("PMR computes its prototypes from the training split: set algorithm.data first")
        order = torch.Generator().manual_seed(seed_for(self.cfg.seed, "pmr", epoch))
        total = -(-len(data.train) // data.eval_batch_size)
        take = max(1, math.ceil(self.cfg.pmr_proto_fraction * total))
        batches = itertools.islice(data.train.batches(data.eval_batch_size, generator=order), take)
        new = class_means(self.model, batches, self.model.num_classes)
        m = self.cfg.pmr_momentum
        for old, fresh in zip((self.prototypes0, self.prototypes1), new, strict=True):
            # A class never seen keeps its old prototype; the first estimate has no old one to blend with.
            blended = torch.where(torch.isnan(old), fresh, (1 - m) * fresh + m * old)
            old.copy_(torch.where(torch.isnan(fresh), old, blended))

    def loss(self, out: ModelOutput, y: Tensor) -> Tensor:
        base = super().loss(out, y)
        logits = (
            prototype_logits(out.features[0], self.prototypes0.nan_to_num()),
            prototype_logits(out.features[1], self.prototypes1.nan_to_num()),
        )
        beta, gamma = pmr_coefficients(logits, y, self.cfg.pmr_alpha, self.cfg.pmr_mu)
        loss = base + sum(beta[k] * F.cross_entropy(z, y) for k, z in enumerate(logits))
        if self.epoch <= self.cfg.pmr_entropy_epochs:
            loss = loss - sum(gamma[k] * entropy(z) for k, z in enumerate(logits))
        self._tally(beta, gamma)
        return loss

    def _tally(self, beta: Tensor, gamma: Tensor) -> None:
        if self._beta_sum is None:
            self._beta_sum, self._gamma_sum = beta.clone(), gamma.clone()
        else:
            self._beta_sum += beta
            self._gamma_sum += gamma
        self._steps += 1

    def epoch_stats(self) -> dict[str, float]:
        if not self._steps:
            return {}
        beta, gamma = (self._beta_sum / self._steps).tolist(), (self._gamma_sum / self._steps).tolist()
        return {"beta_m0": beta[0], "beta_m1": beta[1], "gamma_m0": gamma[0], "gamma_m1": gamma[1]}
