"""Histograms of the two diagnostics over finished runs, in the style of the paper's Figs. 2, 4, A.2 and A.7.

For each group of runs (a setting and its modality pair, e.g. ``cmnist`` with ``mono,gray``) one figure with two
panels: the imbalance in utilization d_util (Def. 2.1, §3.2) and in learning speed d_speed (Def. 4.1, §4.1) of each
run, one colour per algorithm; a Gaussian kernel density estimate over each histogram (scipy's, when an algorithm
has at least three runs with distinct values), the zero line dashed and each algorithm's mean dotted. Files:
``<group>.png`` and ``<group>.pdf`` plus ``figures.md``, an index with the numbers behind each figure. Built from
the results directory alone (records only), written atomically, deterministic in content.
"""

from __future__ import annotations

import io
import statistics
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on clusters and in containers
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.stats import gaussian_kde  # noqa: E402

from repro.paper import ALGORITHMS  # noqa: E402
from repro.rundir import atomic_write, atomic_write_text, is_number, load_records  # noqa: E402  # noqa: E402

METRICS = {"d_util": "d_util (Def. 2.1)", "d_speed": "d_speed (Def. 4.1)"}
COLOURS = {"vanilla": "tab:blue", "rubi": "tab:orange", "random": "tab:green", "guided": "tab:red"}


def group_key(record: dict) -> str:
    """``<setting>`` for the distinct modalities a setting defaults to, ``<setting>-<m0>+<m1>`` otherwise."""
    modalities = record.get("modalities") or record.get("config", {}).get("modalities", "")
    names = list(modalities) if isinstance(modalities, list) else str(modalities).split(",")
    setting = str(record.get("setting") or record.get("dataset"))
    return setting if len(set(names)) == len(names) else f"{setting}-{'+'.join(names)}"


def collect(records: Iterable[dict]) -> dict[str, dict[str, dict[str, list[float]]]]:
    """``{group: {algorithm: {metric: values}}}`` over the two-branch runs that report the diagnostics."""
    out: dict = defaultdict(lambda: defaultdict(lambda: {m: [] for m in METRICS}))
    for r in records:
        test = r.get("test") or {}
        if not all(is_number(test.get(m)) for m in METRICS):
            continue  # uni-modal runs have no d_util
        for m in METRICS:
            out[group_key(r)][str(r.get("algorithm"))][m].append(float(test[m]))
    return {g: dict(v) for g, v in sorted(out.items())}


def _order(algorithms: Iterable[str]) -> list[str]:
    known = [a for a in ALGORITHMS if a in algorithms]
    return known + sorted(a for a in algorithms if a not in ALGORITHMS)


def _panel(
    ax, by_algorithm: dict[str, dict[str, list[float]]], metric: str, span: tuple[float, float] | None = None
) -> None:
    """One histogram panel; ``span`` (lo, hi) fixes the binned range, so that panels can share an x-axis."""
    values = np.concatenate([np.asarray(v[metric]) for v in by_algorithm.values()])
    lo, hi = span or (float(values.min()), float(values.max()))
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    pad = 0.05 * (hi - lo or 1.0)
    bins = np.linspace(lo - pad, hi + pad, 21)
    grid = np.linspace(bins[0], bins[-1], 200)
    for alg in _order(by_algorithm):
        x = np.asarray(by_algorithm[alg][metric])
        colour = COLOURS.get(alg, "tab:gray")
        ax.hist(x, bins=bins, density=True, alpha=0.35, color=colour, label=f"{alg} (n={len(x)}, E={x.mean():+.2f})")
        if len(np.unique(x)) >= 3:
            ax.plot(grid, gaussian_kde(x)(grid), color=colour)
        ax.axvline(float(x.mean()), color=colour, linestyle=":", linewidth=1.5)
    ax.axvline(0.0, color="black", linestyle="--", linewidth=1)
    ax.set_xlabel(METRICS[metric])
    ax.set_ylabel("density")


def plot_group(group: str, by_algorithm: dict[str, dict[str, list[float]]]):
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), constrained_layout=True)
    for ax, metric in zip(axes, METRICS, strict=True):
        _panel(ax, by_algorithm, metric)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{group}: imbalance in utilization and in learning speed (dotted: means)")
    return fig


def _save(fig, path: Path, fmt: str) -> None:
    buffer = io.BytesIO()
    # Fixed metadata so the same records give the same bytes.
    metadata = {"Software": None} if fmt == "png" else {"CreationDate": None, "Producer": None, "Creator": None}
    fig.savefig(buffer, format=fmt, dpi=150, metadata=metadata)
    atomic_write(path, lambda f: f.write(buffer.getvalue()))


def _index(groups: dict) -> str:
    lines = [
        "# Diagnostics of the finished runs",
        "",
        "Mean (min, max) over runs of d_util (Def. 2.1) and d_speed (Def. 4.1), per group and algorithm.",
        "",
        "| group | algorithm | runs | d_util | d_speed | figure |",
        "|---|---|---:|---|---|---|",
    ]
    for group, by_algorithm in groups.items():
        for alg in _order(by_algorithm):
            v = by_algorithm[alg]
            cells = [f"{statistics.fmean(v[m]):+.3f} ({min(v[m]):+.3f}, {max(v[m]):+.3f})" for m in METRICS]
            link = f"[{group}.png]({group}.png)"
            lines.append(f"| {group} | {alg} | {len(v['d_util'])} | {cells[0]} | {cells[1]} | {link} |")
    return "\n".join(lines) + "\n"


def write_figures(results_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """A sweeps' results directory (with ``studies/*.json`` manifests, see ``repro sweep``): each study's figures
    (:mod:`repro.report.studies`) and ``conjectures.md`` (:mod:`repro.report.conjectures`). Any other results
    directory: one PNG and one PDF per group of finished two-branch runs, plus ``figures.md``."""
    from repro.report.studies import manifests, write_study_figures

    if manifests(results_dir):
        from repro.report.conjectures import conjecture_report

        written = write_study_figures(results_dir, out_dir)
        report = conjecture_report(results_dir)
        if report is not None:
            atomic_write_text(Path(out_dir) / "conjectures.md", report)
            written.append(Path(out_dir) / "conjectures.md")
        return written
    groups = collect(load_records(results_dir))
    if not groups:
        raise ValueError(f"{results_dir}: no finished two-branch run records (record.json with test.d_util)")
    out_dir = Path(out_dir)
    written = []
    for group, by_algorithm in groups.items():
        fig = plot_group(group, by_algorithm)
        for fmt in ("png", "pdf"):
            _save(fig, out_dir / f"{group}.{fmt}", fmt)
            written.append(out_dir / f"{group}.{fmt}")
        plt.close(fig)
    atomic_write_text(out_dir / "figures.md", _index(groups))
    return written + [out_dir / "figures.md"]
