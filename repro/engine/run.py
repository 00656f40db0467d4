"""One run's lifecycle (§2, §5): start or resume, the end of each epoch, the stop rule, the kept checkpoints, the test
evaluation, failure or interruption. Who trains the epoch is a stepper's job (:mod:`.single`, :mod:`.packed`); the
loop over epochs is :mod:`.loop`'s.

SGD runs until the training accuracy has been 100% for ``stop_patience`` consecutive epochs (or ``max_epochs``),
keeping the checkpoint with the best validation accuracy, then evaluating that checkpoint on the test set: accuracy of
y_hat, of each branch f0, f1, of the uni-modal f'0, f'1 (A.1), the conditional utilization rates (Def. 2.1) and
d_speed at the kept epoch (Def. 4.1). Model selection never sees the test set.

Two evaluation protocols, from one training (docs/fidelity.md). *Standard* (``test``, the paper's text): every
validation and test pass with regular fusion. *Reference* (``test_reference``, what the authors' code computes): each
epoch's validation pass in the fusion the algorithm would take next (its training state, e.g. guided's re-balancing
window), a checkpoint kept on that accuracy, and that checkpoint tested in the state it was validated in. The second
validation pass runs in evaluation mode, so it changes no training step.

Resume: after every epoch the full training state is checkpointed and the record rewritten (atomically). Every
epoch's randomness (data order, random re-balancing steps, dropout) is seeded from (seed, epoch), so a run killed at
any moment and started again with the same command redoes the interrupted epoch exactly and ends with the record an
uninterrupted run would have written (timings aside, which live under ``timing``).
"""

from __future__ import annotations

import math
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..algorithms import ALGORITHMS, Algorithm, AlgorithmData, seed_for
from ..api import utilization_rates
from ..config import RunConfig
from ..data import DatasetBundle, hold_out, load_dataset
from ..metrics.sparsity import small_weight_fraction
from ..metrics.utilization import branch_accuracies
from ..models import build_model
from ..models.fusion import REGULAR, fusion_for_state
from ..models.mmtm import configure_gate_means
from ..rundir import (
    BEST_NAME,
    BEST_REFERENCE_NAME,
    CHECKPOINT_NAME,
    DONE_NAME,
    RECORD_NAME,
    RUN_FILES,
    new_record,
    read_json,
    write_json,
)
from .checkpoint import load_torch, save_torch, versions
from .device import make_deterministic, pick_device

TEST_KEYS = (
    "acc",
    "acc_branch0",
    "acc_branch1",
    "acc_branch0_unimodal",
    "acc_branch1_unimodal",
    "u_m1_given_m0",
    "u_m0_given_m1",
    "d_util",
    "d_speed",
)


class RunConflict(RuntimeError):
    """The output directory holds a run with another configuration."""


@dataclass
class Environment:
    """What the runs of one process share: threads, deterministic kernels, the device and the data on it."""

    device: torch.device
    bundle: DatasetBundle
    splits: dict
    eval_batch_size: int

    @classmethod
    def open(cls, cfg: RunConfig) -> Environment:
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        make_deterministic()
        device = pick_device(cfg.device)
        bundle = load_dataset(
            cfg.dataset, cfg.data, cfg.modality_names, cfg.train_limit, cfg.eval_limit, workers=cfg.workers
        )
        splits = {k: v.to(device) for k, v in bundle.splits.items()}
        # With the reference code's all-passes gate means every evaluation pass weighs one in them, so evaluation
        # batches are the training batches' size, as the reference code's loaders are; else a memory setting only.
        eval_batch_size = cfg.batch_size if cfg.gate_mean == "all-passes" else bundle.eval_batch_size
        return cls(device, bundle, splits, eval_batch_size)


@dataclass
class Progress:
    """Where a run stands: the last completed epoch and the stop rule's count."""

    epoch: int = 0
    epochs_at_100pct: int = 0  # consecutive epochs at 100% training accuracy


@dataclass
class EpochTally:
    """What a stepper counted over one training epoch of one run."""

    loss_sum: float  # sum over the samples of the training loss
    correct: int  # samples whose y_hat was right
    samples: int
    steps: int
    step_kinds: list[int] = field(default_factory=lambda: [0, 0, 0])  # regular, re-balance m0, re-balance m1


class Run:
    """One run in ``out_dir``. ``finished_record()`` says whether it is done; ``build`` and ``start`` prepare it to
    train; a stepper trains its epochs; ``end_epoch`` after each; ``finish`` or ``fail`` at the end."""

    def __init__(self, cfg: RunConfig, out_dir: str | Path, force: bool = False, label: str = ""):
        self.cfg, self.out, self.force = cfg, Path(out_dir), force
        self.label = label  # prefix of the epoch lines (a pack names its runs)
        self.record_path = self.out / RECORD_NAME
        self.device: torch.device | None = None
        self.env: Environment | None = None
        self.model: torch.nn.Module | None = None
        self.algorithm: Algorithm | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.train_split = None  # the training split it trains on (less a held-out part for some algorithms)
        self.scheduler = None
        self.record: dict | None = None
        self.progress = Progress()
        self.finished = False

    # --- set-up -------------------------------------------------------------------------------------------------
    def finished_record(self) -> dict | None:
        """The finished record if this exact run is done; raise if the folder holds another run."""
        if not self.record_path.exists():
            return None
        record = read_json(self.record_path)
        if record.get("spec_hash") != self.cfg.spec_hash():
            if self.force:
                for name in RUN_FILES:
                    (self.out / name).unlink(missing_ok=True)
                return None
            raise RunConflict(
                f"{self.out} holds another run (spec {record.get('spec_hash')}, this one "
                f"{self.cfg.spec_hash()}); choose another --out or pass --force to replace it"
            )
        if record.get("status") != "done":
            return None
        (self.out / DONE_NAME).touch()
        self.record, self.finished = record, True
        return record

    def build(self, in_channels: tuple[int, ...], num_classes: int, device: torch.device) -> None:
        """Model, algorithm, optimizer and scheduler on ``device``, initialised from the run's seed."""
        cfg = self.cfg
        self.device = device
        torch.manual_seed(seed_for(cfg.seed, "init"))
        model = build_model(cfg.dataset, in_channels, num_classes, pretrained=cfg.pretrained)
        configure_gate_means(model, cfg.gate_mean, cfg.gate_mean_source)
        # channels_last suits the 2-D CNNs; a model with 5-D (video) weights names its own layout.
        model = model.to(device, memory_format=getattr(model, "memory_format", torch.channels_last))
        if cfg.compile:
            model.compile()  # in place: parameter and state-dict names stay those of the eager model
        self.algorithm = ALGORITHMS[cfg.algorithm](model, cfg).to(device)
        self.model = model
        self.optimizer = torch.optim.SGD(
            self.algorithm.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
        self.scheduler = None
        if cfg.lr_plateau_factor != 1.0:
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer,
                mode="min",
                factor=cfg.lr_plateau_factor,
                patience=cfg.lr_plateau_patience,
                threshold=1e-3,
                min_lr=1e-6,
            )

    def prepare(self, env: Environment) -> bool:
        """Build on ``env`` and load the run's checkpoint if it has one (True: resumed); writes nothing."""
        self.env = env
        self.build(env.bundle.in_channels, env.bundle.num_classes, env.device)
        self.train_split, holdout = env.splits["train"], None
        if self.algorithm.holdout_fraction > 0:
            fraction, seed = self.algorithm.holdout_fraction, seed_for(self.cfg.seed, "holdout")
            self.train_split, holdout = hold_out(self.train_split, fraction, seed)
        self.algorithm.data = AlgorithmData(self.train_split, holdout, env.eval_batch_size)
        return self._restore()

    def start(self, env: Environment, pack_size: int = 1) -> None:
        """:meth:`prepare`, then a new record unless resumed; the record says running (and how many runs trained
        together, under ``timing``)."""
        if self.prepare(env):
            print(f"{self.label or self.out}: resuming after epoch {self.progress.epoch}")
        else:
            provenance = {k: str(v) for k, v in env.bundle.provenance.items()}
            self.record = new_record(self.cfg, device=str(env.device), data_provenance=provenance, versions=versions())
        self.record.update(status="running", error=None, device=str(env.device))
        self.record["timing"]["pack_size"] = pack_size
        write_json(self.record_path, self.record)

    def _restore(self) -> bool:
        path = self.out / CHECKPOINT_NAME
        if not path.exists():
            return False
        state = load_torch(path, self.device)
        if state["spec_hash"] != self.cfg.spec_hash():
            return False
        self.algorithm.load_state_dict(state["algorithm"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.record = state["record"]
        self.progress = Progress(state["epoch"], state["streak"])
        return True

    # --- the epochs ---------------------------------------------------------------------------------------------
    def stop_reason(self) -> str | None:
        """Why training ends now (the stop rule of §5), or None to train another epoch."""
        if self.progress.epochs_at_100pct >= self.cfg.stop_patience:
            return "train_acc_100"
        if self.progress.epoch >= self.cfg.max_epochs:
            return "max_epochs"
        return None

    def end_epoch(self, tally: EpochTally, started: float) -> None:
        """After a stepper trained epoch ``progress.epoch + 1``: the epoch's statistics (validation under both
        protocols included), the stop rule's count, the LR schedule, the best checkpoints (one per protocol), the
        checkpoint and the record."""
        epoch = self.progress.epoch + 1
        kinds = tally.step_kinds
        lr, train_loss = self.optimizer.param_groups[0]["lr"], tally.loss_sum / tally.samples
        d_speed = self.algorithm.d_speed()
        if not math.isfinite(train_loss) or (d_speed is not None and not math.isfinite(d_speed)):
            self._diverged(epoch, lr, train_loss, d_speed)
            return
        validation, has_training_state = self._validate(epoch)
        stats = {
            "epoch": epoch,
            "lr": lr,
            "steps": tally.steps,
            "train_loss": train_loss,
            "train_acc": 100.0 * tally.correct / tally.samples,
            **validation,
            "d_speed": d_speed,
            "rebalance_steps": kinds[1] + kinds[2],
            "rebalance_steps_m0": kinds[1],
            "rebalance_steps_m1": kinds[2],
        }
        if extra := self.algorithm.epoch_stats():
            stats["algorithm"] = extra
        all_correct = tally.correct == tally.samples
        self.progress = Progress(epoch, self.progress.epochs_at_100pct + 1 if all_correct else 0)
        if self.scheduler is not None:
            self.scheduler.step(stats["train_loss"])
        self._keep_best(epoch, stats, has_training_state)
        record = self.record
        record["epochs"].append(stats)
        record["timing"]["epoch_seconds"].append(round(time.perf_counter() - started, 3))
        save_torch(self.out / CHECKPOINT_NAME, self._checkpoint())
        write_json(self.record_path, record)
        print(f"[{self.label}] " * bool(self.label) + _epoch_line(stats), flush=True)

    def _diverged(self, epoch: int, lr: float, train_loss: float, d_speed: float | None) -> None:
        """A non-finite training loss (or d_speed, which Alg. 1 steers by) ends the run as failed, at this epoch:
        nothing after it would mean anything. The epoch is not recorded; the record says what diverged and what
        to try."""
        what = f"the training loss is {train_loss}" if not math.isfinite(train_loss) else f"d_speed is {d_speed}"
        hint = "a smaller --lr" + (" or --precision fp32" if self.cfg.precision != "fp32" else "")
        self.record.update(status="failed", error=f"Diverged: in epoch {epoch}, {what} (lr {lr:g}); try {hint}")
        write_json(self.record_path, self.record)
        print(f"[{self.label}] " * bool(self.label) + f"epoch {epoch:3d}  {self.record['error']}", flush=True)
        self.finished = True

    def _validate(self, epoch: int) -> tuple[dict, bool]:
        """Validation after ``epoch`` under both protocols: ``val_*`` with regular fusion (standard) and
        ``val_reference_*`` in the training state ``eval_state`` (the fusion of the algorithm's next step), and
        whether the algorithm has a training state. One without (vanilla, RUBi) needs no second pass: its two
        results are equal."""
        env = self.env
        batches = env.splits["val"].batches
        val = branch_accuracies(self.model, batches(env.eval_batch_size), unimodal=False)
        fusion = self.algorithm.evaluation_fusion(epoch)
        reference = (
            val
            if fusion is None
            else branch_accuracies(self.model, batches(env.eval_batch_size), unimodal=False, fusion=fusion)
        )
        stats = {
            **{f"val_{k}": v for k, v in val.items()},
            "eval_state": (fusion or REGULAR).state,
            **{f"val_reference_{k}": v for k, v in reference.items()},
        }
        return stats, fusion is not None

    def _keep_best(self, epoch: int, stats: dict, has_training_state: bool) -> None:
        record = self.record
        if record["best_val_acc"] is None or stats["val_acc"] > record["best_val_acc"]:
            record.update(best_epoch=epoch, best_val_acc=stats["val_acc"])
            save_torch(self.out / BEST_NAME, {"epoch": epoch, "model": self.model.state_dict()})
        best_reference = record.get("best_reference_val_acc")
        if best_reference is None or stats["val_reference_acc"] > best_reference:
            record.update(best_reference_epoch=epoch, best_reference_val_acc=stats["val_reference_acc"])
            if has_training_state:  # else best.pt is this checkpoint too
                save_torch(
                    self.out / BEST_REFERENCE_NAME,
                    {"epoch": epoch, "state": stats["eval_state"], "model": self.model.state_dict()},
                )

    def _checkpoint(self) -> dict:
        return {
            "spec_hash": self.cfg.spec_hash(),
            "epoch": self.progress.epoch,
            "streak": self.progress.epochs_at_100pct,
            "record": self.record,
            "algorithm": self.algorithm.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
        }

    # --- the end ------------------------------------------------------------------------------------------------
    def finish(self, stop: str) -> None:
        """Test the kept checkpoints under both protocols; the record is done."""
        started = time.perf_counter()
        record = self.record
        record.update(stopped=stop, test=self._test())
        record.update(test_reference=self._test_reference(), status="done")
        record["timing"]["test_seconds"] = round(time.perf_counter() - started, 3)
        write_json(self.record_path, record)
        (self.out / DONE_NAME).touch()
        self.finished = True

    def fail(self, exc: BaseException) -> None:
        """Record why training stopped. An interruption (Ctrl-C, SystemExit) is not a failure of the run: a sweep
        resumes it, as after a kill."""
        if self.record is None or self.finished:
            return
        status = "failed" if isinstance(exc, Exception) else "interrupted"
        self.record.update(status=status, error="".join(traceback.format_exception_only(type(exc), exc)).strip())
        write_json(self.record_path, self.record)

    def _test(self) -> dict:
        """Evaluate the kept checkpoint: Def. 2.1 on the test set, with A.1's means from the training set."""
        env = self.env
        best = load_torch(self.out / BEST_NAME, self.device)
        self.model.load_state_dict(best["model"])
        train, test = (env.splits[name].batches(env.eval_batch_size) for name in ("train", "test"))
        result = dict.fromkeys(TEST_KEYS)
        if self.model.mmtms():  # the public API's function (repro.utilization_rates): one path for both
            result.update(utilization_rates(self.model, train, test))
            result["d_speed"] = self.record["epochs"][best["epoch"] - 1]["d_speed"]  # d_speed(f; T), T = kept step
        else:
            result.update(branch_accuracies(self.model, test, unimodal=False))
        result["r_f"] = small_weight_fraction(self.model)
        return result

    def _test_reference(self) -> dict:
        """The reference code's Table-1 number: the checkpoint with the best validation accuracy in its training
        state, evaluated on test in that same state (accuracy of y_hat and of each branch)."""
        path = self.out / BEST_REFERENCE_NAME
        if not path.exists():  # no training state (vanilla, RUBi): the standard checkpoint, regular fusion
            test = self.record["test"]
            return {
                "acc": test["acc"],
                "acc_branch0": test["acc_branch0"],
                "acc_branch1": test["acc_branch1"],
                "state": REGULAR.state,
                "epoch": self.record["best_epoch"],
            }
        env = self.env
        best = load_torch(path, self.device)
        self.model.load_state_dict(best["model"])
        test = branch_accuracies(
            self.model,
            env.splits["test"].batches(env.eval_batch_size),
            unimodal=False,
            fusion=fusion_for_state(best["state"]),
        )
        result = {"acc": None, "acc_branch0": None, "acc_branch1": None}
        result.update(test)
        return {**result, "state": best["state"], "epoch": best["epoch"]}


def _epoch_line(s: dict) -> str:
    line = f"epoch {s['epoch']:3d}  loss {s['train_loss']:.4f}  train {s['train_acc']:6.2f}%  val {s['val_acc']:6.2f}%"
    if s.get("eval_state", "regular") != "regular":
        line += f" ({s['val_reference_acc']:6.2f}% {s['eval_state']})"
    if s.get("d_speed") is not None:
        line += f"  d_speed {s['d_speed']:+.3f}  rebalance {s['rebalance_steps']}"
    return line
