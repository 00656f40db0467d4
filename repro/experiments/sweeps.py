"""The paper's analyses as named sweeps: each study is data (per-dataset ranges, seeds, swept values) that expands
into a list of run specs, one :class:`~repro.config.RunConfig` each, whose directory is named by its spec hash.

| study | paper | runs (budget ``full``) |
|---|---|---|
| ``lr-greedy`` | §5.2, Fig. 2, Fig. A.2 | vanilla; lrs × seeds (below) × the distinct pair and each identical pair |
| ``lr-vs-dutil`` | §5.2, Fig. A.3 | the distinct-pair runs of ``lr-greedy`` (same specs, so the same runs) |
| ``guided-vs-vanilla`` | §5.4, Fig. 4 | vanilla and guided on the ``lr-greedy`` learning rates, distinct pair |
| ``random-vs-vanilla`` | §5.4, Fig. A.7 | vanilla and random, likewise |
| ``l1`` | §5.3, Fig. 3, Fig. A.4 | vanilla; 10 λ log-spaced in [1e-9, 1e-3] × 3 seeds |
| ``window`` | Fig. A.5 | guided; Q ∈ {1, 5, 10, 20, 50} × 3 seeds |
| ``tolerance`` | Fig. A.6 | guided; α = {0.01, 0.1, 0.25, 0.5, 1} × \\|E[d_util]\\| × 3 seeds |
| ``protocol`` | Table 1 (docs/fidelity.md) | vanilla; random and guided × {default, all-passes, reference} × 3 seeds |
| ``beyond-paper`` | Table 1, extended (docs/results.md) | every algorithm of the registry × 3 seeds |

Learning rates (§5.2): CMNIST 20 drawn log-uniformly from [1e-5, 1] × 4 seeds; ModelNet40 9 log-spaced in
[1e-3, 1] × 3 seeds; NVGesture 20 drawn log-uniformly from [1e-4, 10^-1.5] × 3 seeds. The draws are stratified (one
in each of n equal slices of the log-range: log-uniform overall, and a small budget's few draws still cover the
range), come from a fixed generator and are rounded to 3 significant digits, so a sweep's specs (and run
directories) are the same on every machine.
Identical-modality variants (§5.2): CMNIST mono+mono and gray+gray, ModelNet40 m0+m0 (front+front), NVGesture
each modality doubled (rgb+rgb, depth+depth).

Every other hyper-parameter is the dataset's paper setting (``DATASET_DEFAULTS``: for ModelNet40 lr 0.1, batch 8,
α 0.01 — the settings of §5.3, A.5, A.6). The paper runs ``l1``, ``window`` and ``tolerance`` on ModelNet40 only;
here every study runs on every dataset whose prepared data is present and that has settings below, so the same
figures can be made on CMNIST. For ``tolerance``, E[d_util] is the paper's vanilla value (§5.2: ≈0.3 CMNIST,
≈0.1 ModelNet40, ≈0.4 NVGesture), a constant so that specs do not change as results arrive.

``protocol`` measures where our CMNIST Table 1 departs from the paper's: every run records both evaluation protocols
(``test``, ``test_reference``), and the variants add the authors' code's training behaviours of the gate means one at
a time: ``all-passes`` (``--gate-mean all-passes``) and ``reference`` (``--protocol reference``: all-passes and
branch 1's mean from branch 0's gate). Vanilla runs only in the default variant: it never re-balances, so the gate
means are never used and its other variants would be the same computation.

Budget ``small`` is a CPU-sized version of each study: fewer values and seeds, a training subset and an epoch cap
(:data:`SMALL`); its runs are different specs, so they never mix with the full budget's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import DATASET_DEFAULTS, RunConfig, resolve
from ..paper import ABS_MEAN_D_UTIL_DISTINCT
from ..registry import ALGORITHMS
from ..rundir import RUNS_DIR

BUDGETS = ("full", "small")


@dataclass(frozen=True)
class LrRange:
    """§5.2's learning rates for one dataset: ``n`` values in [lo, hi], drawn log-uniformly or log-spaced."""

    lo: float
    hi: float
    n: int
    seeds: int
    sampling: str  # "random" (log-uniform draws) | "grid" (log-spaced)
    identical: str  # which identical pairs: "each" modality doubled, or "m0" only

    def values(self, n: int | None = None) -> list[float]:
        n = self.n if n is None else n
        lo, hi = math.log10(self.lo), math.log10(self.hi)
        if self.sampling == "grid":
            exps = np.linspace(lo, hi, n)
        else:  # one log-uniform draw in each of n equal slices of the log-range (stratified, so that a few draws
            # still cover the range), from a fixed generator: the same values on every machine
            edges = np.linspace(lo, hi, n + 1)
            exps = np.random.default_rng(20220205).uniform(edges[:-1], edges[1:])
        return [round_sig(10.0**e) for e in exps]


LR_RANGES: dict[str, LrRange] = {
    "cmnist": LrRange(1e-5, 1.0, n=20, seeds=4, sampling="random", identical="each"),
    "modelnet40": LrRange(1e-3, 1.0, n=9, seeds=3, sampling="grid", identical="m0"),
    "nvgesture": LrRange(1e-4, 10**-1.5, n=20, seeds=3, sampling="random", identical="each"),
}

#: |E[d_util]| of vanilla models with distinct modalities reported in §5.2: the reference for A.6's α.
PAPER_ABS_MEAN_DUTIL = ABS_MEAN_D_UTIL_DISTINCT

L1_LAMBDAS = (1e-9, 1e-3)  # §5.3: ten values from this interval (log-spaced here)
WINDOWS = (1, 5, 10, 20, 50)  # Fig. A.5
ALPHA_FRACTIONS = (0.01, 0.1, 0.25, 0.5, 1.0)  # Fig. A.6: α as fractions of E[d_util]
FULL_SEEDS = 3  # l1 (§5.3), window and tolerance (3 repetitions, as Table 1)


@dataclass(frozen=True)
class Small:
    """The ``small`` budget of one dataset: counts of swept values and seeds, and run-size overrides."""

    lrs: int
    seeds: int
    lambdas: int
    sensitivity_seeds: int  # seeds for l1, window, tolerance
    overrides: dict = field(default_factory=dict)


#: Budget ``small``. CMNIST is sized so that ``lr-greedy --budget small`` (10 lrs × 2 seeds × 3 pairs = 60 runs)
#: takes about half an hour on a 2-core CPU with 2 workers × 1 thread (measured: docs/sweeps.md). The ModelNet40 and
#: NVGesture profiles are scaled down the same way, untimed (their data cannot be had on such a machine).
SMALL: dict[str, Small] = {
    "cmnist": Small(
        lrs=10, seeds=2, lambdas=5, sensitivity_seeds=1, overrides=dict(train_limit=8000, eval_limit=2000, max_epochs=7)
    ),
    "modelnet40": Small(
        lrs=5, seeds=1, lambdas=5, sensitivity_seeds=1, overrides=dict(train_limit=800, eval_limit=400, max_epochs=3)
    ),
    "nvgesture": Small(
        lrs=5, seeds=1, lambdas=5, sensitivity_seeds=1, overrides=dict(train_limit=200, eval_limit=100, max_epochs=3)
    ),
}


#: ``protocol --budget small`` on CMNIST: larger than the other studies' small profile, since the gap it measures
#: only opens once guided has re-balanced for a few epochs (the 12-epoch `make demo` shows it).
PROTOCOL_SMALL = {"cmnist": dict(train_limit=10000, eval_limit=2000, max_epochs=10)}
#: The ``protocol`` study's variants: the reference code's gate-mean behaviours, one at a time (docs/fidelity.md).
PROTOCOL_VARIANTS: dict[str, dict] = {
    "default": {},
    "all-passes": {"gate_mean": "all-passes"},
    "reference": {"protocol": "reference"},
}


def round_sig(x: float, digits: int = 3) -> float:
    return float(f"{x:.{digits - 1}e}")


@dataclass(frozen=True)
class RunSpec:
    """One run of a study: its full config, the values the study sweeps (for the figures) and its pair kind."""

    cfg: RunConfig
    params: dict
    pair: str = "distinct"  # "distinct" | "identical"

    @property
    def name(self) -> str:
        """Directory name: readable prefix, then the spec hash that identifies the run."""
        c = self.cfg
        return f"{c.dataset}-{c.algorithm}-{'+'.join(c.modality_names)}-{c.spec_hash()}"


@dataclass(frozen=True)
class Study:
    name: str
    figure: str
    title: str
    build: object  # (dataset, budget) -> list[RunSpec]


# --- the studies ------------------------------------------------------------------------------------------------
def _base(dataset: str, budget: str, data_dir: str) -> dict:
    over = dict(SMALL[dataset].overrides) if budget == "small" else {}
    over["data"] = str(Path(data_dir) / f"{dataset}.h5")
    return over


def _lr_grid(dataset: str, budget: str) -> tuple[list[float], int]:
    r = LR_RANGES[dataset]
    if budget == "small":
        return r.values(SMALL[dataset].lrs), SMALL[dataset].seeds
    return r.values(), r.seeds


def _pairs(dataset: str, identical: bool) -> list[tuple[str, str]]:
    distinct = DATASET_DEFAULTS[dataset]["modalities"]
    pairs = [("distinct", distinct)]
    if identical:
        names = distinct.split(",")
        doubled = names if LR_RANGES[dataset].identical == "each" else names[:1]
        pairs += [("identical", f"{m},{m}") for m in doubled]
    return pairs


def _lr_study(algorithms: tuple[str, ...], identical: bool):
    def build(dataset: str, budget: str, data_dir: str) -> list[RunSpec]:
        lrs, seeds = _lr_grid(dataset, budget)
        base = _base(dataset, budget, data_dir)
        # Seed-major, then lr, then pair and algorithm: a sweep stopped part-way leaves a balanced subset
        # (every pair and algorithm over the whole lr range), not the distinct pair alone.
        return [
            RunSpec(
                resolve(dataset, algorithm=alg, modalities=mods, lr=lr, seed=seed, **base),
                {"lr": lr, "seed": seed},
                pair,
            )
            for seed in range(seeds)
            for lr in lrs
            for pair, mods in _pairs(dataset, identical)
            for alg in algorithms
        ]

    return build


def _sensitivity_seeds(dataset: str, budget: str) -> int:
    return SMALL[dataset].sensitivity_seeds if budget == "small" else FULL_SEEDS


def _l1(dataset: str, budget: str, data_dir: str) -> list[RunSpec]:
    n = SMALL[dataset].lambdas if budget == "small" else 10
    lambdas = [round_sig(10.0**e) for e in np.linspace(*np.log10(L1_LAMBDAS), n)]
    base = _base(dataset, budget, data_dir)
    return [
        RunSpec(resolve(dataset, algorithm="vanilla", l1=lam, seed=seed, **base), {"l1": lam, "seed": seed})
        for lam in lambdas
        for seed in range(_sensitivity_seeds(dataset, budget))
    ]


def _window(dataset: str, budget: str, data_dir: str) -> list[RunSpec]:
    base = _base(dataset, budget, data_dir)
    return [
        RunSpec(resolve(dataset, algorithm="guided", window=q, seed=seed, **base), {"window": q, "seed": seed})
        for q in WINDOWS
        for seed in range(_sensitivity_seeds(dataset, budget))
    ]


def _tolerance(dataset: str, budget: str, data_dir: str) -> list[RunSpec]:
    base = _base(dataset, budget, data_dir)
    ref = PAPER_ABS_MEAN_DUTIL[dataset]
    return [
        RunSpec(
            resolve(dataset, algorithm="guided", alpha=round_sig(f * ref), seed=seed, **base),
            {"alpha_fraction": f, "alpha": round_sig(f * ref), "seed": seed},
        )
        for f in ALPHA_FRACTIONS
        for seed in range(_sensitivity_seeds(dataset, budget))
    ]


def _protocol(dataset: str, budget: str, data_dir: str) -> list[RunSpec]:
    base = _base(dataset, budget, data_dir)
    if budget == "small":
        base.update(PROTOCOL_SMALL.get(dataset, {}))
    return [
        RunSpec(resolve(dataset, algorithm=alg, seed=seed, **base, **over), {"variant": variant, "seed": seed})
        for seed in range(FULL_SEEDS)
        for alg in ("vanilla", "random", "guided")
        for variant, over in PROTOCOL_VARIANTS.items()
        if alg != "vanilla" or variant == "default"
    ]


def _every_algorithm(dataset: str, budget: str, data_dir: str) -> list[RunSpec]:
    """Table 1's protocol for every algorithm the registry knows, the methods beyond the paper included."""
    base = _base(dataset, budget, data_dir)
    return [
        RunSpec(resolve(dataset, algorithm=alg, seed=seed, **base), {"seed": seed})
        for seed in range(FULL_SEEDS if budget == "full" else SMALL[dataset].seeds)
        for alg in ALGORITHMS
    ]


STUDIES: dict[str, Study] = {
    s.name: s
    for s in (
        Study(
            "lr-greedy",
            "Fig. 2, Fig. A.2 (§5.2)",
            "d_util and d_speed of vanilla models over learning rates",
            _lr_study(("vanilla",), identical=True),
        ),
        Study("lr-vs-dutil", "Fig. A.3 (§5.2)", "d_util against the learning rate", _lr_study(("vanilla",), False)),
        Study(
            "guided-vs-vanilla",
            "Fig. 4 (§5.4)",
            "d_util of guided and vanilla models",
            _lr_study(("vanilla", "guided"), identical=False),
        ),
        Study(
            "random-vs-vanilla",
            "Fig. A.7 (§5.4)",
            "d_util of random and vanilla models",
            _lr_study(("vanilla", "random"), identical=False),
        ),
        Study("l1", "Fig. 3, Fig. A.4 (§5.3)", "|d_util| and |d_speed| against the L1 weight and R(f)", _l1),
        Study("window", "Fig. A.5", "sensitivity of guided training to the re-balancing window Q", _window),
        Study("tolerance", "Fig. A.6", "sensitivity of guided training to the imbalance tolerance alpha", _tolerance),
        Study(
            "protocol",
            "Table 1 (docs/fidelity.md)",
            "test accuracy under both evaluation protocols, with the reference code's gate means one at a time",
            _protocol,
        ),
        Study(
            "beyond-paper",
            "Table 1, extended (docs/results.md)",
            "d_util and d_speed of the paper's algorithms and of the later balancing methods",
            _every_algorithm,
        ),
    )
}


# --- expanding a study ------------------------------------------------------------------------------------------
@dataclass
class Plan:
    """A study expanded for this machine: the specs of every dataset present, and why others were skipped."""

    study: Study
    budget: str
    specs: list[RunSpec]
    skipped: dict[str, str]

    def manifest(self) -> dict:
        """What the figures need to know of the sweep beyond the records: members, swept values, pair kinds."""
        return {
            "study": self.study.name,
            "budget": self.budget,
            "figure": self.study.figure,
            "title": self.study.title,
            "datasets": sorted({s.cfg.dataset for s in self.specs}),
            "skipped": self.skipped,
            "runs": [
                {
                    "dir": f"{RUNS_DIR}/{s.name}",
                    "spec_hash": s.cfg.spec_hash(),
                    "dataset": s.cfg.dataset,
                    "algorithm": s.cfg.algorithm,
                    "modalities": s.cfg.modalities,
                    "pair": s.pair,
                    "params": s.params,
                }
                for s in self.specs
            ],
        }


def expand(name: str, budget: str = "full", data_dir: str | Path = "data", datasets: list[str] | None = None) -> Plan:
    """The run specs of study ``name`` on every dataset whose prepared file ``<data_dir>/<dataset>.h5`` exists
    (restricted to ``datasets`` if given); the others are listed in ``Plan.skipped`` with the reason."""
    if name not in STUDIES:
        raise ValueError(f"unknown study {name!r}; choose from {', '.join(STUDIES)}")
    if budget not in BUDGETS:
        raise ValueError(f"unknown budget {budget!r}; choose from {', '.join(BUDGETS)}")
    study = STUDIES[name]
    wanted = list(datasets) if datasets else list(LR_RANGES)
    specs: list[RunSpec] = []
    skipped: dict[str, str] = {}
    for dataset in wanted:
        if dataset not in LR_RANGES:
            skipped[dataset] = "no study settings for this dataset"
        elif not (Path(data_dir) / f"{dataset}.h5").exists():
            skipped[dataset] = f"no prepared data at {Path(data_dir) / f'{dataset}.h5'} (repro prep {dataset})"
        else:
            specs += study.build(dataset, budget, str(data_dir))
    for s in specs:
        s.cfg.progress = False  # sweeps log to files; epoch lines are enough
    hashes = [s.cfg.spec_hash() for s in specs]
    assert len(set(hashes)) == len(hashes), "a study must not list the same run twice"
    return Plan(study, budget, specs, skipped)
