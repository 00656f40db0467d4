"""Per-epoch curves of training runs (``repro curves``), drawn from their records alone.

The paper is about learning *dynamics*; each record's ``epochs`` (docs/record.schema.json) holds them. One figure,
seven panels, every run overlaid: the validation accuracy of ŷ, of branch 0 and of branch 1 (the standard protocol
solid; the reference protocol's ``val_reference_*`` dashed, drawn only for a run where they differ from the standard
ones, docs/fidelity.md), the training loss, d_speed (Def. 4.1), and the share of each epoch's steps that re-balanced
m0 and m1 (Alg. 1, A.3). Colour: the algorithm (:data:`repro.registry.ALGORITHMS`); marker: the seed; the legend
names algorithm and seed (and the run's folder when two runs would otherwise share a name). A value a record lacks
(uni-modal runs have no branch 1 and no d_speed) or holds as null is left out: a run draws only the lines it has.

A run folder (one holding ``record.json``) is read whatever its status, so a running run can be watched; a folder of
run folders is scanned with :func:`repro.rundir.scan_records` (finished runs only). Files: ``<name>.png`` and
``<name>.pdf``, written atomically, the same bytes for the same records (:func:`repro.report.plotting.save_figure`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ..registry import ALGORITHMS
from ..rundir import PATH_KEY, RECORD_NAME, Skipped, is_number, read_record, scan_records
from .plotting import algorithm_order, colour, plt, save_figure

__all__ = ["PANELS", "Run", "curves_figure", "load_runs", "write_curves"]

SEED_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
MARKERS_PER_LINE = 12  # at most about this many markers on a line (300-epoch runs stay readable)
STANDARD, REFERENCE = "-", "--"  # the line styles of the two evaluation protocols


@dataclass(frozen=True)
class Run:
    """One run's record and its folder (``name``: as given, or the scanned folder joined with the record's place)."""

    name: str
    record: dict

    @property
    def algorithm(self) -> str:
        return str(self.record.get("algorithm"))

    @property
    def seed(self):
        return self.record.get("seed")

    @property
    def epochs(self) -> list[dict]:
        epochs = self.record.get("epochs")
        return [e for e in epochs if isinstance(e, dict)] if isinstance(epochs, list) else []


def _value(key: str) -> Callable[[dict], float | None]:
    return lambda e: float(e[key]) if is_number(e.get(key)) else None


def _share(key: str) -> Callable[[dict], float | None]:
    """The fraction of the epoch's steps that were re-balancing steps of one modality."""

    def share(e: dict) -> float | None:
        steps, count = e.get("steps"), e.get(key)
        return float(count) / steps if is_number(count) and is_number(steps) and steps > 0 else None

    return share


@dataclass(frozen=True)
class Panel:
    """One panel: its title and y label, the metric it draws (``metric``: its name in the lines' ``gid``; ``value``:
    its value in an epoch's statistics, None where the record lacks it) and, for a validation accuracy, its
    reference-protocol counterpart."""

    title: str
    ylabel: str
    metric: str
    value: Callable[[dict], float | None]
    reference: Callable[[dict], float | None] | None = None
    zero_line: bool = False
    ylim: tuple[float, float] | None = None


def _accuracy(title: str, key: str) -> Panel:
    return Panel(title, "accuracy (%)", key, _value(key), _value(key.replace("val_", "val_reference_", 1)))


SHARE = "share of the epoch's steps"
SHARE_LIM = (-0.03, 1.03)

#: The figure's panels, in order.
PANELS: tuple[Panel, ...] = (
    _accuracy("validation accuracy of ŷ", "val_acc"),
    _accuracy("validation accuracy of branch 0 (m0)", "val_acc_branch0"),
    _accuracy("validation accuracy of branch 1 (m1)", "val_acc_branch1"),
    Panel("training loss", "loss", "train_loss", _value("train_loss")),
    Panel("d_speed (Def. 4.1)", "d_speed", "d_speed", _value("d_speed"), zero_line=True),
    Panel("re-balancing steps of m0", SHARE, "rebalance_steps_m0", _share("rebalance_steps_m0"), ylim=SHARE_LIM),
    Panel("re-balancing steps of m1", SHARE, "rebalance_steps_m1", _share("rebalance_steps_m1"), ylim=SHARE_LIM),
)


# --- reading ----------------------------------------------------------------------------------------------------
def load_runs(paths: Iterable[str | os.PathLike]) -> tuple[list[Run], list[Skipped]]:
    """The runs under ``paths``: a folder holding ``record.json`` is one run (any status); any other folder is
    scanned for finished records (:func:`repro.rundir.scan_records`, whose skipped files are returned). A record read
    twice counts once. A ValueError naming the path for a folder that gives no run, or a damaged record."""
    runs: list[Run] = []
    skipped: list[Skipped] = []
    seen: set[Path] = set()
    for given in paths:
        path = Path(given)
        if not path.is_dir():
            raise ValueError(f"{path}: not a folder")
        if (path / RECORD_NAME).is_file():
            record = read_record(path)
            if not isinstance(record, dict):
                raise ValueError(f"{path / RECORD_NAME}: not a readable run record (invalid JSON or not an object)")
            found = [(path, Run(str(path), record))]
        else:
            records, skip = scan_records(path)
            skipped += [Skipped(str(path / s.path), s.reason) for s in skip]
            if not records:
                why = f" ({len(skip)} skipped, e.g. {skip[0].path}: {skip[0].reason})" if skip else ""
                raise ValueError(f"{path}: no finished run record ({RECORD_NAME}) found{why}")
            found = []
            for r in records:
                file = path / r.pop(PATH_KEY)
                found.append((file.parent, Run(str(file.parent), r)))
        for folder, run in found:
            if folder.resolve() not in seen:
                seen.add(folder.resolve())
                runs.append(run)
    return runs, skipped


# --- drawing ----------------------------------------------------------------------------------------------------
def _order(runs: list[Run]) -> list[Run]:
    """The registry's algorithm order, then seed, then name: the legend's order, the same for the same runs."""
    rank = {a: i for i, a in enumerate(algorithm_order(r.algorithm for r in runs))}
    return sorted(runs, key=lambda r: (rank[r.algorithm], not is_number(r.seed), _seed_key(r.seed), r.name))


def _seed_key(seed) -> float | str:
    return seed if is_number(seed) else str(seed)


def run_labels(runs: list[Run]) -> list[str]:
    """Each run's legend entry: "<algorithm's display name>, seed <n>", with the run's folder added where two runs
    would otherwise share it."""
    base = []
    for r in runs:
        spec = ALGORITHMS.get(r.algorithm)
        base.append(f"{spec.display if spec else r.algorithm}, seed {r.seed}")
    return [f"{b} ({r.name})" if base.count(b) > 1 else b for b, r in zip(base, runs, strict=True)]


def _modality_title(panel: Panel, runs: list[Run]) -> str:
    """A branch panel's title names the modality when every run names the same one there."""
    for k in (0, 1):
        if f"(m{k})" in panel.title:
            names = set()
            for r in runs:
                modalities = r.record.get("modalities")
                names.add(str(modalities[k]) if isinstance(modalities, list) and len(modalities) > k else None)
            if len(names) == 1 and None not in names:
                return panel.title.replace(f"(m{k})", f"(m{k}: {names.pop()})")
    return panel.title


def _series(run: Run, value: Callable[[dict], float | None]) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for i, e in enumerate(run.epochs, start=1):
        y = value(e)
        if y is not None:
            xs.append(int(e["epoch"]) if is_number(e.get("epoch")) else i)
            ys.append(y)
    return xs, ys


def curves_figure(runs: list[Run], title: str | None = None):
    """The figure (matplotlib ``Figure``): one panel per entry of :data:`PANELS` and one for the legend. Every data
    line carries ``gid`` "<run index in the legend's order>:<metric>" (``:reference`` added for the reference
    protocol), so its lines can be counted without reading the image; other lines (d_speed's zero) have none."""
    runs = _order(runs)
    labels = run_labels(runs)
    seeds = sorted({_seed_key(r.seed) for r in runs}, key=lambda s: (isinstance(s, str), s))
    marker = {s: SEED_MARKERS[i % len(SEED_MARKERS)] for i, s in enumerate(seeds)}
    fig, axes = plt.subplots(2, 4, figsize=(17, 7.5), constrained_layout=True)
    any_reference = False
    for panel, ax in zip(PANELS, axes.flat, strict=False):
        drawn = 0
        for i, run in enumerate(runs):
            style = dict(
                color=colour(run.algorithm),
                marker=marker[_seed_key(run.seed)],
                markersize=4,
                linewidth=1.3,
            )
            xs, ys = _series(run, panel.value)
            if not xs:
                continue  # the record has no such value (a uni-modal run's branch 1, its d_speed)
            every = max(1, len(xs) // MARKERS_PER_LINE)
            ax.plot(xs, ys, linestyle=STANDARD, markevery=every, gid=f"{i}:{panel.metric}", **style)
            drawn += 1
            if panel.reference is None:
                continue
            rxs, rys = _series(run, panel.reference)
            if rxs and (rxs, rys) != (xs, ys):  # the reference protocol differs from the standard one
                ax.plot(rxs, rys, linestyle=REFERENCE, markevery=every, gid=f"{i}:{panel.metric}:reference", **style)
                any_reference = True
        ax.set_title(_modality_title(panel, runs), fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel(panel.ylabel)
        ax.xaxis.get_major_locator().set_params(integer=True)
        if panel.ylim is not None:
            ax.set_ylim(*panel.ylim)
        if panel.zero_line and drawn:
            ax.axhline(0.0, color="black", linewidth=0.6, linestyle=":")
        if not drawn:
            ax.text(0.5, 0.5, "not in the records", ha="center", va="center", transform=ax.transAxes, color="gray")
    legend_ax = axes.flat[len(PANELS)]
    legend_ax.axis("off")
    handles = [plt.Line2D([], [], color=colour(r.algorithm), marker=marker[_seed_key(r.seed)]) for r in runs]
    names = list(labels)
    if any_reference:
        handles += [plt.Line2D([], [], color="black", linestyle=s) for s in (STANDARD, REFERENCE)]
        names += ["standard protocol", "reference protocol (training state)"]
    legend_ax.legend(handles, names, loc="upper left", fontsize=8, ncol=1 + len(names) // 24, frameon=False)
    fig.suptitle(title or "Per-epoch curves of the runs (colour: algorithm; marker: seed)")
    return fig


def write_curves(runs: list[Run], out_dir: str | Path, name: str = "curves") -> list[Path]:
    """``<out_dir>/<name>.png`` and ``<out_dir>/<name>.pdf`` of ``runs`` (from :func:`load_runs`); a ValueError
    when none of them has a recorded epoch."""
    if not any(r.epochs for r in runs):
        raise ValueError(f"no per-epoch statistics in the {len(runs)} run record(s) given (their 'epochs' are empty)")
    return save_figure(curves_figure(runs), Path(out_dir) / name)
