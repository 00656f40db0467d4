"""RUBi (Cadene et al., 2019) adapted to a two-branch classifier (§5.4 baseline).

RUBi's question-only branch becomes a *bias branch*: the pooled features of one modality's branch (the biased
modality, ``rubi_bias_modality``; default per dataset in ``repro.config``, m0 = the colour for CMNIST), with
their gradient blocked, go through an MLP to class scores q. During training both branches' logits are
multiplied by sigma(q), so samples the bias alone already explains contribute less, and the loss is

    L = CE(y, y_hat_0 * sigma(q)) + CE(y, y_hat_1 * sigma(q)) + CE(y, c2(q))

with c2 a linear head trained on the bias branch alone. Evaluation uses the model's unmasked logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import RunConfig
from ..models.twobranch import ModelOutput
from .base import Algorithm


class RUBi(Algorithm):
    def __init__(self, model: nn.Module, cfg: RunConfig):
        super().__init__(model, cfg)
        self.bias_modality = cfg.rubi_bias_modality
        branch = model.branch0 if self.bias_modality == 0 else model.branch1
        dim, classes = branch.feature_dim, model.num_classes
        self.bias_mlp = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(inplace=True), nn.Linear(dim, classes))
        self.bias_classifier = nn.Linear(classes, classes)

    def loss(self, out: ModelOutput, y: Tensor) -> Tensor:
        q = self.bias_mlp(out.features[self.bias_modality].detach())
        mask = torch.sigmoid(q)
        masked = sum(F.cross_entropy(logits * mask, y) for logits in out.logits)
        return masked + F.cross_entropy(self.bias_classifier(q), y)
