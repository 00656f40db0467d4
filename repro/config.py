"""Run configuration: one dataclass, one registry of per-dataset defaults (the paper's settings, Table 1 / §5).

Every field can be overridden from the command line (``repro train --lr 0.1``); the record of each run carries
the full resolved configuration. Zero is a value, never "unset" (``None`` is unset), so nothing is silently dropped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field

from .registry import ALGORITHMS, DATASETS, algorithm
from .registry import dataset as dataset_spec

#: Names of the algorithms and the datasets (the registry's order).
ALGORITHM_NAMES = tuple(ALGORITHMS)
#: The paper's settings per dataset (§5.2, §5.4, Table 1) and, where the paper is silent, the reference code's (stop
#: after 100% training accuracy, 300-epoch cap, LR x0.3 after 10 epochs without training-loss improvement).
DATASET_DEFAULTS: dict[str, dict] = {name: dict(spec.defaults) for name, spec in DATASETS.items()}

# Fields that change how a run executes, not what it computes: excluded from the run's identity. ``compile`` is
# one: torch.compile runs the same operations (its fused kernels round differently, as another GPU would), so a
# compiled run may resume an eager one's checkpoint. ``precision`` is not: bf16 autocast computes other numbers.
RUNTIME_FIELDS = ("device", "threads", "progress", "workers", "compile")
#: Fields added after runs were recorded: left out of a run's identity while at this default, so those runs keep
#: their spec hash (and resume).
LATER_FIELDS = {
    "pretrained": "",
    "precision": "fp32",
    "l1": 0.0,
    "gate_mean": "regular-steps",
    "gate_mean_source": "own",
    **{  # the knobs of the methods beyond the paper (repro/algorithms/{ogm_ge,gblend,moddrop,pmr}.py)
        "ogm_alpha": 0.1,
        "ogm_noise": True,
        "ogm_start_epoch": 1,
        "ogm_end_epoch": 50,
        "gblend_super_epoch": 2,
        "gblend_holdout": 0.1,
        "moddrop_p": 0.5,
        "pmr_alpha": 1.0,
        "pmr_mu": 0.1,
        "pmr_momentum": 0.2,
        "pmr_entropy_epochs": 10,
        "pmr_proto_fraction": 0.1,
    },
}

PRECISIONS = ("fp32", "bf16")
GATE_MEANS = ("regular-steps", "all-passes")  # what re-balancing gate means average (repro.models.mmtm)
GATE_MEAN_SOURCES = ("own", "branch0")

#: ``--protocol``: one switch for the training behaviours of the gate means. ``paper`` is A.2 (our default);
#: ``reference`` is what the authors' code does (docs/fidelity.md): means over every forward pass, and branch 1's
#: mean taken from branch 0's gate.
PROTOCOLS: dict[str, dict[str, str]] = {
    "paper": {"gate_mean": "regular-steps", "gate_mean_source": "own"},
    "reference": {"gate_mean": "all-passes", "gate_mean_source": "branch0"},
}


@dataclass
class RunConfig:
    """Every hyper-parameter of one training run. Field docs are the CLI's help texts."""

    dataset: str = field(metadata={"help": "dataset name (cmnist, modelnet40, nvgesture)"})
    algorithm: str = field(default="vanilla", metadata={"help": " | ".join(ALGORITHMS)})
    seed: int = field(default=0, metadata={"help": "seed for initialisation, data order and random steps"})
    modalities: str = field(default="", metadata={"help": "comma-separated modality names m0,m1 (one for uni-modal)"})
    setting: str = field(
        default="",
        metadata={"help": "Table-1 column this run belongs to (default: the dataset; NVGesture: by --pretrained)"},
    )
    data: str = field(default="", metadata={"help": "prepared HDF5 file (default: data/<dataset>.h5)"})
    lr: float = field(default=0.01, metadata={"help": "SGD learning rate"})
    momentum: float = field(default=0.0, metadata={"help": "SGD momentum"})
    weight_decay: float = field(default=0.0, metadata={"help": "SGD weight decay"})
    l1: float = field(
        default=0.0,
        metadata={"help": "weight lambda of the L1 penalty lambda*||theta||_1 on all model parameters (§5.3)"},
    )
    batch_size: int = field(default=128, metadata={"help": "training batch size"})
    max_epochs: int = field(default=300, metadata={"help": "cap on training epochs"})
    stop_patience: int = field(
        default=5, metadata={"help": "stop after this many consecutive epochs at 100% training accuracy"}
    )
    lr_plateau_factor: float = field(
        default=0.3, metadata={"help": "LR factor when the training loss plateaus (1 disables)"}
    )
    lr_plateau_patience: int = field(default=10, metadata={"help": "epochs without training-loss improvement"})
    alpha: float = field(default=0.1, metadata={"help": "imbalance tolerance alpha (Alg. 1)"})
    window: int = field(default=5, metadata={"help": "re-balancing window size Q (Alg. 1)"})
    warmup_epochs: int = field(default=1, metadata={"help": "epochs of regular steps only (Alg. 1, A.3)"})
    log_base: float = field(default=10.0, metadata={"help": "base of the log in Def. 4.1 (reference code: 10)"})
    rubi_bias_modality: int = field(default=0, metadata={"help": "modality whose features feed RUBi's bias branch"})
    train_limit: int = field(default=0, metadata={"help": "use only the first N training samples (0: all)"})
    eval_limit: int = field(default=0, metadata={"help": "use only the first N val/test samples (0: all)"})
    gate_mean: str = field(
        default="regular-steps",
        metadata={
            "help": "what a re-balancing step's gate means average: regular-steps (A.2) | all-passes (the reference "
            "code: every forward pass, evaluation included)"
        },
    )
    gate_mean_source: str = field(
        default="own",
        metadata={
            "help": "branch 1's gate mean from its own gate (own) or from branch 0's (branch0: the reference code's "
            "defect; needs equal widths)"
        },
    )
    # --- methods beyond the paper; each field's help names the method and where its default comes from ---
    ogm_alpha: float = field(
        default=0.1, metadata={"help": "OGM-GE: alpha of the coefficient 1 - tanh(alpha (rho - 1)) (Peng et al. 2022)"}
    )
    ogm_noise: bool = field(
        default=True, metadata={"help": "OGM-GE: add the generalisation-enhancement noise N(0, std(g)^2) (GE)"}
    )
    ogm_start_epoch: int = field(default=1, metadata={"help": "OGM-GE: first epoch with modulation"})
    ogm_end_epoch: int = field(default=50, metadata={"help": "OGM-GE: last epoch with modulation (0: never stops)"})
    gblend_super_epoch: int = field(
        default=2,
        metadata={"help": "G-Blending: epochs per super-epoch, after which the loss weights are re-estimated"},
    )
    gblend_holdout: float = field(
        default=0.1,
        metadata={"help": "G-Blending: fraction of the training split held out (never trained on) to estimate OGR"},
    )
    moddrop_p: float = field(
        default=0.5, metadata={"help": "ModDrop: probability that a step drops one modality's input (drawn uniformly)"}
    )
    pmr_alpha: float = field(
        default=1.0, metadata={"help": "PMR: weight alpha of the slow modality's prototype cross-entropy"}
    )
    pmr_mu: float = field(default=0.1, metadata={"help": "PMR: weight mu of the dominant modality's entropy term"})
    pmr_momentum: float = field(default=0.2, metadata={"help": "PMR: weight of the old prototypes in their update"})
    pmr_entropy_epochs: int = field(
        default=10, metadata={"help": "PMR: the entropy regulariser acts in epochs 1..N (the early stage)"}
    )
    pmr_proto_fraction: float = field(
        default=0.1, metadata={"help": "PMR: fraction of the training batches the prototypes are computed from"}
    )
    precision: str = field(
        default="fp32",
        metadata={"help": "fp32 | bf16 (autocast for forward and loss; fp32, the default, for reproduction)"},
    )
    compile: bool = field(default=False, metadata={"help": "torch.compile the model (runtime option)"})
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda | cuda:N"})
    threads: int = field(default=0, metadata={"help": "torch CPU threads (0: torch's default)"})
    progress: bool = field(default=True, metadata={"help": "progress bars on a terminal (epoch lines always)"})
    pretrained: str = field(
        default="",
        metadata={
            "help": "NVGesture: Kinetics-pretrained I3D weights (rgb_imagenet.pt of pytorch-i3d); empty: from scratch"
        },
    )
    workers: int = field(
        default=4,
        metadata={"help": "data-loader processes for datasets read from disk during training (NVGesture); 0: none"},
    )

    @property
    def modality_names(self) -> tuple[str, ...]:
        return tuple(m.strip() for m in self.modalities.split(",") if m.strip())

    def identity(self) -> dict:
        """The fields that determine what the run computes (resuming requires they match)."""
        d = dataclasses.asdict(self)
        for k in RUNTIME_FIELDS:
            d.pop(k)
        for k, default in LATER_FIELDS.items():
            if d[k] == default:
                d.pop(k)
        return d

    def spec_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:12]


def default_setting(cfg: RunConfig) -> str:
    """The Table-1 setting of a run given no --setting: the dataset's name; NVGesture has two (§5.4)."""
    if cfg.dataset == "nvgesture":
        return "nvgesture-pretrained" if cfg.pretrained else "nvgesture-scratch"
    return cfg.dataset


def _protocol_values(protocol: str | None, overrides: dict) -> dict:
    """The gate-mean fields ``--protocol`` sets; an explicit, different ``--gate-mean(-source)`` is an error."""
    if protocol is None:
        return {}
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")
    values = PROTOCOLS[protocol]
    for key, value in values.items():
        if overrides.get(key) not in (None, value):
            raise ValueError(
                f"--protocol {protocol} sets --{key.replace('_', '-')} {value}, not "
                f"{overrides[key]}; give one or the other"
            )
    return dict(values)


def resolve(dataset: str, protocol: str | None = None, **overrides) -> RunConfig:
    """Defaults of the dataclass, then the dataset's paper settings, then ``protocol``'s gate-mean fields
    (:data:`PROTOCOLS`), then the caller's non-None overrides."""
    values = dict(dataset_spec(dataset).defaults)
    values.update(_protocol_values(protocol, overrides))
    values.update({k: v for k, v in overrides.items() if v is not None})
    cfg = RunConfig(dataset=dataset, **values)
    spec = algorithm(cfg.algorithm)
    cfg.setting = cfg.setting or default_setting(cfg)
    if cfg.setting.startswith("nvgesture-") and cfg.setting != default_setting(cfg):
        raise ValueError(
            f"--setting {cfg.setting} "
            + ("needs --pretrained" if not cfg.pretrained else "is from scratch: drop --pretrained")
        )
    cfg.data = cfg.data or f"data/{dataset}.h5"
    n = len(cfg.modality_names)
    if n not in (1, 2):
        raise ValueError(f"--modalities takes one or two names, got {cfg.modalities!r}")
    if n == 1 and spec.needs_two_modalities:
        raise ValueError(f"algorithm {cfg.algorithm!r} needs two modalities; uni-modal runs use vanilla")
    check_algorithm_fields(cfg)
    return cfg


def check_algorithm_fields(cfg: RunConfig) -> None:
    """A ValueError for a value out of range among the fields an algorithm reads (also for configurations made
    outside :func:`resolve`, e.g. by :func:`repro.api.make_algorithm`)."""
    if cfg.precision not in PRECISIONS:
        raise ValueError(f"unknown precision {cfg.precision!r}; choose from {', '.join(PRECISIONS)}")
    if cfg.gate_mean not in GATE_MEANS:
        raise ValueError(f"unknown gate mean {cfg.gate_mean!r}; choose from {', '.join(GATE_MEANS)}")
    if cfg.gate_mean_source not in GATE_MEAN_SOURCES:
        raise ValueError(
            f"unknown gate-mean source {cfg.gate_mean_source!r}; choose from {', '.join(GATE_MEAN_SOURCES)}"
        )
    if cfg.rubi_bias_modality not in (0, 1):
        raise ValueError("rubi_bias_modality must be 0 or 1")
    for name in ("gblend_holdout", "moddrop_p", "pmr_momentum"):
        if not 0.0 <= getattr(cfg, name) < 1.0:
            raise ValueError(f"--{name.replace('_', '-')} must be in [0, 1), got {getattr(cfg, name)}")
    if not 0.0 < cfg.pmr_proto_fraction <= 1.0:
        raise ValueError(f"--pmr-proto-fraction must be in (0, 1], got {cfg.pmr_proto_fraction}")
    if cfg.algorithm == "gblend" and cfg.gblend_holdout <= 0.0:
        raise ValueError("G-Blending needs a held-out part of the training split: --gblend-holdout > 0")
    if cfg.gblend_super_epoch < 1:
        raise ValueError(f"--gblend-super-epoch must be at least 1, got {cfg.gblend_super_epoch}")


def from_dict(d: dict) -> RunConfig:
    """Rebuild a config from a record (unknown keys are an error: the record is from another version)."""
    names = {f.name for f in dataclasses.fields(RunConfig)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"config has unknown fields {sorted(unknown)}")
    return RunConfig(**d)
