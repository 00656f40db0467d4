"""The training loop (§2, §5): SGD until the training accuracy has been 100% for ``stop_patience`` consecutive
epochs (or ``max_epochs``), keeping the checkpoint with the best validation accuracy, then evaluating that
checkpoint on the test set: accuracy of y_hat, of each branch f0, f1, of the uni-modal f'0, f'1 (A.1), the
conditional utilization rates (Def. 2.1) and d_speed at the kept epoch (Def. 4.1). Model selection never sees
the test set.

Two evaluation protocols, from one training (docs/fidelity.md). *Standard* (``test``, the paper's text): every
validation and test pass with regular fusion. *Reference* (``test_reference``, what the authors' code computes): each
epoch's validation pass in the fusion the algorithm would take next (its training state, e.g. guided's re-balancing
window), a checkpoint kept on that accuracy, and that checkpoint tested in the state it was validated in. The second
validation pass runs in evaluation mode, so it changes no training step.

Resume: after every epoch the full training state is checkpointed and the record rewritten (atomically).
Every epoch's randomness (data order, random re-balancing steps, dropout) is seeded from (seed, epoch), so a run
killed at any moment and started again with the same command redoes the interrupted epoch exactly and ends with
the record an uninterrupted run would have written (timings aside, which live under ``timing``).
"""

from __future__ import annotations

import os
import time
import traceback
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..algorithms import ALGORITHMS, Algorithm, seed_for
from ..config import RunConfig
from ..data import DatasetBundle, load_dataset
from ..metrics.utilization import branch_accuracies, compute_squeeze_means, utilization_rates
from ..models import build_model
from ..models.fusion import REGULAR, fusion_for_state
from ..models.mmtm import configure_gate_means
from ..rundir import (
    BEST_NAME,
    BEST_REFERENCE_NAME,
    CHECKPOINT_NAME,
    DONE_NAME,
    RECORD_NAME,
    load_torch,
    read_json,
    save_torch,
    versions,
    write_json,
)

SMALL_WEIGHT = 1e-7  # R(f) counts parameters below this magnitude (§5.3)


class RunConflict(RuntimeError):
    """The output directory holds a run with another configuration."""


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    return device


def make_deterministic() -> None:
    """Deterministic kernels (exact on CPU; on CUDA, best effort: ops without a deterministic kernel warn)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


class Trainer:
    """One run: ``Trainer(cfg, out_dir).run()`` trains (or resumes, or returns a finished record)."""

    def __init__(self, cfg: RunConfig, out_dir: str | Path, force: bool = False):
        self.cfg, self.out, self.force = cfg, Path(out_dir), force
        self.record_path = self.out / RECORD_NAME

    # --- set-up -------------------------------------------------------------------------------------------
    def _check_existing(self) -> dict | None:
        """The finished record if this exact run is done; raise if the folder holds another run."""
        if not self.record_path.exists():
            return None
        record = read_json(self.record_path)
        if record.get("spec_hash") != self.cfg.spec_hash():
            if self.force:
                for name in (DONE_NAME, RECORD_NAME, CHECKPOINT_NAME, BEST_NAME, BEST_REFERENCE_NAME):
                    (self.out / name).unlink(missing_ok=True)
                return None
            raise RunConflict(
                f"{self.out} holds another run (spec {record.get('spec_hash')}, this one "
                f"{self.cfg.spec_hash()}); choose another --out or pass --force to replace it"
            )
        if record.get("status") != "done":
            return None
        (self.out / DONE_NAME).touch()
        return record

    def _build(self) -> None:
        cfg = self.cfg
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        make_deterministic()
        self.device = pick_device(cfg.device)
        bundle: DatasetBundle = load_dataset(
            cfg.dataset, cfg.data, cfg.modality_names, cfg.train_limit, cfg.eval_limit, workers=cfg.workers
        )
        self.splits = {k: v.to(self.device) for k, v in bundle.splits.items()}
        # With the reference code's all-passes gate means every evaluation pass weighs one in them, so evaluation
        # batches are the training batches' size, as the reference code's loaders are; else a memory setting only.
        self.eval_batch_size = cfg.batch_size if cfg.gate_mean == "all-passes" else bundle.eval_batch_size
        self.data_provenance = {k: str(v) for k, v in bundle.provenance.items()}
        self._build_model(bundle)

    def _build_model(self, bundle: DatasetBundle) -> None:
        """Model, algorithm, optimizer and scheduler on ``self.device`` (also used by ``repro.engine.packed``)."""
        cfg = self.cfg
        torch.manual_seed(seed_for(cfg.seed, "init"))
        model = build_model(cfg.dataset, bundle.in_channels, bundle.num_classes, pretrained=cfg.pretrained)
        configure_gate_means(model, cfg.gate_mean, cfg.gate_mean_source)
        # channels_last suits the 2-D CNNs; a model with 5-D (video) weights names its own layout.
        model = model.to(self.device, memory_format=getattr(model, "memory_format", torch.channels_last))
        if cfg.compile:
            model.compile()  # in place: parameter and state-dict names stay those of the eager model
        self.algorithm: Algorithm = ALGORITHMS[cfg.algorithm](model, cfg).to(self.device)
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

    def _new_record(self) -> dict:
        cfg = self.cfg
        return {
            "dataset": cfg.dataset,
            "setting": cfg.setting,
            "algorithm": cfg.algorithm,
            "seed": cfg.seed,
            "modalities": list(cfg.modality_names),
            "spec_hash": cfg.spec_hash(),
            "config": asdict(cfg),
            "versions": versions(),
            "data_provenance": self.data_provenance,
            "device": str(self.device),
            "status": "running",
            "error": None,
            "epochs": [],
            "best_epoch": None,
            "best_val_acc": None,
            "stopped": None,
            "test": None,
            "best_reference_epoch": None,
            "best_reference_val_acc": None,
            "test_reference": None,
            "timing": {"epoch_seconds": [], "test_seconds": None},
        }

    # --- the loop -------------------------------------------------------------------------------------------
    def _train_epoch(self, epoch: int) -> dict:
        cfg, alg = self.cfg, self.algorithm
        torch.manual_seed(seed_for(cfg.seed, "epoch", epoch))
        order = torch.Generator().manual_seed(seed_for(cfg.seed, "data", epoch))
        alg.begin_epoch(epoch)
        alg.train()
        train = self.splits["train"]
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        kinds = torch.zeros(3, dtype=torch.long, device=self.device)  # regular, re-balance m0, re-balance m1
        steps = 0
        batches = train.batches(cfg.batch_size, generator=order)
        total = -(-len(train) // cfg.batch_size)
        # disable=None: a bar on a terminal, none in a log file (cluster jobs); epoch lines are printed anyway.
        bar = tqdm(
            batches,
            total=total,
            desc=f"epoch {epoch}",
            leave=False,
            unit="step",
            disable=None if cfg.progress else True,
        )
        for inputs, y in bar:
            result = alg.training_step(inputs, y, self.optimizer)
            loss_sum += result.loss.double() * y.shape[0]
            correct += (result.prediction.argmax(1) == y).sum()
            code = result.fusion.code  # an int (host-decided step) or a device tensor (no sync either way)
            if isinstance(code, int):
                kinds[code + 1] += 1
            else:
                kinds += F.one_hot(code + 1, 3)
            steps += 1
        n = len(train)
        n_correct = int(correct)
        rebalance = kinds[1:].tolist()
        return {
            "epoch": epoch,
            "lr": self.optimizer.param_groups[0]["lr"],
            "steps": steps,
            "train_loss": float(loss_sum) / n,
            "train_acc": 100.0 * n_correct / n,
            "train_all_correct": n_correct == n,
            **self._validate(epoch),
            "d_speed": alg.d_speed(),
            "rebalance_steps": sum(rebalance),
            "rebalance_steps_m0": rebalance[0],
            "rebalance_steps_m1": rebalance[1],
        }

    def _validate(self, epoch: int) -> dict:
        """Validation after ``epoch`` under both protocols: ``val_*`` with regular fusion (standard) and
        ``val_reference_*`` in the training state ``eval_state`` (the fusion of the algorithm's next step). An
        algorithm without a training state (vanilla, RUBi) needs no second pass: its two results are equal."""
        batches = self.splits["val"].batches
        val = branch_accuracies(self.model, batches(self.eval_batch_size), unimodal=False)
        fusion = self.algorithm.evaluation_fusion(epoch)
        reference = (
            val
            if fusion is None
            else branch_accuracies(self.model, batches(self.eval_batch_size), unimodal=False, fusion=fusion)
        )
        return {
            **{f"val_{k}": v for k, v in val.items()},
            "eval_state": (fusion or REGULAR).state,
            **{f"val_reference_{k}": v for k, v in reference.items()},
            "has_training_state": fusion is not None,
        }

    def _state(self, epoch: int, record: dict, streak: int) -> dict:
        return {
            "spec_hash": self.cfg.spec_hash(),
            "epoch": epoch,
            "streak": streak,
            "record": record,
            "algorithm": self.algorithm.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
        }

    def _restore(self) -> tuple[int, dict, int] | None:
        path = self.out / CHECKPOINT_NAME
        if not path.exists():
            return None
        state = load_torch(path, self.device)
        if state["spec_hash"] != self.cfg.spec_hash():
            return None
        self.algorithm.load_state_dict(state["algorithm"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        return state["epoch"], state["record"], state["streak"]

    def _finished(self, epoch: int, streak: int) -> str | None:
        if streak >= self.cfg.stop_patience:
            return "train_acc_100"
        if epoch >= self.cfg.max_epochs:
            return "max_epochs"
        return None

    def _test(self, record: dict) -> dict:
        """Evaluate the kept checkpoint: Def. 2.1 on the test set, with A.1's means from the training set."""
        best = load_torch(self.out / BEST_NAME, self.device)
        self.model.load_state_dict(best["model"])
        two_branch = bool(self.model.mmtms())
        if two_branch:
            compute_squeeze_means(self.model, self.splits["train"].batches(self.eval_batch_size))
        test = branch_accuracies(self.model, self.splits["test"].batches(self.eval_batch_size), unimodal=two_branch)
        keys = [
            "acc",
            "acc_branch0",
            "acc_branch1",
            "acc_branch0_unimodal",
            "acc_branch1_unimodal",
            "u_m1_given_m0",
            "u_m0_given_m1",
            "d_util",
            "d_speed",
        ]
        result = dict.fromkeys(keys)
        result.update(test)
        result["r_f"] = small_weight_fraction(self.model)
        if two_branch:
            result.update(utilization_rates(test))
            result["d_speed"] = record["epochs"][best["epoch"] - 1]["d_speed"]  # d_speed(f; T), T = kept step
        return result

    def _end_epoch(self, epoch: int, stats: dict, record: dict, streak: int, start: float) -> int:
        """Stop-rule streak, LR schedule, best checkpoints (one per protocol), checkpoint and record after an epoch;
        the new streak."""
        streak = streak + 1 if stats.pop("train_all_correct") else 0
        has_training_state = stats.pop("has_training_state")
        if self.scheduler is not None:
            self.scheduler.step(stats["train_loss"])
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
        record["epochs"].append(stats)
        record["timing"]["epoch_seconds"].append(round(time.perf_counter() - start, 3))
        save_torch(self.out / CHECKPOINT_NAME, self._state(epoch, record, streak))
        write_json(self.record_path, record)
        print(_epoch_line(stats), flush=True)
        return streak

    def _test_reference(self, record: dict) -> dict:
        """The reference code's Table-1 number: the checkpoint with the best validation accuracy in its training
        state, evaluated on test in that same state (accuracy of y_hat and of each branch)."""
        path = self.out / BEST_REFERENCE_NAME
        if not path.exists():  # no training state (vanilla, RUBi): the standard checkpoint, regular fusion
            test = record["test"]
            return {
                "acc": test["acc"],
                "acc_branch0": test["acc_branch0"],
                "acc_branch1": test["acc_branch1"],
                "state": REGULAR.state,
                "epoch": record["best_epoch"],
            }
        best = load_torch(path, self.device)
        self.model.load_state_dict(best["model"])
        test = branch_accuracies(
            self.model,
            self.splits["test"].batches(self.eval_batch_size),
            unimodal=False,
            fusion=fusion_for_state(best["state"]),
        )
        result = {"acc": None, "acc_branch0": None, "acc_branch1": None}
        result.update(test)
        return {**result, "state": best["state"], "epoch": best["epoch"]}

    def _finish(self, record: dict, stop: str) -> None:
        start = time.perf_counter()
        record.update(stopped=stop, test=self._test(record))
        record.update(test_reference=self._test_reference(record), status="done")
        record["timing"]["test_seconds"] = round(time.perf_counter() - start, 3)
        write_json(self.record_path, record)
        (self.out / DONE_NAME).touch()

    def run(self) -> dict:
        done = self._check_existing()
        if done is not None:
            print(f"{self.out}: already done (test acc {done['test']['acc']:.2f}%), nothing to do")
            return done
        self._build()
        restored = self._restore()
        if restored is None:
            epoch, record, streak = 0, self._new_record(), 0
        else:
            epoch, record, streak = restored
            print(f"{self.out}: resuming after epoch {epoch}")
        record.update(status="running", error=None, device=str(self.device))
        write_json(self.record_path, record)
        try:
            while (stop := self._finished(epoch, streak)) is None:
                epoch += 1
                start = time.perf_counter()
                stats = self._train_epoch(epoch)
                streak = self._end_epoch(epoch, stats, record, streak, start)
            self._finish(record, stop)
        except BaseException as exc:
            # An interruption (Ctrl-C, SystemExit) is not a failure of the run: a sweep resumes it, as after a kill.
            status = "failed" if isinstance(exc, Exception) else "interrupted"
            record.update(status=status, error="".join(traceback.format_exception_only(type(exc), exc)).strip())
            write_json(self.record_path, record)
            raise
        return record


def small_weight_fraction(model: torch.nn.Module, threshold: float = SMALL_WEIGHT) -> float:
    """R(f) of §5.3: the fraction of the model's parameters whose magnitude is below 1e-7 (Fig. 3, Fig. A.4)."""
    small = sum(int((p.detach().abs() < threshold).sum()) for p in model.parameters())
    return small / sum(p.numel() for p in model.parameters())


def _epoch_line(s: dict) -> str:
    line = f"epoch {s['epoch']:3d}  loss {s['train_loss']:.4f}  train {s['train_acc']:6.2f}%  val {s['val_acc']:6.2f}%"
    if s.get("eval_state", "regular") != "regular":
        line += f" ({s['val_reference_acc']:6.2f}% {s['eval_state']})"
    if s.get("d_speed") is not None:
        line += f"  d_speed {s['d_speed']:+.3f}  rebalance {s['rebalance_steps']}"
    return line


def train(cfg: RunConfig, out_dir: str | Path, force: bool = False) -> dict:
    return Trainer(cfg, out_dir, force=force).run()
