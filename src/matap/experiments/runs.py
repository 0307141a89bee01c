"""The training runs behind an experiment: one run folder per (variant, seed).

An experiment names its variants as dotted overrides on top of a preset, e.g.
``{"matap": [], "gru": ["model.name=gru"]}``. Each (variant, seed) trains into
``RUNS/<variant>-seed<seed>`` with ``train.seed=<seed>``. A run folder that
already holds the same resolved config is reused: finished runs are read,
unfinished ones resumed from their last checkpoint. So an interrupted
experiment continues where it stopped, and experiments that share a runs
folder (``--runs``) share the runs they have in common.

What an experiment reads of a finished run beyond its ``config.yaml`` and
``history.csv`` is stored beside them in ``scores.json``: its training time and
every evaluation of its last checkpoint. A finished run whose checkpoints were
deleted (to keep a runs folder small, or to commit it) is still reused: its
stored evaluations stand in for the checkpoint, and an evaluation it does not
hold is an error that says so.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from matap.atomic import atomic_write
from matap.config import Config, load_config
from matap.errors import MatapError

SCORES = "scores.json"   # per run folder: {"seconds": float, "evaluations": {key: {"epochs": int, "result": ...}}}


@dataclass
class Run:
    variant: str
    seed: int
    run_dir: Path
    config: Config
    history: list[dict[str, float]]
    seconds: float = 0.0  # training wall time of the run (all its invocations together)
    trained_here: bool = False  # trained or resumed by this invocation (not found finished)

    @property
    def has_checkpoint(self) -> bool:
        return last_checkpoint(self.run_dir).is_file()

    def column(self, key: str) -> list[float]:
        """The per-epoch values of ``key`` (e.g. ``val_loss``), epoch 1 first."""
        if any(key not in row for row in self.history):
            raise MatapError(f"{self.run_dir}/history.csv has no column {key!r}")
        return [row[key] for row in self.history]


def read_history(run_dir: Path) -> list[dict[str, float]]:
    path = run_dir / "history.csv"
    if not path.is_file():
        return []
    with path.open(newline="") as fh:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(fh)]


def last_checkpoint(run_dir: Path) -> Path:
    return run_dir / "checkpoints" / "last.ckpt"


def read_scores(run_dir: Path) -> dict[str, Any]:
    """The run's ``scores.json`` (empty sections where there is none)."""
    path = run_dir / SCORES
    if not path.is_file():
        return {"seconds": None, "evaluations": {}}
    try:
        scores = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise MatapError(f"{path}: not valid JSON ({exc}); delete it (it is rebuilt from the checkpoint)") from None
    return {"seconds": scores.get("seconds"), "evaluations": scores.get("evaluations") or {}}


def write_scores(run_dir: Path, scores: dict[str, Any]) -> None:
    atomic_write(run_dir / SCORES, json.dumps(scores, indent=1, allow_nan=False))


def training_seconds(run_dir: Path) -> float:
    """Wall time the run spent training, from the first to the last event of each TensorBoard
    event file (one per start or resume), summed: setup before the first event is not counted.
    :func:`ensure_runs` stores it in ``scores.json``, which answers when the event files are gone."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    events = sorted((run_dir / "tb").glob("events.out.tfevents.*"))
    scores = read_scores(run_dir)
    if not events and scores["seconds"] is not None:
        return float(scores["seconds"])
    total = 0.0
    for path in events:
        times = [event.wall_time for event in EventFileLoader(str(path)).Load()]
        if times:
            total += max(times) - min(times)
    return total


def run_config(preset: str, overrides: list[str], variant_overrides: list[str], seed: int) -> Config:
    return load_config(preset, [*overrides, *variant_overrides, f"train.seed={seed}"])


# Keys that do not change what a run learns: a run that differs only in these is the same run.
NOT_LEARNED = {"data": ("cache_dir", "num_workers"), "train": ("progress_bar", "epochs"),
               "eval": ("context", "horizon", "batch_size")}


def _learned(config: dict[str, Any]) -> dict[str, Any]:
    return {section: {k: v for k, v in values.items() if k not in NOT_LEARNED.get(section, ())}
            for section, values in config.items()}


def _state(run_dir: Path, cfg: Config) -> str:
    """'new', 'done' or 'resume' for a run folder that should hold ``cfg``; raise if it holds another run."""
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        return "new"
    existing = yaml.safe_load(saved.read_text()) or {}
    existing_epochs = existing.get("train", {}).get("epochs")
    # Keys added to the config since the run was written read as their defaults, as checkpoints do.
    filled = {section: {**values, **(existing.get(section) or {})} for section, values in Config().to_dict().items()}
    if _learned(filled) != _learned(cfg.to_dict()) or set(existing) - set(filled):
        raise MatapError(f"{run_dir} holds a run with another config; give another runs folder "
                         f"or delete {run_dir}")
    if existing_epochs is not None and existing_epochs > cfg.train.epochs:
        raise MatapError(f"{run_dir} holds a run of {existing_epochs} epochs, more than the "
                         f"{cfg.train.epochs} asked for; give another runs folder")
    if existing_epochs != cfg.train.epochs and cfg.train.schedule != "none":
        # The schedule's length is fixed when a run starts; extending it would not match the config.
        raise MatapError(f"{run_dir} was trained for {existing_epochs} epochs with train.schedule="
                         f"{cfg.train.schedule}; a {cfg.train.epochs}-epoch run needs another runs folder")
    done = len(read_history(run_dir))
    if done >= cfg.train.epochs:
        return "done"   # without its checkpoints, the evaluations stored in scores.json stand in for them
    return "resume" if last_checkpoint(run_dir).is_file() else "new"


def ensure_runs(preset: str, overrides: list[str], variants: dict[str, list[str]], seeds: list[int],
                runs_dir: str | Path, log: Any = print, trained: Callable[[Path], Any] | None = None
                ) -> dict[str, list[Run]]:
    """Train (or reuse, or resume) every (variant, seed); return the runs by variant, seeds in order.
    ``trained(run_dir)`` is called on each run as soon as it has finished training here (an
    experiment scores it then, into its scores.json)."""
    from matap.training import resume, train

    if not seeds:
        raise MatapError("seeds: give at least one seed")
    if len(set(seeds)) != len(seeds):
        raise MatapError(f"seeds {' '.join(map(str, seeds))}: give each seed once")
    runs_dir = Path(runs_dir)
    plan = [(name, seed, run_config(preset, overrides, extra, seed)) for name, extra in variants.items()
            for seed in seeds]
    runs: dict[str, list[Run]] = {name: [] for name in variants}
    for i, (name, seed, cfg) in enumerate(plan, 1):
        run_dir = runs_dir / f"{name}-seed{seed}"
        state = _state(run_dir, cfg)
        label = f"[{i}/{len(plan)}] {name} seed {seed}"
        start = time.perf_counter()
        summary = None
        if state == "done":
            note = "" if last_checkpoint(run_dir).is_file() else f" (no checkpoint: its {SCORES} stands in for it)"
            log(f"{label}: finished run found in {run_dir}{note}")
        elif state == "resume":
            log(f"{label}: resuming {run_dir}")
            summary = resume(run_dir, [f"train.epochs={cfg.train.epochs}"])
        else:
            log(f"{label}: training into {run_dir}")
            summary = train(cfg, run_dir, overwrite=True)
        if summary is not None and summary["interrupted"]:
            raise KeyboardInterrupt
        if state != "done":
            log(f"{label}: done in {time.perf_counter() - start:.0f} s")
        history = read_history(run_dir)
        if len(history) < cfg.train.epochs:
            raise MatapError(f"{run_dir}: training stopped after {len(history)} of {cfg.train.epochs} epochs; "
                             "run the same command again to continue")
        seconds, scores = training_seconds(run_dir), read_scores(run_dir)
        if scores["seconds"] != seconds:
            write_scores(run_dir, {**scores, "seconds": seconds})
        if trained is not None and state != "done":
            log(f"{label}: scoring it")
            trained(run_dir)
        runs[name].append(Run(name, seed, run_dir, cfg, history, seconds, state != "done"))
    return runs


def compute_used(runs: dict[str, list[Run]], seconds_here: float) -> dict[str, Any]:
    """What the runs behind a report cost: for the header every report starts with."""
    every = [r for model_runs in runs.values() for r in model_runs]
    return {"runs_seconds": sum(r.seconds for r in every), "num_runs": len(every),
            "num_trained": sum(r.trained_here for r in every), "train_seconds": seconds_here}


__all__ = ["Run", "SCORES", "compute_used", "ensure_runs", "last_checkpoint", "read_history", "read_scores",
           "run_config", "training_seconds", "write_scores"]
