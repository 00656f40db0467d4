"""K Colored-and-gray MNIST networks evaluated as one (many small models per process, :mod:`repro.engine.packed`).

Each parameter and buffer of the K models is stacked along a new leading dimension (K, ...) under the name it has in
one :func:`repro.models.cnn.cmnist_net`, so packing and unpacking are ``torch.stack`` and indexing. The linear layers
(MMTM squeeze/excitation, heads) run as batched matrix products over the K models; the convolution stages run either
as one network of K groups (grouped convolutions over K x C channels, group k = model k, and batch norm over K x C
channels, which is exactly K independent batch norms) or model by model, whichever is faster on the device (see
:class:`PackedCMNISTNet`). Every model reads its own batch. Activations stay channels-last.

Why not ``torch.func.vmap`` over ``functional_call``: it computes the same thing, but on CPU its batching rules
shuffle memory layouts (3x slower than K separate models here).

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
CONVOLUTION_MODES = ("auto", "grouped", "loop")


def stack_states(models: list[nn.Module]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Parameters (fresh leaves requiring grad) and buffers of K identical-architecture models, stacked (K, ...)."""
    params = {
        n: _stack([dict(m.named_parameters())[n].detach() for m in models]).requires_grad_()
        for n, _ in models[0].named_parameters()
    }
    buffers = {n: torch.stack([dict(m.named_buffers())[n] for m in models]) for n, _ in models[0].named_buffers()}
    return params, buffers


def _stack(tensors: list[Tensor]) -> Tensor:
    """torch.stack; 4-D (convolution) weights laid out so that the grouped weight (K*C_out, C_in, kh, kw) is a
    channels-last view (a channels-first weight would turn a channels-last activation back to channels-first)."""
    if tensors[0].dim() != 4:
        return torch.stack(tensors)
    return torch.stack([t.permute(0, 2, 3, 1) for t in tensors]).permute(0, 1, 4, 2, 3)


def _linear(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """(B, K, in) x (K, out, in) + (K, out) -> (B, K, out): K independent linear layers."""
    return torch.einsum("bki,koi->bko", x, weight) + bias


class PackedCMNISTNet:
    """Functional forward of K stacked CMNIST two-branch networks (no state of its own).

    ``convolutions``: how the K models' convolution stages run (the MMTMs, heads, loss and update are batched either
    way). ``"grouped"``: one grouped convolution, batch norm, ReLU and pooling over K x C channels per stage: few
    kernels, for a GPU, where launches dominate. ``"loop"``: each model's stage on its own (B, C, H, W) tensor, one
    kernel per model: on a CPU, grouped oneDNN convolutions and K-times-wider activations are slower than K plain
    stages (docs/performance.md). ``"auto"``: grouped on CUDA, loop
    elsewhere.
    """

    def __init__(self, template: TwoBranchNet, convolutions: str = "auto"):
        if not isinstance(template, TwoBranchNet) or sorted(map(int, template.fusion)) != list(FUSE_AFTER):
            raise ValueError("packing supports the two-branch CMNIST network (repro.models.cnn.cmnist_net)")
        if convolutions not in CONVOLUTION_MODES:
            raise ValueError(f"convolutions must be one of {', '.join(CONVOLUTION_MODES)}, not {convolutions!r}")
        self.convolutions = convolutions
        self.n_stages = len(WIDTHS)
        self.pooled = [len(s) == 4 for s in template.branch0.stages]

    def grouped(self, device: torch.device) -> bool:
        return self.convolutions == "grouped" or (self.convolutions == "auto" and device.type == "cuda")

    # --- the convolution stages, two ways (the same arithmetic) ------------------------------------------------
    def _stage_grouped(self, p: dict, b: dict, name: str, x: Tensor, k: int, training: bool, pool: bool) -> Tensor:
        """x: (B, K*C, H, W) channels-last, model k in channel group k."""
        w = p[f"{name}.0.weight"]
        # One input channel per group (the gray branch's first convolution) comes back channels-first: undo that.
        x = F.conv2d(x, w.flatten(0, 1), padding=1, groups=k).contiguous(memory_format=torch.channels_last)
        bn = f"{name}.1"
        x = F.batch_norm(
            x,
            b[f"{bn}.running_mean"].view(-1),
            b[f"{bn}.running_var"].view(-1),
            p[f"{bn}.weight"].reshape(-1),
            p[f"{bn}.bias"].reshape(-1),
            training,
            BN_MOMENTUM,
            BN_EPS,
        )
        if training:
            b[f"{bn}.num_batches_tracked"].add_(1)
        return _relu_pool(x, pool)

    def _stage_loop(self, p: dict, b: dict, name: str, xs: list[Tensor], training: bool, pool: bool) -> list[Tensor]:
        """xs: K tensors (B, C, H, W); model k's parameters are views of the stacks (one unbind each, so autograd
        stacks their gradients in one node), its running statistics are updated in place through views."""
        bn = f"{name}.1"
        weights, gammas, betas = (p[n].unbind(0) for n in (f"{name}.0.weight", f"{bn}.weight", f"{bn}.bias"))
        means, variances = b[f"{bn}.running_mean"], b[f"{bn}.running_var"]
        out = []
        for j, x in enumerate(xs):
            x = F.conv2d(x, weights[j], padding=1)
            x = F.batch_norm(x, means[j], variances[j], gammas[j], betas[j], training, BN_MOMENTUM, BN_EPS)
            out.append(_relu_pool(x, pool))
        if training:
            b[f"{bn}.num_batches_tracked"].add_(1)
        return out

    # --- fusion and heads, batched over the K models -------------------------------------------------------------
    def _gates(
        self, p: dict, b: dict, name: str, s0: Tensor, s1: Tensor, code: Tensor, training: bool
    ) -> tuple[Tensor, Tensor]:
        """MMTM's gates (B, K, C) from the squeezed features s0, s1 (B, K, C), as MMTM and DeviceFusion."""
        batch = s0.shape[0]
        z = F.relu(_linear(torch.cat([s0, s1], 2), p[f"{name}.squeeze.weight"], p[f"{name}.squeeze.bias"]))
        gate0 = torch.sigmoid(_linear(z, p[f"{name}.excite_a.weight"], p[f"{name}.excite_a.bias"]))
        gate1 = torch.sigmoid(_linear(z, p[f"{name}.excite_b.weight"], p[f"{name}.excite_b.bias"]))
        mean0, mean1, count = b[f"{name}.gate_mean_a"], b[f"{name}.gate_mean_b"], b[f"{name}.gate_count"]
        if training:  # as MMTM._track_gates(..., where=...), per model
            with torch.no_grad():
                regular = code < 0
                count += regular.long() * batch
                weight = torch.where(regular, batch / count.clamp(min=1).float(), 0.0).unsqueeze(1)
                mean0 += (gate0.detach().float().mean(0) - mean0) * weight
                mean1 += (gate1.detach().float().mean(0) - mean1) * weight
        gate0 = torch.where((code == 0).unsqueeze(1), mean0.to(gate0.dtype), gate0)
        gate1 = torch.where((code == 1).unsqueeze(1), mean1.to(gate1.dtype), gate1)
        return gate0, gate1

    def __call__(
        self, p: dict[str, Tensor], b: dict[str, Tensor], x0: Tensor, x1: Tensor, code: Tensor, training: bool
    ) -> tuple[Tensor, Tensor]:
        """x0, x1: each model's batch, (K, B, C0, H, W) and (K, B, C1, H, W); returns the logits of both branches,
        (B, K, classes) each."""
        if self.grouped(x0.device):
            return self._forward_grouped(p, b, pack_inputs(x0), pack_inputs(x1), code, training)
        return self._forward_loop(p, b, x0, x1, code, training)

    def _forward_grouped(self, p, b, h0: Tensor, h1: Tensor, code: Tensor, training: bool):
        k = code.shape[0]
        for i in range(self.n_stages):
            h0 = self._stage_grouped(p, b, f"branch0.stages.{i}", h0, k, training, self.pooled[i])
            h1 = self._stage_grouped(p, b, f"branch1.stages.{i}", h1, k, training, self.pooled[i])
            if i in FUSE_AFTER:
                gate0, gate1 = self._gates(
                    p, b, f"fusion.{i}", _squeeze_grouped(h0, k), _squeeze_grouped(h1, k), code, training
                )
                h0, h1 = h0 * gate0.flatten(1)[:, :, None, None], h1 * gate1.flatten(1)[:, :, None, None]
        return self._heads(p, _squeeze_grouped(h0, k), _squeeze_grouped(h1, k))

    def _forward_loop(self, p, b, x0: Tensor, x1: Tensor, code: Tensor, training: bool):
        h0, h1 = ([xk.contiguous(memory_format=torch.channels_last) for xk in x.unbind(0)] for x in (x0, x1))
        for i in range(self.n_stages):
            h0 = self._stage_loop(p, b, f"branch0.stages.{i}", h0, training, self.pooled[i])
            h1 = self._stage_loop(p, b, f"branch1.stages.{i}", h1, training, self.pooled[i])
            if i in FUSE_AFTER:
                gate0, gate1 = self._gates(p, b, f"fusion.{i}", _squeeze_list(h0), _squeeze_list(h1), code, training)
                h0 = [h * g[:, :, None, None] for h, g in zip(h0, gate0.unbind(1), strict=True)]
                h1 = [h * g[:, :, None, None] for h, g in zip(h1, gate1.unbind(1), strict=True)]
        return self._heads(p, _squeeze_list(h0), _squeeze_list(h1))

    @staticmethod
    def _heads(p: dict, f0: Tensor, f1: Tensor) -> tuple[Tensor, Tensor]:
        return (
            _linear(f0, p["branch0.head.weight"], p["branch0.head.bias"]),
            _linear(f1, p["branch1.head.weight"], p["branch1.head.bias"]),
        )


def _squeeze_grouped(h: Tensor, k: int) -> Tensor:
    """(B, K*C, H, W) -> (B, K, C): each model's global average pool (MMTM's squeeze, the heads' input)."""
    return h.mean((2, 3)).view(h.shape[0], k, -1)


def _squeeze_list(hs: list[Tensor]) -> Tensor:
    """K tensors (B, C, H, W) -> (B, K, C)."""
    return torch.stack([h.mean((2, 3)) for h in hs], 1)


def _relu_pool(x: Tensor, pool: bool) -> Tensor:
    x = F.relu(x, inplace=True)  # as the model's ReLU(inplace=True)
    return F.max_pool2d(x, 2) if pool else x


def pack_inputs(x: Tensor) -> Tensor:
    """(K, B, C, H, W) -> (B, K*C, H, W) channels-last: model k's batch in channel group k."""
    k, batch, c, h, w = x.shape
    return x.permute(1, 3, 4, 0, 2).reshape(batch, h, w, k * c).permute(0, 3, 1, 2)
