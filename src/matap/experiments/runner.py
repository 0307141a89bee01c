"""One runner for every experiment. An experiment is a list of variants (dotted overrides on the
preset), an ``analyse`` that turns their trained runs into numbers, the pictures it draws and a
``render`` of report.md from results.json; it is registered in ``matap.registry.EXPERIMENTS``,
which the command line and ``matap report`` read. :func:`run` does the rest for all of them:
check, train or reuse the runs, analyse, score the trivial baselines, draw, write."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping

from matap.config import Config
from matap.experiments.report import base_results, check_eval_length, check_out, evaluate_run, record_baselines, write
from matap.experiments.runs import Run, compute_used, ensure_runs, run_config
from matap.registry import EXPERIMENTS

MODELS = {"matap": [], "gru": ["model.name=gru"]}  # MA-TAP and the GRU baseline, as compare and drift train them


@dataclass(frozen=True)
class Spec:
    """What one invocation of an experiment asks for."""

    preset: str                   # preset name or YAML file
    overrides: tuple[str, ...]    # dotted overrides on the preset, for every variant
    seeds: tuple[int, ...]        # training seeds
    out: Path                     # folder of report.md, results.json and the pictures
    runs: Path                    # folder of the training runs (shared between experiments)
    command: str                  # the command line, quoted in the report
    options: Mapping[str, Any] = field(default_factory=dict)  # the experiment's own options (drift: context, ...)

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))  # read-only, as the rest


def _no_options(parser: Any) -> None:
    return None


def _as_given(spec: Spec) -> Spec:
    return spec


def _no_check(spec: Spec, cfg: Config) -> None:
    return None


# What an experiment scores each run on: (protocol -> (context, horizon), frames per sequence).
Evaluations = tuple[dict[str, tuple[int, int]], int]


def _scored_predict(results: dict[str, Any]) -> tuple[str, int, int]:
    return "predict", results["evaluation"]["context"], results["evaluation"]["horizon"]


@dataclass(frozen=True)
class Experiment:
    """An experiment of the paper (or beyond it), as the runner and the command line see it."""

    help: str                                          # one line for ``matap --help``
    description: str                                   # the paragraph of ``matap NAME --help``
    variants: Callable[[Spec], dict[str, list[str]]]   # name -> dotted overrides of each variant
    # the evaluations ``analyse`` reads (matap.experiments.report.evaluate_run), the same for every run;
    # each run is scored on them as soon as it has trained, so a run's scores.json holds them even
    # where its checkpoints are gone before the last run of the study finishes
    evaluations: Callable[[Spec, Config], Evaluations]
    analyse: Callable[[Spec, Config, dict[str, list[Run]]], dict[str, Any]]  # the numbers of results.json
    pictures: Callable[[Spec, dict[str, Any], dict[str, list[Run]]], dict[str, str]]  # draws; name -> file
    render: Callable[[dict[str, Any]], str]            # report.md from results.json
    add_arguments: Callable[[Any], None] = _no_options  # its own command-line options ...
    options: tuple[str, ...] = ()                      # ... and their names, which become Spec.options
    prepare: Callable[[Spec], Spec] = _as_given        # checks its options; may add overrides
    check: Callable[[Spec, Config], None] = _no_check  # before any training: can the preset run it?
    # (protocol, context, horizon) of the predictions it scored, from results.json: what the baselines predict
    scored: Callable[[dict[str, Any]], tuple[str, int, int]] = _scored_predict
    # whether its report also reads the paper's reconstruction protocol (Table 1's columns): its
    # baselines then include the trivial reconstructions of the validation set
    reports_reconstruction: bool = False
    redraw: Callable[[dict[str, Any], Path], None] | None = None  # the pictures that show the baselines
    # recomputes the statistics of results.json that derive from its per-seed values (intervals, p-values, verdicts)
    refresh: Callable[[dict[str, Any]], None] | None = None


def evaluation_fits(spec: Spec, cfg: Config) -> None:
    """The check of an experiment that scores eval.context -> eval.horizon predictions."""
    check_eval_length(cfg, cfg.eval.context + cfg.eval.horizon)


def run(name: str, spec: Spec) -> Path:
    """Run the experiment registered as ``name``: train (or reuse, or resume) every variant for every
    seed, then write results.json, report.md and the pictures into ``spec.out``; return report.md."""
    start = time.perf_counter()
    experiment = EXPERIMENTS.get(name)
    spec = experiment.prepare(spec)
    cfg = run_config(spec.preset, list(spec.overrides), [], spec.seeds[0])
    experiment.check(spec, cfg)
    check_out(spec.out, spec.runs)
    t0 = time.perf_counter()
    protocols, seq_len = experiment.evaluations(spec, cfg)
    runs = ensure_runs(spec.preset, list(spec.overrides), experiment.variants(spec), list(spec.seeds), spec.runs,
                       trained=lambda run_dir: evaluate_run(run_dir, protocols, seq_len))
    used = compute_used(runs, time.perf_counter() - t0)
    results = base_results(name, spec, cfg)
    results.update(experiment.analyse(spec, cfg, runs))
    results.update(used)
    record_baselines(results)
    spec.out.mkdir(parents=True, exist_ok=True)
    results["files"] = experiment.pictures(spec, results, runs)
    results["wall_seconds"] = time.perf_counter() - start
    return write(spec.out, results)


def with_overrides(spec: Spec, *overrides: str) -> Spec:
    """``spec`` with more overrides (an experiment's option that is a config key)."""
    return dataclasses.replace(spec, overrides=(*spec.overrides, *overrides))


__all__ = ["MODELS", "Evaluations", "Experiment", "Spec", "evaluation_fits", "run", "with_overrides"]
