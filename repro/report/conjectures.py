"""The paper's conjectures (§3.2) and hypothesis (§4.1), checked on the sweeps' records: ``conjectures.md``.

1. Conjecture 1 (§5.2): with two *distinct* modalities E[d_util] ≠ 0 (the paper: |E| ≈ 0.3 CMNIST, 0.1 ModelNet40,
   0.4 NVGesture); with two *identical* ones E[d_util] ≈ 0. Reported: E[d_util] with a 95% bootstrap confidence
   interval (``scipy.stats.bootstrap``, percentile method, 9,999 resamples, fixed seed) per dataset and pair kind.
2. The greedy learner hypothesis (§4.1, §5.2): d_speed predicts d_util across models — Spearman's rank correlation
   between d_speed and d_util over the runs, with its p-value.
3. Conjecture 2 (§5.3): stronger L1 regularization, more greed — Spearman's ρ of λ and of R(f) against |d_util|.
4. Balanced learning (§5.4, Fig. 4, Fig. A.7): E[d_util] with its interval per algorithm.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy import stats

from ..paper import ABS_MEAN_D_UTIL_DISTINCT, MEAN_D_UTIL_BALANCED
from ..rundir import atomic_write_text, is_number
from .sweep_rows import load_rows, manifests, pair_name

ORDER = ("lr-greedy", "guided-vs-vanilla", "random-vs-vanilla", "l1")  # sections in the paper's order
N_RESAMPLES = 9999
SEED = 0


def mean_ci(values: list[float], level: float = 0.95) -> tuple[float, float | None, float | None]:
    """Mean and bootstrap CI of the mean; (mean, None, None) when fewer than 3 runs or all values equal."""
    x = np.asarray(values, dtype=float)
    mean = statistics.fmean(values) if values else float("nan")  # the same mean as the figures' indexes
    if len(x) < 3 or np.all(x == x[0]):
        return mean, None, None
    res = stats.bootstrap(
        (x,),
        np.mean,
        confidence_level=level,
        n_resamples=N_RESAMPLES,
        method="percentile",
        rng=np.random.default_rng(SEED),
    )
    return mean, float(res.confidence_interval.low), float(res.confidence_interval.high)


def spearman(x: list[float], y: list[float]) -> tuple[float | None, float | None]:
    """Spearman's ρ and its two-sided p-value; None when fewer than 3 pairs or a constant variable."""
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None, None
    res = stats.spearmanr(x, y)
    return float(res.statistic), float(res.pvalue)


def _fmt_ci(mean: float, lo: float | None, hi: float | None) -> str:
    if lo is None:
        return f"{mean:+.3f} (no CI: < 3 distinct runs)"
    return f"{mean:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def _verdict(lo: float | None, hi: float | None) -> str:
    if lo is None:
        return "—"
    return "excludes 0" if lo > 0 or hi < 0 else "contains 0"


def _fmt_rho(rho: float | None, p: float | None) -> str:
    return "—" if rho is None else f"{rho:+.2f} (p = {p:.2g})"


def _paper_value(dataset: str, key: str, value: str) -> str:
    """The paper's figure for this row: |E[d_util]| per pair kind (§5.2), E[d_util] per algorithm (§5.4)."""
    if key == "pair":
        ref = ABS_MEAN_D_UTIL_DISTINCT.get(dataset) if value == "distinct" else 0.0
        return "—" if ref is None else f"\\|E\\| ≈ {ref:g}"
    ref = MEAN_D_UTIL_BALANCED.get((dataset, value))
    return "—" if ref is None else f"E ≈ {ref:+g}"


def _utilization_section(title: str, rows: list[dict], key: str) -> list[str]:
    column = "modalities" if key == "pair" else key
    lines = [
        f"## {title}",
        "",
        f"| dataset | {column} | runs | E[d_util] [95% CI] | CI vs 0 | E[d_speed] [95% CI] | paper |",
        "|---|---|---:|---|---|---|---|",
    ]
    groups = defaultdict(list)
    for r in rows:
        label = f"{pair_name(r['modalities'])} ({r['pair']})" if key == "pair" else r[key]
        groups[(r["dataset"], r["pair"] != "distinct", label, r[key])].append(r)
    for (dataset, _, label, value), g in sorted(groups.items(), key=lambda kv: kv[0][:3]):
        du = mean_ci([r["d_util"] for r in g])
        ds = mean_ci([r["d_speed"] for r in g if is_number(r["d_speed"])])
        cells = [
            dataset,
            label,
            str(len(g)),
            _fmt_ci(*du),
            _verdict(*du[1:]),
            _fmt_ci(*ds),
            _paper_value(dataset, key, value),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def _speed_section(rows: list[dict]) -> list[str]:
    lines = [
        "## d_speed predicts d_util (§4.1, §5.2)",
        "",
        "Spearman's rank correlation between d_speed and d_util across models.",
        "",
        "| dataset | runs | ρ (all pairs) | ρ (distinct pair only) |",
        "|---|---:|---|---|",
    ]
    for dataset in sorted({r["dataset"] for r in rows}):
        sel = [r for r in rows if r["dataset"] == dataset and is_number(r["d_speed"])]
        distinct = [r for r in sel if r["pair"] == "distinct"]
        cells = [
            dataset,
            str(len(sel)),
            _fmt_rho(*spearman([r["d_speed"] for r in sel], [r["d_util"] for r in sel])),
            _fmt_rho(*spearman([r["d_speed"] for r in distinct], [r["d_util"] for r in distinct])),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def _l1_section(rows: list[dict]) -> list[str]:
    lines = [
        "## Strong regularization encourages greed (§5.3, Fig. 3)",
        "",
        "| dataset | runs | ρ(λ, \\|d_util\\|) | ρ(R(f), \\|d_util\\|) | ρ(R(f), \\|d_speed\\|) |",
        "|---|---:|---|---|---|",
    ]
    for dataset in sorted({r["dataset"] for r in rows}):
        sel = [r for r in rows if r["dataset"] == dataset and is_number(r.get("r_f")) and is_number(r["d_speed"])]
        du = [abs(r["d_util"]) for r in sel]
        cells = [
            dataset,
            str(len(sel)),
            _fmt_rho(*spearman([r["l1"] for r in sel], du)),
            _fmt_rho(*spearman([r["r_f"] for r in sel], du)),
            _fmt_rho(*spearman([r["r_f"] for r in sel], [abs(r["d_speed"]) for r in sel])),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def conjecture_report(results_dir: str | Path) -> str | None:
    """The report's Markdown, or None when the results hold none of the studies it reads."""
    sections: list[str] = []
    in_order = sorted(  # the paper's order; a study the report does not read sorts last and is skipped
        manifests(results_dir).values(),
        key=lambda m: (ORDER.index(m["study"]) if m["study"] in ORDER else len(ORDER), m["budget"]),
    )
    for manifest in in_order:
        rows, _ = load_rows(results_dir, manifest)
        if not rows:
            continue
        study, budget = manifest["study"], manifest["budget"]
        tag = f"`{study}` [{budget}], {manifest['figure']}"
        if study == "lr-greedy":
            sections += _utilization_section(f"Distinct vs identical modalities — {tag}", rows, "pair")
            sections += _speed_section(rows)
        elif study in ("guided-vs-vanilla", "random-vs-vanilla"):
            sections += _utilization_section(f"Balanced vs vanilla — {tag}", rows, "algorithm")
        elif study == "l1":
            sections += _l1_section(rows)
    if not sections:
        return None
    head = [
        "# The conjectures, checked",
        "",
        f"95% confidence intervals: bootstrap of the mean over runs (percentile, {N_RESAMPLES} resamples, "
        f"seed {SEED}). A CI that excludes 0 supports E[d_util] ≠ 0.",
        "",
    ]
    return "\n".join(head + sections)


def write_conjectures(results_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """``<out>/conjectures.md`` (:func:`conjecture_report`); nothing when the results hold none of its studies."""
    report = conjecture_report(results_dir)
    if report is None:
        return []
    path = Path(out_dir) / "conjectures.md"
    atomic_write_text(path, report)
    return [path]
