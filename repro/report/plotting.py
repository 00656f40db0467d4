"""What every figure of the reports shares: the Agg back end, the two diagnostics, each algorithm's colour and place
(from :data:`repro.registry.ALGORITHMS`), the histogram panel, and the save that writes a figure as PNG and PDF with
the same bytes for the same records. The figure modules import pyplot from here (``from .plotting import plt``), so
the back end is chosen before any figure is made; the text reports never import this module.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on clusters and in containers
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.stats import gaussian_kde  # noqa: E402

from ..registry import ALGORITHMS  # noqa: E402
from ..rundir import atomic_write  # noqa: E402

__all__ = ["METRICS", "algorithm_order", "colour", "histogram_panel", "plt", "save_figure"]

#: The two diagnostics: record key -> axis label.
METRICS = {"d_util": "d_util (Def. 2.1)", "d_speed": "d_speed (Def. 4.1)"}
OTHER_COLOUR = "tab:gray"  # an algorithm the registry does not know (an old record)
#: Format -> the metadata that would otherwise carry a date or a version, so the same records give the same bytes.
FORMATS = {"png": {"Software": None}, "pdf": {"CreationDate": None, "Producer": None, "Creator": None}}
DPI = 150


def colour(algorithm: str) -> str:
    spec = ALGORITHMS.get(algorithm)
    return spec.colour if spec is not None else OTHER_COLOUR


def algorithm_order(algorithms: Iterable[str]) -> list[str]:
    """The registry's algorithms in its order, then any others sorted by name."""
    present = set(algorithms)
    return [a for a in ALGORITHMS if a in present] + sorted(present - set(ALGORITHMS))


def histogram_panel(
    ax, by_algorithm: dict[str, dict[str, list[float]]], metric: str, span: tuple[float, float] | None = None
) -> None:
    """One panel of ``metric``'s values, one colour per algorithm: histogram, Gaussian kernel density estimate (when
    at least three distinct values), mean dotted, zero dashed. ``span`` (lo, hi) fixes the binned range, so that
    panels can share an x-axis."""
    values = np.concatenate([np.asarray(v[metric]) for v in by_algorithm.values()])
    lo, hi = span or (float(values.min()), float(values.max()))
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    pad = 0.05 * (hi - lo or 1.0)
    bins = np.linspace(lo - pad, hi + pad, 21)
    grid = np.linspace(bins[0], bins[-1], 200)
    for alg in algorithm_order(by_algorithm):
        x = np.asarray(by_algorithm[alg][metric])
        c = colour(alg)
        ax.hist(x, bins=bins, density=True, alpha=0.35, color=c, label=f"{alg} (n={len(x)}, E={x.mean():+.2f})")
        if len(np.unique(x)) >= 3:
            ax.plot(grid, gaussian_kde(x)(grid), color=c)
        ax.axvline(float(x.mean()), color=c, linestyle=":", linewidth=1.5)
    ax.axvline(0.0, color="black", linestyle="--", linewidth=1)
    ax.set_xlabel(METRICS[metric])
    ax.set_ylabel("density")


def save_figure(fig, stem: str | Path) -> list[Path]:
    """Write ``fig`` to ``<stem>.png`` and ``<stem>.pdf`` (atomically, folders created), close it, return the paths."""
    paths = []
    try:
        for fmt, metadata in FORMATS.items():
            buffer = io.BytesIO()
            fig.savefig(buffer, format=fmt, dpi=DPI, metadata=metadata)
            path = Path(f"{stem}.{fmt}")
            atomic_write(path, lambda f, b=buffer: f.write(b.getvalue()))
            paths.append(path)
    finally:
        plt.close(fig)
    return paths
