"""Table 1 of Wu et al. (ICML 2022, §5.4): test accuracy per (setting, algorithm), ours beside the paper's.

Rows are the algorithms in the paper's order (vanilla, RUBi, random, guided: the registry's entries marked ``paper``,
under their display names), then the methods beyond the paper that have runs (the registry's other entries, in its
order, marked with an asterisk: ours, no paper value); columns are the paper's four settings in its order, restricted
to those with at least one finished run. Each entry is the mean ± sample std (ddof=1) of ``test.acc`` over seeds, with
the number of seeds, the paper's value and Δ = ours − paper (from the unrounded mean). A last table gives the mean
d_util (§3.2) and d_speed (§4.1), the paper's diagnostics (§5.2–5.4); the methods beyond the paper get their accuracy
beside these two in a table of their own.

Two evaluation protocols, from the same runs (docs/fidelity.md): ``standard`` (``test.acc``: regular fusion, the
checkpoint chosen on regular validation; ``table1.*``) and ``reference`` (``test_reference.acc``: the checkpoint chosen
on validation in the training state and tested in that state, as the authors' code computed its numbers;
``table1-reference.*``, with both protocols side by side). A record without ``test_reference`` (made before it
existed) is counted as missing in its cell and in the notes, never averaged in.

Only Table-1 runs count: a record whose setting is not a Table-1 setting, whose algorithm is unknown, or
whose two modalities are the same (an identical-modality analysis run of §5.2) is left out with a one-line
note. Of several records for one (setting, algorithm, seed), the one whose path sorts last is kept, also
with a note. All output is deterministic (record order, number formatting): files compare byte for byte.
"""

from __future__ import annotations

import csv
import io
import logging
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..paper import PAPER_RUNS, SETTINGS, TABLE1, PaperValue
from ..registry import ALGORITHMS
from ..rundir import PATH_KEY, atomic_write_text, is_number, scan_records, why_unusable

log = logging.getLogger(__name__)

DASH = "—"  # shown for an empty entry in Markdown
PROTOCOLS = ("standard", "reference")
RESULT_KEY = {"standard": "test", "reference": "test_reference"}  # the record's entry each protocol reads
#: The rows, algorithm -> display name: the registry's algorithms that are rows of the paper's Table 1, in its order.
ROWS = {name: spec.display for name, spec in ALGORITHMS.items() if spec.paper}
#: The methods beyond the paper (no paper value), algorithm -> display name, shown below the paper's rows.
BEYOND = {name: spec.display for name, spec in ALGORITHMS.items() if not spec.paper}
BEYOND_MARK = "*"


@dataclass(frozen=True)
class Cell:
    """The finished runs of one (setting, algorithm) pair, summarised (accuracies in percent)."""

    setting: str
    algorithm: str
    seeds: tuple[int, ...]
    accs: tuple[float, ...]  # test.acc, in the order of ``seeds``
    d_utils: tuple[float, ...]  # test.d_util of the runs that report it
    d_speeds: tuple[float, ...]  # test.d_speed of the runs that report it
    standard_accs: tuple[float, ...] = ()  # reference protocol: the same runs' test.acc
    states: tuple[str, ...] = ()  # reference protocol: the training state each kept checkpoint was tested in

    @property
    def n(self) -> int:
        return len(self.accs)

    @property
    def acc_mean(self) -> float:
        return statistics.fmean(self.accs)

    @property
    def acc_std(self) -> float | None:
        """Sample standard deviation (ddof=1); None for a single seed."""
        return statistics.stdev(self.accs) if self.n > 1 else None

    @property
    def paper(self) -> PaperValue | None:
        """The paper's value; None for a method beyond the paper."""
        return TABLE1.get((self.setting, self.algorithm))

    @property
    def diff(self) -> float | None:
        """Ours − paper, mean test accuracy (percentage points); None without a paper value."""
        return None if self.paper is None else self.acc_mean - self.paper.mean

    @property
    def d_util_mean(self) -> float | None:
        return statistics.fmean(self.d_utils) if self.d_utils else None

    @property
    def d_speed_mean(self) -> float | None:
        return statistics.fmean(self.d_speeds) if self.d_speeds else None


@dataclass(frozen=True)
class Table1:
    """Table 1 from run records: the settings shown, the non-empty cells, notes on what was left out."""

    settings: tuple[str, ...]
    cells: dict[tuple[str, str], Cell]
    notes: tuple[str, ...]
    protocol: str = "standard"
    missing: dict[tuple[str, str], int] = field(default_factory=dict)  # runs without this protocol's result

    def cell(self, setting: str, algorithm: str) -> Cell | None:
        return self.cells.get((setting, algorithm))

    @property
    def beyond(self) -> list[str]:
        """The methods beyond the paper with at least one cell (or missing run), in the registry's order."""
        seen = {k[1] for k in (*self.cells, *self.missing)}
        return [a for a in BEYOND if a in seen]


# --- building ---


def _name(record: dict) -> str:
    return record.get(PATH_KEY) or (
        f"record(setting={record.get('setting')!r}, algorithm={record.get('algorithm')!r}, seed={record.get('seed')!r})"
    )


def _why_not_table1(record: dict) -> str | None:
    """Why a record is not a Table-1 run, or None if it is one."""
    reason = why_unusable(record)
    if reason is not None:
        return reason
    if record.get("setting") not in SETTINGS:
        return f"setting {record.get('setting')!r} is not a Table-1 setting"
    mods = record.get("modalities")
    if isinstance(mods, list) and len(mods) == 2 and mods[0] == mods[1]:
        return f"identical modalities {mods!r} (an analysis run, not a Table-1 run)"
    if record.get("algorithm") not in ROWS and record.get("algorithm") not in BEYOND:
        return f"algorithm {record.get('algorithm')!r} is not a Table-1 algorithm"
    seed = record.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool):
        return f"seed {seed!r} is not an integer"
    return None


def build_table1(records: Iterable[dict], *, notes: Sequence[str] = (), protocol: str = "standard") -> Table1:
    """Summarise finished Table-1 runs per (setting, algorithm) under an evaluation ``protocol`` (see the module's
    docstring); ``notes`` (e.g. skipped files) come first."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")
    out_notes = list(notes)
    # Stable sort by path: deterministic whatever order the caller passes, and "path sorts last" wins below.
    ordered = sorted(records, key=lambda r: r.get(PATH_KEY, ""))
    kept: dict[tuple[str, str, int], dict] = {}
    for record in ordered:
        reason = _why_not_table1(record)
        if reason is not None:
            out_notes.append(f"left out {_name(record)}: {reason}")
            continue
        key = (record["setting"], record["algorithm"], record["seed"])
        if key in kept:
            out_notes.append(
                f"duplicate {key[0]}/{key[1]}/seed {key[2]}: kept {_name(record)}, dropped {_name(kept[key])}"
            )
        kept[key] = record

    key = RESULT_KEY[protocol]
    cells: dict[tuple[str, str], Cell] = {}
    missing: dict[tuple[str, str], int] = {}
    for setting in SETTINGS:
        for algorithm in (*ROWS, *BEYOND):
            runs = sorted((k[2], r) for k, r in kept.items() if k[:2] == (setting, algorithm))
            lacking = [r for _, r in runs if not is_number((r.get(key) or {}).get("acc"))]
            for r in lacking:
                out_notes.append(f"no {key} in {_name(r)} (recorded before both protocols were): not averaged")
            if lacking:
                missing[(setting, algorithm)] = len(lacking)
            runs = [(seed, r) for seed, r in runs if is_number((r.get(key) or {}).get("acc"))]
            if not runs:
                continue
            tests = [r["test"] for _, r in runs]
            results = [r[key] for _, r in runs]
            reference = protocol == "reference"
            cells[(setting, algorithm)] = Cell(
                setting=setting,
                algorithm=algorithm,
                seeds=tuple(seed for seed, _ in runs),
                accs=tuple(float(t["acc"]) for t in results),
                d_utils=tuple(float(t["d_util"]) for t in tests if is_number(t.get("d_util"))) if not reference else (),
                d_speeds=tuple(float(t["d_speed"]) for t in tests if is_number(t.get("d_speed")))
                if not reference
                else (),
                standard_accs=tuple(float(t["acc"]) for t in tests) if reference else (),
                states=tuple(str(t.get("state")) for t in results) if reference else (),
            )
    settings = tuple(s for s in SETTINGS if any(k[0] == s for k in cells) or any(k[0] == s for k in missing))
    for note in out_notes[len(notes) :]:
        log.info("table1: %s", note)
    return Table1(settings=settings, cells=cells, notes=tuple(out_notes), protocol=protocol, missing=missing)


# --- number formatting (shared by all writers, so they always agree) ---


def fmt(x: float, decimals: int = 2) -> str:
    """Fixed-point with ``decimals`` digits; never prints ``-0.00``."""
    s = f"{x:.{decimals}f}"
    return s[1:] if s.startswith("-") and float(s) == 0 else s


def fmt_signed(x: float, decimals: int = 2) -> str:
    s = fmt(x, decimals)
    return s if s.startswith("-") else "+" + s


def _ours(cell: Cell, pm: str = " ± ") -> str:
    std = cell.acc_std
    return fmt(cell.acc_mean) if std is None else f"{fmt(cell.acc_mean)}{pm}{fmt(std)}"


def _paper(p: PaperValue | None, pm: str = " ± ", none: str = DASH) -> str:
    return none if p is None else f"{fmt(p.mean)}{pm}{fmt(p.std)}"


def display(algorithm: str) -> str:
    """The row name: the registry's display name, marked when the method is beyond the paper."""
    return ROWS.get(algorithm) or BEYOND[algorithm] + BEYOND_MARK


# --- Markdown ---


def _md_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _md_diag(values: tuple[float, ...], n: int) -> str:
    if not values:
        return DASH
    s = fmt(statistics.fmean(values), 3)
    return s if len(values) == n else f"{s} (n={len(values)})"


_MD_OURS = (  # .format(key=the record's entry read)
    "Ours: mean ± sample std (ddof=1) of `{key}.acc` over seeds; n = seeds (no std if n=1); " + DASH + " = no run."
)
_MD_PAPER = f"Paper: mean ± std over {PAPER_RUNS} runs; Δ = ours − paper (mean test accuracy, percentage points)."
_MD_DIAG = "Diagnostics, same runs: mean d_util (§3.2, on the test set) and mean d_speed (§4.1)."
_MD_BEYOND = (
    f"{BEYOND_MARK} Beyond the paper: later methods against the same imbalance, trained by this package on the "
    "paper's datasets with its protocol (docs/results.md); no paper value. They have no training state, so their "
    "two evaluation protocols agree by construction."
)
_MD_BEYOND_DIAG = (
    "Beyond the paper, accuracy beside the diagnostics (same runs): mean ± std of `test.acc`, mean d_util (§3.2) "
    "and mean d_speed (§4.1)."
)


_MD_REFERENCE = (
    "Reference evaluation, as the authors' code computed its numbers (docs/fidelity.md): mean ± sample std of "
    "`test_reference.acc` over seeds, the checkpoint with the best validation accuracy *in the algorithm's training "
    "state* (the fusion its next step would take), tested in that state. Vanilla and RUBi have no training state: "
    "their two protocols agree by construction."
)
_MD_SEE_REFERENCE = (
    "The same runs under the reference evaluation (the authors' code's protocol, docs/fidelity.md): "
    "`table1-reference.md`."
)
_MD_BOTH = (
    "Both protocols, same runs: mean test accuracy (%) under the standard evaluation (`test.acc`) and the reference "
    "evaluation (`test_reference.acc`), and the training states the kept checkpoints were tested in."
)


def _md_ours(cell: Cell | None, missing: int, key: str) -> str:
    text = DASH if cell is None else f"{_ours(cell)} (n={cell.n})"
    return text + (f" ({missing} without {key})" if missing else "")


def _states(cell: Cell) -> str:
    counts = Counter(cell.states)
    return ", ".join(f"{state} ×{counts[state]}" for state in sorted(counts))


def to_markdown(table: Table1) -> str:
    """Markdown tables (ours; paper with Δ; then the d_util/d_speed diagnostics for the standard protocol, or both
    protocols side by side for the reference one) and the notes."""
    reference = table.protocol == "reference"
    lines = [
        "# Table 1"
        + (", reference evaluation" if reference else "")
        + ": test accuracy (%), ours vs. Wu et al. (ICML 2022, §5.4)",
        "",
    ]
    if not table.settings:
        lines += ["No finished Table-1 runs were found.", ""]
    else:
        header = ["Algorithm"] + [SETTINGS[s] for s in table.settings]
        lines += ([_MD_REFERENCE, ""] if reference else []) + [_MD_OURS.format(key=RESULT_KEY[table.protocol]), ""]
        ours_rows = []
        paper_rows = []
        for alg, alg_name in ROWS.items():
            ours_row, paper_row = [alg_name], [alg_name]
            for s in table.settings:
                cell = table.cell(s, alg)
                paper = _paper(TABLE1[(s, alg)])
                ours_row.append(_md_ours(cell, table.missing.get((s, alg), 0), RESULT_KEY[table.protocol]))
                paper_row.append(paper if cell is None else f"{paper} (Δ {fmt_signed(cell.diff)})")
            ours_rows.append(ours_row)
            paper_rows.append(paper_row)
        for alg in table.beyond:
            ours_rows.append(
                [display(alg)]
                + [_md_ours(table.cell(s, alg), table.missing.get((s, alg), 0), RESULT_KEY[table.protocol])
                   for s in table.settings]
            )  # fmt: skip
        lines += _md_table(header, ours_rows)
        if table.beyond:
            lines += ["", _MD_BEYOND]
        lines += ["", _MD_PAPER, ""]
        lines += _md_table(header, paper_rows)
        if reference:
            lines += ["", _MD_BOTH, ""]
            rows = [
                [
                    SETTINGS[c.setting],
                    display(c.algorithm),
                    str(c.n),
                    fmt(statistics.fmean(c.standard_accs)),
                    fmt(c.acc_mean),
                    fmt_signed(c.acc_mean - statistics.fmean(c.standard_accs)),
                    _paper(c.paper),
                    _states(c),
                ]
                for c in table.cells.values()
            ]
            lines += _md_table(
                [
                    "Setting",
                    "Algorithm",
                    "n",
                    "standard",
                    "reference",
                    "reference − standard",
                    "paper",
                    "states tested in",
                ],
                rows,
            )
        else:
            lines += ["", _MD_DIAG, ""]
            diag_rows = [
                [
                    SETTINGS[c.setting],
                    display(c.algorithm),
                    str(c.n),
                    _md_diag(c.d_utils, c.n),
                    _md_diag(c.d_speeds, c.n),
                ]
                for c in table.cells.values()
            ]
            lines += _md_table(["Setting", "Algorithm", "n", "mean d_util", "mean d_speed"], diag_rows)
            beyond = [c for c in table.cells.values() if c.algorithm in BEYOND]
            if beyond:
                lines += ["", _MD_BEYOND_DIAG, ""]
                rows = [
                    [SETTINGS[c.setting], display(c.algorithm), str(c.n), _ours(c), _md_diag(c.d_utils, c.n),
                     _md_diag(c.d_speeds, c.n)]
                    for c in beyond
                ]  # fmt: skip
                lines += _md_table(["Setting", "Algorithm", "n", "test acc (%)", "mean d_util", "mean d_speed"], rows)
            lines += ["", _MD_SEE_REFERENCE]
        lines.append("")
    if table.notes:
        lines += ["Notes:", ""] + [f"- {note}" for note in table.notes] + [""]
    return "\n".join(lines)


# --- LaTeX ---

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


TEX_PM = r" \pm "


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters in plain text."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def to_latex(table: Table1) -> str:
    """A booktabs ``tabular``: per setting, our mean ± std (with n) beside the paper's value."""
    lines = [
        "% Table 1 of Wu et al. (ICML 2022, section 5.4): test accuracy (%), ours beside the paper's.",
        *(
            ["% Reference evaluation (test_reference): tested in the training state, as the authors' code."]
            if table.protocol == "reference"
            else []
        ),
        "% Ours: mean $\\pm$ sample std over seeds (n = number of seeds).",
        f"% Paper: mean $\\pm$ std over {PAPER_RUNS} runs.",
        "% Generated by repro.report.table1 (do not edit); needs \\usepackage{booktabs}.",
    ]
    k = len(table.settings)
    if k == 0:
        return "\n".join(lines + ["% No finished Table-1 runs were found.", ""])
    lines.append("\\begin{tabular}{l" + "cc" * k + "}")
    lines.append("\\toprule")
    lines.append(
        " & ".join([""] + [f"\\multicolumn{{2}}{{c}}{{{latex_escape(SETTINGS[s])}}}" for s in table.settings]) + " \\\\"
    )
    lines.append(" ".join(f"\\cmidrule(lr){{{2 + 2 * i}-{3 + 2 * i}}}" for i in range(k)))
    lines.append(" & ".join(["Algorithm"] + ["Ours", "Paper"] * k) + " \\\\")
    lines.append("\\midrule")
    for i, alg in enumerate([*ROWS, *table.beyond]):
        if i == len(ROWS):
            lines.append("\\midrule")
        row = [latex_escape(display(alg))]
        for s in table.settings:
            cell = table.cell(s, alg)
            row.append("--" if cell is None else f"${_ours(cell, TEX_PM)}$ {{\\scriptsize($n{{=}}{cell.n}$)}}")
            paper = TABLE1.get((s, alg))
            row.append("--" if paper is None else f"${_paper(paper, TEX_PM)}$")
        lines.append(" & ".join(row) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", ""]
    if table.beyond:
        lines.insert(
            lines.index("\\begin{tabular}{l" + "cc" * k + "}"),
            f"% {BEYOND_MARK} Beyond the paper: ours, no paper value.",
        )
    return "\n".join(lines)


# --- CSV ---

CSV_COLUMNS = (
    "setting",
    "algorithm",
    "n",
    "acc_mean",
    "acc_std",
    "paper_mean",
    "paper_std",
    "diff",
    "d_util_mean",
    "d_speed_mean",
    "seeds",
)


def _opt(x: float | None, decimals: int = 4) -> str:
    return "" if x is None else fmt(x, decimals)


REFERENCE_CSV_COLUMNS = ("standard_acc_mean", "missing", "states")


def to_csv(table: Table1) -> str:
    """Long format: one row per non-empty (setting, algorithm), paper's order; empty field = not available.

    Our numbers carry 4 decimals, the paper's the 2 it prints; ``seeds`` is ``;``-separated and ascending. The
    reference protocol's file adds the same runs' standard mean, the count of runs without ``test_reference`` and
    the states their checkpoints were tested in (``;``-separated, in the order of ``seeds``).
    """
    reference = table.protocol == "reference"
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS + (REFERENCE_CSV_COLUMNS if reference else ()))
    for c in table.cells.values():
        extra = (
            [
                fmt(statistics.fmean(c.standard_accs), 4),
                table.missing.get((c.setting, c.algorithm), 0),
                ";".join(c.states),
            ]
            if reference
            else []
        )
        writer.writerow(
            [
                c.setting,
                c.algorithm,
                c.n,
                fmt(c.acc_mean, 4),
                _opt(c.acc_std),
                "" if c.paper is None else fmt(c.paper.mean),
                "" if c.paper is None else fmt(c.paper.std),
                _opt(c.diff),
                _opt(c.d_util_mean),
                _opt(c.d_speed_mean),
                ";".join(str(s) for s in c.seeds),
                *extra,
            ]
        )
    return buf.getvalue()


# --- files ---


def write_table1(results_dir: str | Path, out_dir: str | Path) -> dict[str, Path]:
    """Build Table 1 from every ``record.json`` under ``results_dir`` under both evaluation protocols; write
    ``table1.{md,tex,csv}`` (standard) and ``table1-reference.{md,tex,csv}`` (reference).

    Files that could not be used are listed in the notes of the Markdown files. Returns ``{"md": ..., "tex": ...,
    "csv": ..., "reference.md": ..., "reference.tex": ..., "reference.csv": ...}``.
    """
    records, skipped = scan_records(results_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for protocol, suffix in (("standard", ""), ("reference", "-reference")):
        table = build_table1(records, notes=[str(s) for s in skipped], protocol=protocol)
        for ext, render in (("md", to_markdown), ("tex", to_latex), ("csv", to_csv)):
            key = ext if protocol == "standard" else f"reference.{ext}"
            paths[key] = out / f"table1{suffix}.{ext}"
            atomic_write_text(paths[key], render(table))
    return paths
