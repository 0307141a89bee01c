"""What every experiment writes: results.json (every number), report.md rendered
from it, PNG figures and GIFs; and the pieces they share (tables, evaluation of
a run, the trivial baselines beside it, sample pictures)."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from matap.atomic import atomic_write
from matap.baselines import (
    BASELINES,
    HIGHER_IS_BETTER,
    LABELS,
    VERDICT_METRICS,
    beats,
    evaluate_baselines,
    mean_training_frame,
    means,
    verdicts,
    worse_than_black,
)
from matap.errors import MatapError
from matap.machine import describe
from matap.registry import EXPERIMENTS, OBJECTIVES

RESULTS, REPORT = "results.json", "report.md"
MODEL_LABELS = {"matap": "MA-TAP", "gru": "GRU baseline"}


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def baseline_rows(baselines: dict[str, Any], cells: Callable[[dict[str, Any]], list[str]]) -> list[list[str]]:
    """One table row per trivial baseline: its label, then ``cells`` of its metrics (metric ->
    {"mean", "per_timestep"})."""
    return [[f"trivial: {LABELS[name]}", *cells(baselines[name])] for name in BASELINES]


def model_label(label: str, per_seed: dict[str, Sequence[float]], baselines: dict[str, Any] | None) -> str:
    """``label``, tagged when the mean over seeds of its SSIM or MSE (``per_seed``: metric ->
    values) does not beat all-black frames."""
    if baselines is None:
        return label
    tag = worse_than_black({m: float(np.mean(v)) for m, v in per_seed.items()}, means(baselines["black"]))
    return f"{label} ({tag})" if tag else label


def versus_baselines(models: dict[str, dict[str, Sequence[float]]], baselines: dict[str, Any] | None,
                     task: str) -> list[str]:
    """The report section saying whether each model beats each trivial baseline on SSIM and MSE;
    ``models``: label -> {"ssim": per-seed values, "mse": per-seed values}, ``task`` what was scored."""
    parts = ["## Against trivial predictions", ""]
    if baselines is None:
        return parts + ["Baselines not recorded: this results.json was written before matap recorded them; "
                        "`matap report DIR --baselines` scores them on the experiment's validation sequences.", ""]
    model_means = {label: {m: float(np.mean(v)) for m, v in per_seed.items()} for label, per_seed in models.items()}
    lines = []
    for b in BASELINES:
        baseline = means(baselines[b])
        pieces = []
        for metric, (name, digits) in VERDICT_METRICS.items():
            losers = [label for label, m in model_means.items() if not beats(m[metric], baseline[metric], metric)]
            pick = max if metric in HIGHER_IS_BETTER else min
            best = pick(model_means, key=lambda label: model_means[label][metric])
            if len(losers) == len(models):
                who = "no model is" if len(models) > 1 else f"{losers[0]} is not"
                pieces.append(f"**{who} better on {name}** (best: {best}, {model_means[best][metric]:.{digits}f}; "
                              f"{LABELS[b]}: {baseline[metric]:.{digits}f})")
            elif losers:
                pieces.append(f"**{', '.join(losers)} {'is' if len(losers) == 1 else 'are'} not better on {name}**")
            else:
                pieces.append(f"{'every model is' if len(models) > 1 else f'{best} is'} better on {name}")
        lines.append(f"- against {LABELS[b]}: " + "; ".join(pieces) + ".")
    rows = [[label, *[verdicts(model_means[label], means(baselines[b]), per_seed) for b in BASELINES]]
            for label, per_seed in models.items()]
    return parts + [
        f"{task}, predicted without a model on the same sequences: all-black frames, the last "
        "context frame repeated, and the per-pixel mean frame of the training set, scored exactly as the models. "
        "A model is better than a baseline when its mean over seeds has the higher SSIM or the lower MSE per "
        "frame; in brackets the two values and on how many seeds the model is better.", "",
        *lines, "",
        table(["model", *[f"vs {LABELS[b]}" for b in BASELINES]], rows), ""]


def machine() -> dict[str, Any]:
    import torch

    return {**describe(), "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def header(results: dict[str, Any], title: str) -> str:
    """The top of every report: what was run, on what, for how long."""
    m = results["machine"]
    device = m["gpu"] or f"{m['cpu']}, {m['cores']} cores (torch threads {m['torch_threads']})"
    return "\n".join([
        f"# {title}", "",
        f"- command: `{results['command']}`",
        f"- preset `{results['preset']}` with overrides: {', '.join(f'`{o}`' for o in results['overrides']) or 'none'};"
        f" objective `{results['objective']}`; seeds {', '.join(map(str, results['seeds']))}",
        f"- data: {results['data']}",
        f"- compute: {results['runs_seconds']:.0f} s of training over the {results['num_runs']} runs behind "
        f"this report (each run's logged training time, summed); the invocation that wrote this report "
        f"trained {results['num_trained']} of them and took {results['wall_seconds']:.0f} s wall in all",
        f"- machine: {device}; torch {m['torch']}, Python {m['python']}",
        f"- written {results['written']} by matap {results['matap_version']}; every measured number below is "
        f"in `{RESULTS}` and this file is rendered from it (`matap report DIR` renders it again); the "
        "paper's numbers shown beside them are quoted from the paper", ""])


SPLIT_NAMES = {"val": "validation", "test": "test"}


def scored_split(cfg: Any) -> str:
    """The split an experiment scores its final models on: "test" for generated data (sequences held
    out from training and from validation, which picks nothing here but is watched during
    training), "val" for user arrays, which have no test split."""
    return "val" if cfg.data.source == "array" else "test"


def data_description(cfg: Any, split: str = "val") -> str:
    d = cfg.data
    return (f"{d.source} digits, {d.motion} motion, {d.train_size} train / {d.val_size} validation "
            f"sequences of {d.seq_len} frames (data seed {d.seed}); scores on the {SPLIT_NAMES[split]} set")


def base_results(kind: str, spec: Any, cfg: Any) -> dict[str, Any]:
    """What every results.json starts with: what was run (``spec``, a
    :class:`matap.experiments.runner.Spec`), on what data and machine."""
    from matap import __version__

    return {"kind": kind, "command": spec.command, "preset": spec.preset, "overrides": list(spec.overrides),
            "objective": cfg.objective.name, "seeds": list(spec.seeds), "matap_version": __version__,
            "written": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
            "data": data_description(cfg, scored_split(cfg)), "split": scored_split(cfg),
            "train": {"epochs": cfg.train.epochs, "batch_size": cfg.train.batch_size, "lr": cfg.train.lr,
                      "schedule": cfg.train.schedule, "precision": cfg.train.precision},
            "feedback": cfg.model.rollout_feedback}


def rolled_out(results: dict[str, Any]) -> str:
    """How the report's rollouts feed each prediction back into the cell, in words (model.rollout_feedback;
    a results.json written before it was recorded holds latent rollouts, the only kind there was)."""
    if results.get("feedback", "latent").startswith("frame"):
        return "feeding the encoding of each decoded frame back into the cell"
    return "in latent space"


def write(out: Path, results: dict[str, Any]) -> Path:
    """Write results.json, then render report.md from what was written."""
    from matap.experiments.stats import finite_or_none

    atomic_write(out / RESULTS, json.dumps(finite_or_none(results), indent=1, allow_nan=False))
    return render_folder(out)


def render_folder(out: str | Path, add_baselines: bool = False) -> Path:
    """Render OUT/report.md from OUT/results.json; with ``add_baselines``, first score the trivial
    baselines on the experiment's sequences into results.json (:func:`record_baselines`)."""
    out = Path(out)
    path = out / RESULTS
    if not path.is_file():
        raise MatapError(f"{out}: no {RESULTS}; is this an experiment folder ({', '.join(EXPERIMENTS)})?")
    try:
        results = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise MatapError(f"{path}: not valid JSON ({exc})") from None
    kind = results.get("kind") if isinstance(results, dict) else None
    if kind not in EXPERIMENTS:
        raise MatapError(f"{path}: unknown experiment kind {kind!r}")
    experiment = EXPERIMENTS.get(kind)
    if add_baselines:
        record_baselines(results)
        if experiment.redraw is not None:
            experiment.redraw(results, out)
        return write(out, results)
    if experiment.refresh is not None:  # statistics derived from the per-seed values, as this version computes them
        from matap.experiments.stats import finite_or_none

        before = json.dumps(finite_or_none(results), sort_keys=True)
        experiment.refresh(results)
        if json.dumps(finite_or_none(results), sort_keys=True) != before:
            atomic_write(out / RESULTS, json.dumps(finite_or_none(results), indent=1, allow_nan=False))
    return atomic_write(out / REPORT, experiment.render(results))


def split_videos(cfg: Any, split: str, seq_len: int | None = None) -> np.ndarray:
    """uint8 (N, T, 64, 64): the ``split`` ("val" or "test") of ``cfg``, generated ``seq_len``
    frames long when that is longer than ``data.seq_len``."""
    from matap.data import generated_split, validation_videos

    if split == "val":
        return validation_videos(cfg.data, seq_len)
    if cfg.data.source == "array":
        raise MatapError("data.source=array has no test split")
    return generated_split(cfg.data, split, seq_len=max(cfg.data.seq_len, seq_len or 0))


def evaluate_run(run_dir: Path, protocols: dict[str, tuple[int, int]], seq_len: int | None = None
                 ) -> dict[str, Any]:
    """Evaluate the last checkpoint of a run (the model after its final epoch) on the split
    experiments score on (:func:`scored_split`: test for generated data), generated ``seq_len``
    frames long when given; protocol -> result. Each result is stored in the run's scores.json;
    where the checkpoint is gone, the stored result of the same evaluation after the same number
    of epochs is returned instead, and an evaluation never stored is an error."""
    from matap.experiments.runs import SCORES, last_checkpoint, read_history, read_scores, write_scores

    epochs = len(read_history(run_dir))
    scores = read_scores(run_dir)
    keys = {name: f"{name} {context}->{horizon} T={seq_len}" for name, (context, horizon) in protocols.items()}
    if not last_checkpoint(run_dir).is_file():
        stored = {name: scores["evaluations"].get(key) for name, key in keys.items()}
        missing = [keys[name] for name, entry in stored.items() if entry is None or entry.get("epochs") != epochs]
        if missing:
            raise MatapError(f"{run_dir}: checkpoints/last.ckpt is gone and {SCORES} holds no evaluation "
                             f"{', '.join(missing)} after its {epochs} epochs; restore the checkpoint, or delete "
                             "the folder to train the run again")
        return {name: entry["result"] for name, entry in stored.items()}

    from matap.checkpoint import load_model
    from matap.evaluation import evaluate

    model, cfg, _ = load_model(run_dir, "last")
    videos = split_videos(cfg, scored_split(cfg), seq_len)
    results = {name: evaluate(model, videos, name, context, horizon, cfg.eval.batch_size)
               for name, (context, horizon) in protocols.items()}
    for name, result in results.items():
        scores["evaluations"][keys[name]] = {"epochs": epochs, "split": scored_split(cfg), "result": result}
    write_scores(run_dir, scores)
    return results


def record_baselines(results: dict[str, Any]) -> None:
    """Score the trivial baselines (``matap.baselines``) on exactly the sequences the experiment
    scored its models on (the split of its preset and overrides in ``results["split"]``, "val" for
    a results.json that does not name one, as long as :func:`evaluate_run` generated it) and store
    them as ``results["baselines"]``: name -> metric -> {"mean", "per_timestep"}. For an experiment
    that ``reports_reconstruction`` (compare), also all-black frames and the mean frame as the
    reconstruction of every frame of the validation set (the paper's protocol, as Table 1 measures
    it), as ``results["reconstruction_baselines"]``. They depend on the data only, so an older
    results.json can gain them without its runs."""
    from matap.experiments.runs import run_config

    cfg = run_config(results["preset"], results["overrides"], [], results["seeds"][0])
    split = results.get("split", "val")
    if data_description(cfg, split) != results["data"]:
        raise MatapError(f"preset {results['preset']!r} now gives other data ({data_description(cfg, split)}) than "
                         f"the experiment used ({results['data']}); its baselines cannot be recomputed")
    experiment = EXPERIMENTS.get(results["kind"])
    protocol, context, horizon = experiment.scored(results)
    videos, mean_frame = split_videos(cfg, split, context + horizon), mean_training_frame(cfg)
    scores = evaluate_baselines(videos, mean_frame, protocol, context, horizon, cfg.eval.batch_size)
    results["baselines"] = {name: value["metrics"] for name, value in scores.items()}
    if experiment.reports_reconstruction:  # on the validation sequences, where Table 1's columns are measured
        scores = evaluate_baselines(split_videos(cfg, "val"), mean_frame, "reconstruct", batch_size=cfg.eval.batch_size)
        results["reconstruction_baselines"] = {name: value["metrics"] for name, value in scores.items()}


def sample_pictures(runs: dict[str, Any], out: Path, context: int, horizon: int, num: int = 3) -> dict[str, str]:
    """For the first seed of each model that still has its checkpoint (a study spread over sessions
    may have kept only the small files of its earlier runs): a PNG of truth / teacher-forced output /
    rollout for ``num`` scored sequences, labelled with the seed, and a GIF of truth beside the
    prediction. Returns file names."""
    first = {name: next((r for r in model_runs if r.has_checkpoint), model_runs[0]) for name, model_runs in runs.items()}
    gone = [r.run_dir for r in first.values() if not r.has_checkpoint]
    if gone:   # keep the pictures an earlier invocation drew from the checkpoints, if they are there
        files = {name: f"{name}.gif" for name in first} | {"samples": "samples.png"}
        if all((out / f).is_file() for f in files.values()):
            print(f"kept {', '.join(files.values())} in {out}: {gone[0]} has no checkpoint to draw them again")
            return files
        for run_dir in gone:   # draw the models that still have a checkpoint; the report names the others
            print(f"warning: no seed of {run_dir.name.split('-seed')[0]} has its checkpoints/last.ckpt any more "
                  f"(the last looked at: {run_dir}); its pictures are not drawn", file=sys.stderr)
        first = {name: r for name, r in first.items() if r.has_checkpoint}
        if not first:
            return {}

    import torch

    from matap import viz
    from matap.checkpoint import load_model
    from matap.data import to_frames
    from matap.evaluation import reconstruct

    files: dict[str, str] = {}
    rows: list[np.ndarray] = []
    labels: list[str] = []
    clip = None
    for name, drawn in first.items():
        model, cfg, _ = load_model(drawn.run_dir, "last")
        if clip is None:
            clip = np.array(split_videos(cfg, scored_split(cfg), context + horizon)[:num, :context + horizon])
            rows.append(clip.astype(np.float32) / 255)
            labels.append("ground truth")
        with torch.inference_mode():
            x = to_frames(torch.from_numpy(clip))
            forced = reconstruct(model, x, context)[:, :, 0].numpy()
            pred = model.rollout(x[:, :context], horizon)[:, :, 0].numpy()
        label = f"{MODEL_LABELS.get(name, name)} (seed {drawn.seed})"
        if OBJECTIVES.get(cfg.objective.name).target_offset == 0:  # trained to decode its output at t as frame t
            rows.append(forced)
            labels.append(f"{label}: teacher-forced output at t (the paper's reconstruction of frame t)")
        else:  # trained to decode its output at t as frame t+1: shown under the frame it predicts
            rows.append(np.concatenate([np.zeros_like(forced[:, :1]), forced[:, :-1]], axis=1))
            labels.append(f"{label}: teacher-forced next-frame prediction (true frames up to t-1 in)")
        rows.append(np.concatenate([np.zeros_like(clip[:, :context], dtype=np.float32), pred], axis=1))
        labels.append(f"{label}: rollout from the first {context} frames")
        gif = f"{name}.gif"
        viz.save_prediction_gif(clip, pred, out / gif, scale=1)
        files[name] = gif
    _sample_figure(rows, labels, out / "samples.png")
    files["samples"] = "samples.png"
    return files


def picture_link(files: dict[str, str], key: str, text: str) -> str:
    """A markdown link to a picture, or a note that it was not drawn (its model had no checkpoint left)."""
    return f"[{text}]({files[key]})" if key in files else f"{text} (not drawn: no checkpoint was left)"


def _sample_figure(rows: list[np.ndarray], labels: list[str], path: Path) -> None:
    """One block per row kind; within a block, one line per sequence, frames left to right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    blocks = [np.concatenate([np.concatenate(list(video), axis=1) for video in r], axis=0) for r in rows]
    width = 12.0
    heights = [width * b.shape[0] / b.shape[1] + 0.3 for b in blocks]  # inches: the image and its title
    fig, axes = plt.subplots(len(blocks), 1, figsize=(width, sum(heights)), gridspec_kw={"height_ratios": heights})
    for ax, block, label in zip(np.atleast_1d(axes), blocks, labels):
        ax.imshow(block, cmap="gray", vmin=0, vmax=1, aspect="equal")
        ax.set_title(label, fontsize=10, loc="left")
        ax.axis("off")
    fig.tight_layout(pad=0.3)
    atomic_write(path, lambda fh: fig.savefig(fh, dpi=60, format="png"))
    plt.close(fig)


def curves_figure(panels: list[tuple[str, dict[str, np.ndarray]]], xlabel: str, path: Path,
                  references: Sequence[dict[str, Sequence[float]]] | None = None) -> None:
    """One panel per (title, {label: array (seeds, points)}): the mean over seeds as a line,
    the min-max over seeds as a band; ``references`` (one {label: points} per panel) as dashed
    grey lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2))
    for i, (ax, (title, series)) in enumerate(zip(np.atleast_1d(axes), panels)):
        for label, values in series.items():
            values = np.asarray(values, dtype=float)
            x = np.arange(1, values.shape[1] + 1)
            ax.plot(x, values.mean(0), label=label)
            ax.fill_between(x, values.min(0), values.max(0), alpha=0.2)
        for (label, values), grey in zip((references[i] if references else {}).items(), ("0.25", "0.6", "0.8")):
            ax.plot(np.arange(1, len(values) + 1), values, "--", color=grey, linewidth=1, label=label)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda fh: fig.savefig(fh, dpi=70, format="png"))
    plt.close(fig)


def check_eval_length(cfg: Any, frames: int) -> None:
    """User arrays have a fixed length: fail before training if an evaluation needs more frames."""
    if cfg.data.source == "array" and frames > cfg.data.seq_len:
        raise MatapError(f"the evaluation needs {frames} frames (context + horizon) but data.seq_len is "
                         f"{cfg.data.seq_len}; lower eval.context or eval.horizon")


def check_out(out: Path, runs_dir: Path) -> None:
    """Fail before any training when the output folder or the runs folder cannot be folders."""
    if out.exists() and not out.is_dir():
        raise MatapError(f"output folder {out}: exists and is not a folder")
    if runs_dir.exists() and not runs_dir.is_dir():
        raise MatapError(f"runs folder {runs_dir}: exists and is not a folder")


__all__ = ["MODEL_LABELS", "base_results", "baseline_rows", "check_eval_length", "check_out", "curves_figure",
           "data_description", "evaluate_run", "header", "machine", "model_label", "record_baselines", "render_folder",
           "sample_pictures", "scored_split", "split_videos", "table", "versus_baselines", "write"]
