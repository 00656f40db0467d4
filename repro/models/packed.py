"""K Colored-and-gray MNIST networks evaluated as one (issue 7: many small models per process).

Each parameter and buffer of the K models is stacked along a new leading dimension (K, ...) under the name it has in
one :func:`repro.models.cnn.cmnist_net`, so packing and unpacking are ``torch.stack`` and indexing. The forward pass
runs the K networks as one network of K groups: the convolutions are grouped convolutions over K x C channels
(group k = model k), batch norm over K x C channels is exactly K independent batch norms, and the linear layers
(MMTM squeeze/excitation, heads) are batched matrix products. Every model reads its own batch: sample b of model k
sits in row b, channel group k. Activations stay channels-last.

Why not ``torch.func.vmap`` over ``functional_call``: it computes the same thing, but on CPU its batching rules
shuffle memory layouts (3x slower than K separate models here); the grouped form is faster than K separate models.

Fusion per model: ``code`` (K,) long, -1 regular, k re-balance m_k (A.2), as :class:`repro.models.DeviceFusion`:
gates are replaced by their running means with ``torch.where`` and the running means are updated only for the
models taking a regular step, so the K models may take different kinds of step in the same pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .cnn import WIDTHS
from .twobranch import TwoBranchNet

FUSE_AFTER = (1, 2, 3)  # as cmnist_net
BN_MOMENTUM, BN_EPS = 0.1, 1e-5


def stack_states(models: list[nn.Module]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Parameters (fresh leaves requiring grad) and buffers of K identical-architecture models, stacked (K, ...)."""
    params = {n: _stack([dict(m.named_parameters())[n].detach() for m in models]).requires_grad_()
              for n, _ in models[0].named_parameters()}
    buffers = {n: torch.stack([dict(m.named_buffers())[n] for m in models]) for n, _ in models[0].named_buffers()}
    return params, buffers


def _stack(tensors: list[Tensor]) -> Tensor:
    """torch.stack; 4-D (convolution) weights laid out so that the grouped weight (K*C_out, C_in, kh, kw) is a
    channels-last view (a channels-first weight would turn a channels-last activation back to channels-first)."""
    if tensors[0].dim() != 4:
        return torch.stack(tensors)
    return torch.stack([t.permute(0, 2, 3, 1) for t in tensors]).permute(0, 1, 4, 2, 3)


def unstack_state(params: dict[str, Tensor], buffers: dict[str, Tensor], k: int) -> dict[str, Tensor]:
    """Model k's state dict (copies, so saving one does not write the whole stack)."""
    return {n: t[k].detach().clone() for n, t in {**params, **buffers}.items()}


def _linear(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """(B, K, in) x (K, out, in) + (K, out) -> (B, K, out): K independent linear layers."""
    return torch.einsum("bki,koi->bko", x, weight) + bias


class PackedCMNISTNet:
    """Functional forward of K stacked CMNIST two-branch networks (no state of its own)."""

    def __init__(self, template: TwoBranchNet):
        if not isinstance(template, TwoBranchNet) or sorted(map(int, template.fusion)) != list(FUSE_AFTER):
            raise ValueError("packing supports the two-branch CMNIST network (repro.models.cnn.cmnist_net)")
        self.n_stages = len(WIDTHS)
        self.pooled = [len(s) == 4 for s in template.branch0.stages]

    def _stage(self, p: dict, b: dict, name: str, x: Tensor, k: int, training: bool, pool: bool) -> Tensor:
        w = p[f"{name}.0.weight"]
        # One input channel per group (the gray branch's first convolution) comes back channels-first: undo that.
        x = F.conv2d(x, w.flatten(0, 1), padding=1, groups=k).contiguous(memory_format=torch.channels_last)
        bn = f"{name}.1"
        x = F.batch_norm(x, b[f"{bn}.running_mean"].view(-1), b[f"{bn}.running_var"].view(-1),
                         p[f"{bn}.weight"].reshape(-1), p[f"{bn}.bias"].reshape(-1), training, BN_MOMENTUM, BN_EPS)
        if training:
            b[f"{bn}.num_batches_tracked"].add_(1)
        x = F.relu(x, inplace=True)  # as the model's ReLU(inplace=True)
        return F.max_pool2d(x, 2) if pool else x

    def _mmtm(self, p: dict, b: dict, name: str, h0: Tensor, h1: Tensor, code: Tensor, training: bool
              ) -> tuple[Tensor, Tensor]:
        batch, k = h0.shape[0], code.shape[0]
        s0, s1 = h0.mean((2, 3)).view(batch, k, -1), h1.mean((2, 3)).view(batch, k, -1)
        z = F.relu(_linear(torch.cat([s0, s1], 2), p[f"{name}.squeeze.weight"], p[f"{name}.squeeze.bias"]))
        gate0 = torch.sigmoid(_linear(z, p[f"{name}.excite_a.weight"], p[f"{name}.excite_a.bias"]))
        gate1 = torch.sigmoid(_linear(z, p[f"{name}.excite_b.weight"], p[f"{name}.excite_b.bias"]))
        mean0, mean1, count = b[f"{name}.gate_mean_a"], b[f"{name}.gate_mean_b"], b[f"{name}.gate_count"]
        if training:  # as MMTM._track_gates_where, per model
            with torch.no_grad():
                regular = code < 0
                count += regular.long() * batch
                weight = torch.where(regular, batch / count.clamp(min=1).float(), 0.0).unsqueeze(1)
                mean0 += (gate0.detach().float().mean(0) - mean0) * weight
                mean1 += (gate1.detach().float().mean(0) - mean1) * weight
        gate0 = torch.where((code == 0).unsqueeze(1), mean0.to(gate0.dtype), gate0)
        gate1 = torch.where((code == 1).unsqueeze(1), mean1.to(gate1.dtype), gate1)
        return h0 * gate0.reshape(batch, -1, 1, 1), h1 * gate1.reshape(batch, -1, 1, 1)

    def __call__(self, p: dict[str, Tensor], b: dict[str, Tensor], x0: Tensor, x1: Tensor, code: Tensor,
                 training: bool) -> tuple[Tensor, Tensor]:
        """x0, x1: (B, K*C0, H, W), (B, K*C1, H, W) channels-last; returns the logits of both branches,
        (B, K, classes) each."""
        k = code.shape[0]
        h0, h1 = x0, x1
        for i in range(self.n_stages):
            h0 = self._stage(p, b, f"branch0.stages.{i}", h0, k, training, self.pooled[i])
            h1 = self._stage(p, b, f"branch1.stages.{i}", h1, k, training, self.pooled[i])
            if i in FUSE_AFTER:
                h0, h1 = self._mmtm(p, b, f"fusion.{i}", h0, h1, code, training)
        batch = h0.shape[0]
        f0, f1 = h0.mean((2, 3)).view(batch, k, -1), h1.mean((2, 3)).view(batch, k, -1)
        return (_linear(f0, p["branch0.head.weight"], p["branch0.head.bias"]),
                _linear(f1, p["branch1.head.weight"], p["branch1.head.bias"]))


def pack_inputs(x: Tensor) -> Tensor:
    """(K, B, C, H, W) -> (B, K*C, H, W) channels-last: model k's batch in channel group k."""
    k, batch, c, h, w = x.shape
    return x.permute(1, 3, 4, 0, 2).reshape(batch, h, w, k * c).permute(0, 3, 1, 2)
