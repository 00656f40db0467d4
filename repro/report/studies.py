"""Figures of the sweeps (``repro sweep``), built from the results directory alone: each study's manifest
(``<results>/studies/<study>-<budget>.json``, written by the launchers: members and swept values) and the records of
its runs (``<results>/runs/<name>/record.json``). One folder per manifest, one PNG + PDF per dataset, and
``index.md`` with the numbers behind every figure. The rows come from :mod:`repro.report.sweep_rows`, the shared
drawing from :mod:`repro.report.plotting`.

- ``lr-greedy`` (Fig. 2, Fig. A.2), ``guided-vs-vanilla`` (Fig. 4), ``random-vs-vanilla`` (Fig. A.7): histograms
  with density estimates of d_util and d_speed, one row per modality pair, one colour per algorithm, zero dashed,
  E[d_util] (and E[d_speed]) dotted.
- ``lr-vs-dutil`` (Fig. A.3): d_util against the learning rate (log axis).
- ``l1`` (Fig. 3, Fig. A.4): |d_util| and |d_speed| against log10 λ, against R(f), and R(f) against log10 λ.
- ``window`` (Fig. A.5), ``tolerance`` (Fig. A.6): d_util and test accuracy against Q, against α / |E[d_util]|.
- ``protocol`` (Table 1, docs/fidelity.md): test accuracy under both evaluation protocols per algorithm and
  gate-mean variant (:mod:`repro.report.protocol`).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from pathlib import Path

from ..rundir import atomic_write_text, is_number
from .plotting import METRICS, histogram_panel, plt, save_figure
from .protocol import protocol_figure, protocol_table
from .sweep_rows import by_dataset, load_rows, manifests, mean_sd, pair_name

HISTOGRAM_STUDIES = ("lr-greedy", "guided-vs-vanilla", "random-vs-vanilla", "beyond-paper")


# --- figures ----------------------------------------------------------------------------------------------------
def histogram_rows(study: str, dataset: str, rows: list[dict]):
    """Figs. 2, 4, A.2, A.7: one row of (d_util, d_speed) histograms per modality pair (distinct first)."""
    pairs = sorted({(r["pair"] != "distinct", r["modalities"]) for r in rows})
    fig, axes = plt.subplots(
        len(pairs), 2, figsize=(9, 3.2 * len(pairs)), constrained_layout=True, squeeze=False, sharex="col"
    )  # one x-axis per metric: distinct and identical pairs compare at a glance
    spans = {}
    for metric in METRICS:
        values = [r[metric] for r in rows if is_number(r[metric])]
        spans[metric] = (min(values), max(values)) if values else None
    for (_, modalities), ax_row in zip(pairs, axes, strict=True):
        for ax, metric in zip(ax_row, METRICS, strict=True):
            by_alg: dict = {}
            for r in rows:
                if r["modalities"] == modalities and is_number(r[metric]):
                    by_alg.setdefault(r["algorithm"], {metric: []})[metric].append(float(r[metric]))
            if by_alg:
                histogram_panel(ax, by_alg, metric, spans[metric])
            ax.set_title(f"{dataset}, {pair_name(modalities)}", fontsize=9)
        ax_row[0].legend(fontsize=7)
    fig.suptitle(f"{study}: d_util and d_speed (dashed: 0; dotted: E[·] per algorithm)")
    return fig


def lr_scatter(study: str, dataset: str, rows: list[dict]):
    """Fig. A.3: d_util against the learning rate, one marker per run."""
    fig, ax = plt.subplots(figsize=(5, 3.4), constrained_layout=True)
    for modalities in sorted({r["modalities"] for r in rows}):
        sel = [r for r in rows if r["modalities"] == modalities]
        ax.scatter([r["lr"] for r in sel], [r["d_util"] for r in sel], s=16, label=pair_name(modalities))
    ax.set_xscale("log")
    ax.axhline(0.0, color="black", linestyle="--", linewidth=1)
    ax.set_xlabel("learning rate")
    ax.set_ylabel(METRICS["d_util"])
    ax.legend(fontsize=8)
    ax.set_title(f"{study}: {dataset}")
    return fig


def _curve(ax, rows: list[dict], x: str, y, label: str, colour: str, log_x: bool = False) -> None:
    """Each run as a dot, the mean ± sd over runs with the same x as a line with error bars."""
    groups = defaultdict(list)
    for r in rows:
        value = y(r)
        if is_number(value) and is_number(r.get(x)):
            groups[r[x]].append(value)
    if not groups:
        return
    xs = sorted(groups)
    pos = [math.log10(v) for v in xs] if log_x else xs
    for p, v in zip(pos, xs, strict=True):
        ax.scatter([p] * len(groups[v]), groups[v], s=10, color=colour, alpha=0.5)
    means = [mean_sd(groups[v]) for v in xs]
    ax.errorbar(pos, [m for m, _ in means], yerr=[s for _, s in means], color=colour, label=label, capsize=3)


def l1_figure(study: str, dataset: str, rows: list[dict]):
    """Fig. 3 (|d_util|, |d_speed| against log λ and against R(f)) and Fig. A.4 (R(f) against log λ)."""
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.4), constrained_layout=True)
    _curve(axes[0], rows, "l1", lambda r: abs(r["d_util"]), "|d_util|", "tab:blue", log_x=True)
    _curve(axes[0], rows, "l1", lambda r: abs(r["d_speed"]), "|d_speed|", "tab:orange", log_x=True)
    axes[0].set_xlabel("log10 λ")
    axes[0].legend(fontsize=8)
    for ax, metric, colour in ((axes[1], "d_util", "tab:blue"), (axes[2], "d_speed", "tab:orange")):
        sel = [r for r in rows if is_number(r.get("r_f")) and is_number(r[metric])]
        ax.scatter([r["r_f"] for r in sel], [abs(r[metric]) for r in sel], s=16, color=colour)
        ax.set_xlabel("R(f): fraction of |w| < 1e-7")
        ax.set_ylabel(f"|{metric}|")
    _curve(axes[3], rows, "l1", lambda r: r.get("r_f"), "R(f)", "tab:green", log_x=True)
    axes[3].set_xlabel("log10 λ")
    axes[3].set_ylabel("R(f) (Fig. A.4)")
    fig.suptitle(f"{study}: {dataset} — L1 weight λ, sparsity R(f) and greediness (Fig. 3)")
    return fig


def sensitivity(study: str, dataset: str, rows: list[dict], x: str, xlabel: str):
    """Figs. A.5 / A.6: d_util and test accuracy against one hyper-parameter of guided training."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), constrained_layout=True)
    _curve(axes[0], rows, x, lambda r: r["d_util"], "d_util", "tab:red", log_x=True)
    axes[0].axhline(0.0, color="black", linestyle="--", linewidth=1)
    axes[0].set_ylabel(METRICS["d_util"])
    _curve(axes[1], rows, x, lambda r: r["acc"], "test accuracy", "tab:blue", log_x=True)
    axes[1].set_ylabel("test accuracy (%)")
    for ax in axes:
        ticks = sorted({r[x] for r in rows})
        ax.set_xticks([math.log10(t) for t in ticks], [f"{t:g}" for t in ticks])
        ax.set_xlabel(xlabel)
    fig.suptitle(f"{study}: {dataset}")
    return fig


def figure_for(study: str, dataset: str, rows: list[dict]):
    if study in HISTOGRAM_STUDIES:
        return histogram_rows(study, dataset, rows)
    if study == "lr-vs-dutil":
        return lr_scatter(study, dataset, rows)
    if study == "l1":
        return l1_figure(study, dataset, rows)
    if study == "window":
        return sensitivity(study, dataset, rows, "window", "re-balancing window Q")
    if study == "tolerance":
        return sensitivity(study, dataset, rows, "alpha_fraction", "α / |E[d_util]|")
    if study == "protocol":
        return protocol_figure(study, dataset, rows)
    raise ValueError(f"no figure for study {study!r}")


# --- the index ----------------------------------------------------------------------------------------------------
SWEPT = ("lr", "l1", "window", "alpha_fraction", "variant")


def _index(manifest: dict, rows: list[dict], left_out: Counter, figures: list[str]) -> str:
    """Mean ± sd of each diagnostic per dataset, pair, algorithm and swept value (lrs pooled)."""
    name = f"{manifest['study']} [{manifest['budget']}]"
    why = ", ".join(f"{n} {reason}" for reason, n in sorted(left_out.items()))
    lines = [
        f"# {name}: {manifest['figure']}",
        "",
        manifest["title"] + ".",
        "",
        f"{len(rows)} finished runs of {len(manifest['runs'])}" + (f" (left out: {why})" if why else "") + ".",
        "",
    ]
    swept = next((k for k in SWEPT if k in (rows[0] if rows else {}) and k != "lr"), None)
    keys = ["dataset", "modalities", "algorithm"] + ([swept] if swept else [])
    groups = defaultdict(list)
    for r in rows:
        groups[tuple(r[k] for k in keys)].append(r)
    header = keys + ["runs", "d_util", "d_speed", "test acc (%)"] + (["R(f)"] if swept == "l1" else [])
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key in sorted(groups, key=lambda k: tuple((0, v, "") if is_number(v) else (1, 0, str(v)) for v in k)):
        g = groups[key]
        cells = [str(v) if not isinstance(v, float) else f"{v:g}" for v in key]
        cells[1] = pair_name(cells[1])
        cells.append(str(len(g)))
        for m in ("d_util", "d_speed", "acc") + (("r_f",) if swept == "l1" else ()):
            values = [r[m] for r in g if is_number(r[m])]
            mean, sd = mean_sd(values) if values else (float("nan"), 0.0)
            cells.append(f"{mean:+.3f} ± {sd:.3f}" if m != "acc" else f"{mean:.2f} ± {sd:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    if manifest["study"] == "protocol":
        for dataset, dataset_rows in by_dataset(rows).items():
            lines += [""] + protocol_table(dataset, dataset_rows)
    lines += [""] + [f"![{f}]({f})" for f in figures]
    return "\n".join(lines) + "\n"


def write_study_figures(results_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """For every manifest under ``results_dir``: ``<out>/<study>-<budget>/<dataset>.{png,pdf}`` and ``index.md``."""
    written: list[Path] = []
    for name, manifest in manifests(results_dir).items():
        rows, left_out = load_rows(results_dir, manifest)
        folder = Path(out_dir) / name
        figures = []
        for dataset, dataset_rows in by_dataset(rows).items():
            written += save_figure(figure_for(manifest["study"], dataset, dataset_rows), folder / dataset)
            figures.append(f"{dataset}.png")
        atomic_write_text(folder / "index.md", _index(manifest, rows, left_out, figures))
        written.append(folder / "index.md")
    return written
