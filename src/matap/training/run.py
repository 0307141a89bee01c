"""A training run lives in one folder:

    RUN/config.yaml              the resolved config
    RUN/history.csv              one row per epoch (train and validation metrics)
    RUN/checkpoints/last.ckpt    written at the end of every epoch, and within epochs as
                                 train.checkpoint_every says (resume from it)
    RUN/checkpoints/best.ckpt    the lowest validation loss so far
    RUN/tb/                      TensorBoard events
    RUN/train.lock               held by the one trainer of the run (matap.lock)
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import os
import shutil
import signal
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger

try:
    from lightning.pytorch.utilities.exceptions import SIGTERMException
except ImportError:  # a Lightning that lets SIGTERM end the process itself
    class SIGTERMException(SystemExit):  # type: ignore[no-redef]
        pass

from matap.atomic import atomic_write
from matap.checkpoint import safe_load
from matap.config import Config, apply_overrides, config_from_dict, validate
from matap.data import load_split, make_loader, training_stream
from matap.errors import MatapError
from matap.lock import RunLock
from matap.machine import bf16_pays
from matap.training.checkpoint import AtomicCheckpointIO
from matap.training.module import MatapModule

RUN_FILES = ("config.yaml", "history.csv", "checkpoints", "tb")
LOG_EVERY_N_STEPS = 10  # optimizer steps between the training-loss points of the TensorBoard log


def _is_launched_worker() -> bool:
    """True in the processes that a distributed launcher starts besides global rank 0."""
    return any(os.environ.get(var, "0") not in ("", "0") for var in ("RANK", "LOCAL_RANK", "NODE_RANK"))


@contextlib.contextmanager
def deferred_sigint():
    """Hold a Ctrl-C (SIGINT) that arrives inside the block and deliver it when the block ends, so
    that files written together are all written. Outside the main thread, a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            if callable(previous):
                previous(signal.SIGINT, None)
            else:
                raise KeyboardInterrupt


class RunCheckpoint(Callback):
    """At the end of every epoch: append the epoch's metrics to history.csv, save
    last.ckpt, and copy it to best.ckpt when the validation loss improved. Within
    epochs, every ``every_steps`` optimizer steps or ``every_seconds``: save last.ckpt.

    The history, the best value, the training sums of an epoch begun and the random
    number generators' states travel inside the checkpoint, and the training loader
    its place in the epoch (matap.data.loader.ResumableLoader), so a resumed run
    continues exactly where the uninterrupted run would be (the data order is a
    function of seed and epoch; see matap.data.loader.EpochShuffleSampler)."""

    def __init__(self, run_dir: Path, every_steps: int = 0, every_seconds: float = 0.0,
                 monitor: str = "val_loss") -> None:
        self.run_dir = run_dir
        self.every_steps, self.every_seconds = every_steps, every_seconds
        self.monitor = monitor
        self.history: list[dict[str, float]] = []
        self.best: float | None = None
        self.holds: str | None = None  # what last.ckpt holds, in words: "epoch 2", "epoch 3 up to step 5 of 9"
        self.interrupted = False
        self._sums: dict[str, torch.Tensor] = {}  # this process's training values of the epoch, summed over sequences
        self._count = 0                           # ... and its sequences
        self._partial: dict[str, Any] | None = None  # the epoch's sums over all processes, in a checkpoint within it
        self._last_save = time.monotonic()

    def state_dict(self) -> dict[str, Any]:
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {"history": self.history, "best": self.best, "rng": rng, "holds": self.holds, "partial": self._partial}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = list(state.get("history", []))
        self.best = state.get("best")
        self.holds = state.get("holds") or f"epoch {len(self.history)}"
        self._partial = state.get("partial")  # counted again by global rank 0 when training starts
        rng = state.get("rng", {})
        if "torch" in rng:
            torch.set_rng_state(rng["torch"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._last_save = time.monotonic()
        if self._partial is not None and trainer.is_global_zero:  # resumed within an epoch: its first steps
            self._sums = {name: value.to(module.device) for name, value in self._partial["sums"].items()}
            self._count = int(self._partial["count"])
        self._partial = None

    def on_exception(self, trainer: L.Trainer, module: L.LightningModule, exception: BaseException) -> None:
        # Ctrl-C, or SIGTERM (a scheduler's preemption, ``kill``), which Lightning turns into a
        # SystemExit with no code: left alone it would end the process with exit status 0.
        if isinstance(exception, (KeyboardInterrupt, SIGTERMException)):
            self.interrupted = True

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        size = len(batch)
        for name, value in outputs["train"].items():
            value = value.to(torch.float32 if value.device.type == "mps" else torch.float64) * size
            self._sums[name] = self._sums[name] + value if name in self._sums else value
        self._count += size
        if self._due(trainer, batch_idx):
            self._partial = self._epoch_sums(trainer)
            self.holds = f"epoch {trainer.current_epoch + 1} up to step {batch_idx + 1} of {trainer.num_training_batches}"
            with deferred_sigint():
                trainer.save_checkpoint(self.run_dir / "checkpoints" / "last.ckpt", weights_only=False)
            self._partial = None
            self._last_save = time.monotonic()

    def _due(self, trainer: L.Trainer, batch_idx: int) -> bool:
        """Whether to save within the epoch after this step: never after its last step (the epoch's end
        saves); every process decides alike (the step count, or global rank 0's clock)."""
        if batch_idx + 1 >= trainer.num_training_batches:
            return False
        if self.every_steps:
            return trainer.global_step % self.every_steps == 0
        if self.every_seconds:
            return bool(trainer.strategy.broadcast(time.monotonic() - self._last_save >= self.every_seconds, src=0))
        return False

    def _epoch_sums(self, trainer: L.Trainer) -> dict[str, Any]:
        """This epoch's training sums and sequences so far, over all processes."""
        names = sorted(self._sums)
        values = torch.stack([self._sums[name] for name in names]) if names else torch.zeros(0, dtype=torch.float64)
        totals = trainer.strategy.reduce(torch.cat([values, values.new_tensor([self._count])]), reduce_op="sum")
        return {"sums": dict(zip(names, totals[:-1].cpu())), "count": int(totals[-1].item())}

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        totals = self._epoch_sums(trainer)
        for name, value in totals["sums"].items():
            module.log(name, float(value / totals["count"]), on_epoch=True, sync_dist=True)  # alike on every process
        self._sums, self._count = {}, 0
        row = {"epoch": trainer.current_epoch + 1}
        for key, value in sorted(trainer.callback_metrics.items()):
            if key.endswith("_step"):
                continue
            row[key.removesuffix("_epoch")] = float(value)
        self.history.append(row)
        score = row.get(self.monitor)
        improved = score is not None and (self.best is None or score < self.best)
        if improved:
            self.best = score
        self.holds = f"epoch {row['epoch']}"
        ckpt_dir = self.run_dir / "checkpoints"
        with deferred_sigint():  # last.ckpt, history.csv and best.ckpt describe the same epoch
            trainer.save_checkpoint(ckpt_dir / "last.ckpt", weights_only=False)
            if trainer.is_global_zero:
                self._write_history()
                if improved:
                    with open(ckpt_dir / "last.ckpt", "rb") as last:
                        atomic_write(ckpt_dir / "best.ckpt", lambda fh: shutil.copyfileobj(last, fh))
        self._last_save = time.monotonic()
        trainer.strategy.barrier()

    def _write_history(self) -> None:
        columns: list[str] = []
        for row in self.history:
            columns += [k for k in row if k not in columns]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns)
        writer.writeheader()
        writer.writerows(self.history)
        atomic_write(self.run_dir / "history.csv", buf.getvalue())


def _owned(run_dir: Path) -> contextlib.AbstractContextManager:
    """The run folder's lock (:class:`matap.lock.RunLock`) for the whole run, taken by the process that
    starts it: the processes a distributed launcher starts for the other ranks train the same run."""
    return contextlib.nullcontext() if _is_launched_worker() else RunLock(run_dir)


def existing_run_files(run_dir: Path) -> list[str]:
    """The names of RUN_FILES that ``run_dir`` already holds (a run is there when any is); none in a process
    that a distributed launcher started for another rank: the first process prepared the folder."""
    if _is_launched_worker():
        return []
    return [name for name in RUN_FILES if (run_dir / name).exists()]


def _prepare_run_dir(run_dir: Path, cfg: Config, overwrite: bool) -> None:
    if _is_launched_worker():
        return
    existing = existing_run_files(run_dir)
    if existing and not overwrite:
        raise MatapError(f"{run_dir} already holds a run ({', '.join(existing)}); resume it "
                         "(matap.training.resume), or train with overwrite=True to replace it")
    for name in existing:
        target = run_dir / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(run_dir / "config.yaml", cfg.to_yaml())


# What Lightning prints about the machine and itself on every run: matap's header says what matters
# (the precision, the device count in the config); the rest buries the run's own output.
_LIGHTNING_CHATTER = ("GPU available", "TPU available", "HPU available", "IPU available", "LOCAL_RANK:",
                      "Loading `train_dataloader` to estimate number of stepping batches", "Tip:",
                      "Initializing distributed:", "All distributed processes registered",
                      "Automatic Mixed Precision (AMP)")
_LIGHTNING_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
                      "lightning.fabric.utilities.distributed", "lightning.pytorch.accelerators.cuda")


class _NoChatter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(text in message for text in _LIGHTNING_CHATTER)


def _quiet_lightning() -> None:
    """Drop Lightning's hardware lines, advertisements and a deprecation warning it raises against
    itself: the user's log keeps matap's output, Lightning's other messages and real warnings."""
    for name in _LIGHTNING_LOGGERS:
        log = logging.getLogger(name)
        if not any(isinstance(f, _NoChatter) for f in log.filters):
            log.addFilter(_NoChatter())
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated")


def resolve_precision(accelerator: str, precision: str) -> str:
    """The Lightning precision a run uses. ``auto``: bf16 autocast (``bf16-mixed``) where bf16 pays
    (a CUDA GPU that supports it; a CPU that computes it natively and measurably faster than fp32,
    :func:`matap.machine.bf16_pays`), full fp32 (``32-true``) elsewhere."""
    if precision != "auto":
        return precision
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return "bf16-mixed" if bf16_pays("cuda") else "32-true"
    if accelerator not in ("cpu", "auto"):
        return "32-true"
    return "bf16-mixed" if bf16_pays("cpu") else "32-true"


def _trainer(cfg: Config, run_dir: Path, callback: RunCheckpoint, batches: int) -> L.Trainer:
    _quiet_lightning()
    t = cfg.train
    return L.Trainer(
        max_epochs=t.epochs,
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        precision=resolve_precision(t.accelerator, t.precision),
        gradient_clip_val=t.grad_clip or None,
        gradient_clip_algorithm="norm",
        deterministic=t.deterministic,
        logger=TensorBoardLogger(str(run_dir), name="tb", version="", default_hp_metric=False),
        callbacks=[callback],
        enable_checkpointing=False,
        plugins=[AtomicCheckpointIO()],
        default_root_dir=str(run_dir),
        log_every_n_steps=max(1, min(LOG_EVERY_N_STEPS, batches)),  # a short epoch still logs
        enable_progress_bar=t.progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )


def _fit(cfg: Config, run_dir: Path, ckpt_path: Path | None) -> dict[str, Any]:
    L.seed_everything(cfg.train.seed, workers=True, verbose=False)
    train_videos = load_split(cfg.data, "train")
    val_videos = load_split(cfg.data, "val")
    for name, videos in (("train", train_videos), ("val", val_videos)):
        if videos.shape[1] < 2:
            raise MatapError(f"{name} videos have {videos.shape[1]} frame(s); at least 2 are needed")
    train_source = training_stream(cfg.data) if cfg.data.stream else train_videos
    train_loader = make_loader(train_source, cfg.train.batch_size, True, cfg.train.seed, cfg.data.num_workers)
    val_loader = make_loader(val_videos, cfg.eval.batch_size, False, num_workers=cfg.data.num_workers)
    module = MatapModule(cfg.to_dict())
    callback = RunCheckpoint(run_dir, *cfg.train.checkpoint_interval())
    trainer = _trainer(cfg, run_dir, callback, len(train_loader))
    try:
        trainer.fit(module, train_loader, val_loader, ckpt_path=str(ckpt_path) if ckpt_path else None,
                    weights_only=True)
    except SystemExit:
        if not callback.interrupted:  # Lightning exits after Ctrl-C or SIGTERM; anything else goes on up
            raise
    return {"history": callback.history, "best_val_loss": callback.best, "interrupted": callback.interrupted,
            "checkpoint": callback.holds, "num_parameters": module.num_parameters, "run_dir": str(run_dir)}


def train(cfg: Config, run_dir: str | Path, overwrite: bool = False) -> dict[str, Any]:
    """Train ``cfg`` into ``run_dir``; return the per-epoch history and the best validation loss."""
    run_dir = Path(run_dir)
    validate(cfg)
    if run_dir.exists() and not run_dir.is_dir():
        raise MatapError(f"run folder {run_dir}: exists and is not a folder")
    with _owned(run_dir):  # before overwrite deletes anything
        _prepare_run_dir(run_dir, cfg, overwrite)
        return _fit(cfg, run_dir, None)


def resume(run_dir: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Continue a run from its last checkpoint. Only ``train.*`` keys may be overridden
    (e.g. ``train.epochs=80`` to train longer); the model and data are those of the run."""
    run_dir = Path(run_dir)
    last = run_dir / "checkpoints" / "last.ckpt"
    if not run_dir.is_dir():
        raise MatapError(f"{run_dir}: no such run folder to resume")
    if not last.is_file():
        raise MatapError(f"run folder {run_dir}: no checkpoints/last.ckpt yet to resume from; train it again "
                         "from the start, with overwrite on")
    with _owned(run_dir):
        ckpt = safe_load(last)
        cfg = config_from_dict(ckpt["matap_config"], origin=str(last))
        del ckpt
        apply_overrides(cfg, overrides, only=("train",), reason="a resumed run keeps its model, data and objective")
        if not _is_launched_worker():
            atomic_write(run_dir / "config.yaml", cfg.to_yaml())
        return _fit(cfg, run_dir, last)


def load_run_config(run_dir: str | Path) -> Config:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise MatapError(f"{run_dir}: no config.yaml; is this a matap run folder?")
    return config_from_dict(yaml.safe_load(path.read_text()) or {}, origin=str(path))


__all__ = ["RunCheckpoint", "load_run_config", "resume", "train"]
