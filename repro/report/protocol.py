"""The ``protocol`` study's report (``repro sweep protocol``, docs/fidelity.md): where our Table 1 departs from the
paper's, read off one table and one figure.

Rows are algorithms, columns the study's variants (the reference code's gate-mean behaviours added one at a time:
``default`` = A.2, ``all-passes``, ``reference`` = all-passes with branch 1's mean from branch 0's gate), each under
both evaluation protocols: *standard* (``test.acc``: regular fusion) and *reference* (``test_reference.acc``: the
checkpoint chosen in the training state and tested in it). The paper's Table-1 value stands beside each row. Vanilla
never re-balances, so its gate means are never used: it runs in the default variant only, and its other cells are
that one.
"""

from __future__ import annotations

from ..paper import TABLE1
from ..registry import ALGORITHMS
from ..rundir import is_number
from .plotting import plt
from .sweep_rows import mean_sd

VARIANTS = ("default", "all-passes", "reference")
EVALUATIONS = {"acc": "standard", "acc_reference": "reference"}  # row key -> evaluation protocol
STUDY_ALGORITHMS = ("vanilla", "random", "guided")
SAME_AS_DEFAULT = "= default"  # vanilla's cells outside the default variant
#: The Table-1 setting a study dataset is compared with (the study trains NVGesture from scratch).
PAPER_SETTING = {"cmnist": "cmnist", "modelnet40": "modelnet40", "nvgesture": "nvgesture-scratch"}


def _values(rows: list[dict], algorithm: str, variant: str, key: str) -> list[float]:
    if algorithm == "vanilla":
        variant = "default"
    return [
        float(r[key])
        for r in rows
        if r["algorithm"] == algorithm and r.get("variant") == variant and is_number(r.get(key))
    ]


def _entry(values: list[float]) -> str:
    if not values:
        return "—"
    mean, sd = mean_sd(values)
    return f"{mean:.2f} ± {sd:.2f} (n={len(values)})"


def protocol_table(dataset: str, rows: list[dict]) -> list[str]:
    """Markdown lines: test accuracy (%) per algorithm × variant × evaluation protocol, the paper's beside it."""
    header = ["algorithm", "paper"] + [f"{v}: {e}" for v in VARIANTS for e in EVALUATIONS.values()]
    lines = [
        f"Test accuracy (%) on {dataset}, mean ± sd over seeds, under both evaluation protocols "
        "(standard: `test.acc`; reference: `test_reference.acc`); columns add the reference code's "
        "gate-mean behaviours one at a time. Vanilla never uses the gate means: one run set, "
        f"'{SAME_AS_DEFAULT}' elsewhere.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    setting = PAPER_SETTING.get(dataset)
    for algorithm in STUDY_ALGORITHMS:
        if not any(r["algorithm"] == algorithm for r in rows):
            continue
        paper = TABLE1.get((setting, algorithm))
        cells = [ALGORITHMS[algorithm].display, f"{paper.mean:.2f} ± {paper.std:.2f}" if paper else "—"]
        for variant in VARIANTS:
            for key in EVALUATIONS:
                if algorithm == "vanilla" and variant != "default":
                    cells.append(SAME_AS_DEFAULT)
                else:
                    cells.append(_entry(_values(rows, algorithm, variant, key)))
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def protocol_figure(study: str, dataset: str, rows: list[dict]):
    """One panel per algorithm: per variant, the standard and the reference evaluation's test accuracy (bars: mean,
    whiskers: sd, dots: runs); the paper's Table-1 value dashed with its ±2 sd band."""
    algorithms = [a for a in STUDY_ALGORITHMS if any(r["algorithm"] == a for r in rows)]
    fig, axes = plt.subplots(
        1, len(algorithms), figsize=(4.2 * len(algorithms), 3.6), constrained_layout=True, squeeze=False, sharey=True
    )
    colours = {"acc": "tab:gray", "acc_reference": "tab:purple"}
    setting = PAPER_SETTING.get(dataset)
    for ax, algorithm in zip(axes[0], algorithms, strict=True):
        variants = ("default",) if algorithm == "vanilla" else VARIANTS
        for i, variant in enumerate(variants):
            for j, key in enumerate(EVALUATIONS):
                values = _values(rows, algorithm, variant, key)
                if not values:
                    continue
                x = i + (j - 0.5) * 0.38
                mean, sd = mean_sd(values)
                ax.bar(
                    x,
                    mean,
                    width=0.36,
                    yerr=sd,
                    capsize=3,
                    color=colours[key],
                    alpha=0.75,
                    label=f"{EVALUATIONS[key]} evaluation" if i == 0 else None,
                )
                ax.scatter([x] * len(values), values, s=10, color="black", zorder=3)
        paper = TABLE1.get((setting, algorithm))
        if paper:
            ax.axhline(paper.mean, color="tab:red", linestyle="--", linewidth=1, label="paper (±2 sd)")
            ax.axhspan(paper.mean - 2 * paper.std, paper.mean + 2 * paper.std, color="tab:red", alpha=0.1)
        ax.set_xticks(range(len(variants)), variants)
        ax.set_xlim(-0.7, len(variants) - 0.3)
        ax.set_xlabel("gate means (training)")
        ax.set_title(f"{ALGORITHMS[algorithm].display}", fontsize=10)
        ax.legend(fontsize=7, loc="lower right")
    axes[0][0].set_ylabel("test accuracy (%)")
    fig.suptitle(f"{study}: {dataset} — both evaluation protocols, the reference code's gate means one at a time")
    return fig
