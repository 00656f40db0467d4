"""Where and how a run computes: the device, and deterministic kernels."""

from __future__ import annotations

import os

import torch


def pick_device(name: str) -> torch.device:
    """``auto``: the first CUDA device when there is one, else the CPU; otherwise the named device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    return device


def make_deterministic() -> None:
    """Deterministic kernels (exact on CPU; on CUDA, best effort: ops without a deterministic kernel warn)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
