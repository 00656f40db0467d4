"""Histograms of the two diagnostics over finished runs, in the style of the paper's Figs. 2, 4, A.2 and A.7.

For each group of runs (a setting and its modality pair, e.g. ``cmnist`` with ``mono,gray``) one figure with two
panels: the imbalance in utilization d_util (Def. 2.1, §3.2) and in learning speed d_speed (Def. 4.1, §4.1) of each
run, one colour per algorithm (:func:`repro.report.plotting.histogram_panel`). Files: ``<group>.png`` and
``<group>.pdf`` plus ``figures.md``, an index with the numbers behind each figure. Built from the results directory
alone (records only), written atomically, deterministic in content.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from ..rundir import atomic_write_text, is_number, load_records
from .plotting import METRICS, algorithm_order, histogram_panel, plt, save_figure


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


def plot_group(group: str, by_algorithm: dict[str, dict[str, list[float]]]):
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), constrained_layout=True)
    for ax, metric in zip(axes, METRICS, strict=True):
        histogram_panel(ax, by_algorithm, metric)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{group}: imbalance in utilization and in learning speed (dotted: means)")
    return fig


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
        for alg in algorithm_order(by_algorithm):
            v = by_algorithm[alg]
            cells = [f"{statistics.fmean(v[m]):+.3f} ({min(v[m]):+.3f}, {max(v[m]):+.3f})" for m in METRICS]
            link = f"[{group}.png]({group}.png)"
            lines.append(f"| {group} | {alg} | {len(v['d_util'])} | {cells[0]} | {cells[1]} | {link} |")
    return "\n".join(lines) + "\n"


def write_histograms(results_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """One PNG and one PDF per group of finished two-branch runs under ``results_dir``, plus ``figures.md``; a
    ValueError when there is none."""
    groups = collect(load_records(results_dir))
    if not groups:
        raise ValueError(f"{results_dir}: no finished two-branch run records (record.json with test.d_util)")
    out_dir = Path(out_dir)
    written = []
    for group, by_algorithm in groups.items():
        written += save_figure(plot_group(group, by_algorithm), out_dir / group)
    atomic_write_text(out_dir / "figures.md", _index(groups))
    return written + [out_dir / "figures.md"]
