"""One Table-1 column for every algorithm, each cell mean ± sample std over seeds: the table of docs/results.md.

    python scripts/results_column.py results/table1/runs/cmnist [--setting cmnist] [--plot docs/results-cmnist.png]

Reads the finished records under the folder (``repro.rundir.load_records``) and prints Markdown: test accuracy under
both evaluation protocols, the branches' accuracies, the conditional utilization rates and d_util (Def. 2.1), d_speed
(Def. 4.1), and the epochs trained, per algorithm in the registry's order. ``--plot`` also draws each run's test
accuracy against its d_util, one colour per algorithm (the registry's): does less imbalance go with more accuracy?
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict

from repro.registry import ALGORITHMS
from repro.rundir import is_number, load_records

COLUMNS = (  # (header, record entry, key, decimals)
    ("test acc (%), standard", "test", "acc", 2),
    ("reference", "test_reference", "acc", 2),
    ("f0 / f1 (%)", "test", ("acc_branch0", "acc_branch1"), 1),
    ("u(m1\\|m0)", "test", "u_m1_given_m0", 3),
    ("u(m0\\|m1)", "test", "u_m0_given_m1", 3),
    ("d_util", "test", "d_util", 3),
    ("d_speed", "test", "d_speed", 3),
)


def mean_std(values: list[float], decimals: int) -> str:
    if not values:
        return "—"
    mean = f"{statistics.fmean(values):+.{decimals}f}" if decimals == 3 else f"{statistics.fmean(values):.{decimals}f}"
    return mean if len(values) < 2 else f"{mean} ± {statistics.stdev(values):.{decimals}f}"


def column(records: list[dict], setting: str) -> str:
    by_algorithm: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        if r.get("setting") == setting and r.get("status") == "done":
            by_algorithm[r["algorithm"]].append(r)
    header = ["algorithm", "seeds", *(c[0] for c in COLUMNS), "epochs"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in [a for a in ALGORITHMS if a in by_algorithm]:
        runs = sorted(by_algorithm[name], key=lambda r: r["seed"])
        cells = [ALGORITHMS[name].display + ("" if ALGORITHMS[name].paper else "*"), str(len(runs))]
        for _, entry, key, decimals in COLUMNS:
            if isinstance(key, tuple):
                parts = [[float(r[entry][k]) for r in runs if is_number(r[entry].get(k))] for k in key]
                cells.append(" / ".join(f"{statistics.fmean(p):.{decimals}f}" for p in parts))
            else:
                cells.append(mean_std([float(r[entry][key]) for r in runs if is_number(r[entry].get(key))], decimals))
        cells.append(", ".join(str(len(r["epochs"])) for r in runs))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(records: list[dict], setting: str, path: str) -> None:
    from repro.report.plotting import plt, save_figure

    fig, ax = plt.subplots(figsize=(6.4, 4.2), constrained_layout=True)
    for name, spec in ALGORITHMS.items():
        runs = [r for r in records if r.get("setting") == setting and r.get("algorithm") == name]
        runs = [r for r in runs if r.get("status") == "done" and is_number(r["test"].get("d_util"))]
        if runs:
            label = spec.display + ("" if spec.paper else " *")
            x, y = [r["test"]["d_util"] for r in runs], [r["test"]["acc"] for r in runs]
            ax.scatter(x, y, color=spec.colour, marker="o" if spec.paper else "^", label=label, s=36)
    ax.axvline(0, color="0.6", lw=0.8, ls="--")
    ax.set_xlabel("d_util = u(m1|m0) − u(m0|m1)  (Def. 2.1, test set)")
    ax.set_ylabel("test accuracy (%), standard evaluation")
    ax.set_title(f"{setting}: accuracy against d_util, one point per run (* beyond the paper)", fontsize=10)
    ax.legend(fontsize=8, ncol=2)
    save_figure(fig, path.removesuffix(".png"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", help="a folder of run folders (e.g. results/table1/runs/cmnist)")
    parser.add_argument("--setting", default="cmnist")
    parser.add_argument("--plot", help="also write this PNG (and a PDF beside it): accuracy against d_util")
    args = parser.parse_args()
    records = load_records(args.results)
    print(column(records, args.setting))
    if args.plot:
        plot(records, args.setting, args.plot)


if __name__ == "__main__":
    main()
