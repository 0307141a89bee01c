"""The LightningModule: a model, an objective and an optimiser; nothing model-specific."""

from __future__ import annotations

import math
import os
import shutil
import time
from typing import Any

import lightning as L
import torch

from matap import metrics
from matap.config import Config, TrainConfig, config_from_dict
from matap.data import to_frames
from matap.models import count_parameters, model_from_config
from matap.objectives import ObjectiveOutput, build_objective

# train.schedule=restarts: cosine cycles of 1/7, 2/7 and 4/7 of training (SGDR with T_mult = 2), each
# starting again from the full rate, so the last cycle ends at the end of training.
RESTART_CYCLES = (1, 2, 4)


def warm_restarts(progress: float) -> float:
    """The rate (a factor of train.lr) at ``progress`` in [0, 1] under cosine with warm restarts."""
    position = min(max(progress, 0.0), 1.0) * sum(RESTART_CYCLES)
    for length in RESTART_CYCLES:
        if position < length:
            return 0.5 * (1.0 + math.cos(math.pi * position / length))
        position -= length
    return 0.0


# train.compile=auto compiles from this batch size on: measured on a 2-core CPU with AMX (docs/performance.md),
# compiling sped a bf16 training step up by 45% at batch 32 and by 5% at batch 4.
COMPILE_MIN_BATCH = 16
C_COMPILERS = ("c++", "g++", "clang++")  # what torch.compile's CPU code generation builds with


def compile_wanted(train: TrainConfig, precision: str) -> bool:
    """Whether a run with ``train`` settings under Lightning ``precision`` compiles its model: ``train.compile``
    "on" or "off", or for "auto", bf16 autocast on a CPU at a batch of at least ``COMPILE_MIN_BATCH`` where a
    C++ compiler is on the PATH (or in ``CXX``). Not auto-enabled in fp32 (measured: 4-7% faster with a
    higher peak of memory) nor on GPUs (not measured)."""
    if train.compile != "auto":
        return train.compile == "on"
    on_cpu = train.accelerator == "cpu" or (train.accelerator == "auto" and not torch.cuda.is_available())
    compilers = ((os.environ.get("CXX") or ""),) + C_COMPILERS
    return (on_cpu and precision.startswith("bf16") and train.batch_size >= COMPILE_MIN_BATCH
            and any(name and shutil.which(name) for name in compilers))


class MatapModule(L.LightningModule):
    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.cfg: Config = config_from_dict(config)
        self.model = model_from_config(self.cfg.model).to(memory_format=torch.channels_last)
        self.objective = build_objective(self.cfg.objective)
        self.num_parameters = count_parameters(self.model)
        self._clock_start = time.monotonic()
        self._seconds_before = 0.0   # training time of earlier invocations, when resumed
        self._epoch_start = 0.0
        self._total_steps: float | None = None

    def elapsed(self) -> float:
        """Seconds of training so far, across resumes."""
        return self._seconds_before + time.monotonic() - self._clock_start

    def progress(self) -> float:
        """Share of training done, in [0, 1]: of ``train.max_time`` when set, else of the optimiser steps."""
        budget = self.cfg.train.max_time * 60
        if budget > 0:
            return min(1.0, self.elapsed() / budget)
        if self._total_steps is None:
            self._total_steps = float(self.trainer.estimated_stepping_batches)
        total = self._total_steps
        return min(1.0, self.global_step / total) if total and math.isfinite(total) else 0.0

    def on_fit_start(self) -> None:
        self.compile_if_wanted(str(self.trainer.precision))
        self._clock_start = time.monotonic()

    def compile_if_wanted(self, precision: str) -> bool:
        """Compile the model's parts in place where :func:`compile_wanted` says so; return whether it did."""
        wanted = compile_wanted(self.cfg.train, precision)
        if wanted:
            self.model.compile_parts()
        return wanted

    def on_train_epoch_start(self) -> None:
        self._epoch_start = self.elapsed()

    def on_train_epoch_end(self) -> None:
        # Stop before an epoch that would end past the time budget (epochs take about as long as the last).
        # Every process stops if one would: their clocks differ slightly under DDP.
        budget = self.cfg.train.max_time * 60
        if budget > 0:
            late = self.elapsed() + (self.elapsed() - self._epoch_start) > budget
            if self.trainer.strategy.reduce_boolean_decision(late, all=False):
                self.trainer.should_stop = True

    def training_loss(self, x: torch.Tensor, progress: float) -> ObjectiveOutput:
        """The objective on frames x (B, T, 1, H, W) at training ``progress``; raises FloatingPointError
        when the loss is not finite. ``matap bench`` times this with the optimiser step below."""
        out = self.objective(self.model, x, progress=progress)
        if not torch.isfinite(out.loss):
            raise FloatingPointError(f"non-finite training loss ({out.loss.item()})")
        return out

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> dict[str, Any]:
        """The loss to optimise, and under ``"train"`` the values whose epoch means the run's history keeps
        (``RunCheckpoint`` averages them: its sums survive a checkpoint within an epoch, Lightning's do not).
        A batch is uint8 videos (B, T, H, W)."""
        x = to_frames(batch)
        try:
            out = self.training_loss(x, self.progress())
        except FloatingPointError as exc:
            raise FloatingPointError(f"{exc} at epoch {self.current_epoch + 1}, step {batch_idx + 1} "
                                     f"(global step {self.global_step + 1})") from None
        self.log("train_loss_step", out.loss.detach(), on_step=True, on_epoch=False, prog_bar=True,
                 batch_size=x.shape[0], sync_dist=True)
        train = {"train_loss": out.loss.detach()}
        train.update({f"train_{name}": value.detach() for name, value in out.terms.items()})
        return {"loss": out.loss, "train": train}

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        x = to_frames(batch)
        out = self.objective(self.model, x, with_frames=True)
        B = x.shape[0]
        logged = {"val_loss": out.loss}
        logged.update({f"val_{name}": value for name, value in out.terms.items()})
        # SSIM in float32 even under bf16/fp16 autocast: bf16 keeps about 3 significant digits,
        # too few to tell one epoch (or model) from the next.
        with torch.autocast(x.device.type, enabled=False):
            for name, (pred, target) in out.pairs.items():
                logged[f"val_ssim_{name}"] = metrics.ssim(pred.float(), target.float()).mean()
        headline = logged[f"val_ssim_{self.objective.headline}"]
        self.log_dict(logged, on_epoch=True, batch_size=B, sync_dist=True)
        self.log("val_ssim", headline, on_epoch=True, prog_bar=True, batch_size=B, sync_dist=True)

    def optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.model.parameters(), lr=self.cfg.train.lr)

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer()
        if self.cfg.train.schedule == "cosine" and self.cfg.train.max_time > 0:
            # Over the time budget: the rate follows the clock, whatever the machine's speed.
            def cosine_of_progress(step: int) -> float:  # a plain function: LambdaLR does not save it
                return 0.5 * (1.0 + math.cos(math.pi * self.progress()))

            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine_of_progress)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
        if self.cfg.train.schedule == "restarts":
            def restarts_of_progress(step: int) -> float:
                return warm_restarts(self.progress())

            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, restarts_of_progress)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
        if self.cfg.train.schedule == "cosine":
            steps = max(1, int(self.trainer.estimated_stepping_batches))
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
        return optimizer

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        from matap import __version__

        checkpoint["matap_config"] = self.cfg.to_dict()
        checkpoint["matap_version"] = __version__
        checkpoint["matap_train_seconds"] = self.elapsed()
        checkpoint["matap_epoch_start_seconds"] = self._epoch_start  # a checkpoint within an epoch resumes it

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._seconds_before = float(checkpoint.get("matap_train_seconds", 0.0))
        self._epoch_start = float(checkpoint.get("matap_epoch_start_seconds", 0.0))
        self._clock_start = time.monotonic()

