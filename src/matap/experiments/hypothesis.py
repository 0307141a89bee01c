"""``matap hypothesis``: the paper's untested hypotheses (§6), each a small study with a verdict.

Each hypothesis varies one factor of the training setup in levels (the first is the reference,
the preset as given), trains MA-TAP and the GRU baseline at every level for every seed, and
measures what the paper says should change between the levels:

- ``length``: trained on 20 and on 50 frames, both rolled out 10 -> 90; does MA-TAP's
  advantage grow with the training length, and with the horizon?
- ``digits``: 2 digits against 3 (multi-object scenes where the digits cross and occlude);
- ``capacity``: a latent of d = 128 against 64, and twice the training budget;
- ``schedule``: a constant learning rate against cosine and cosine with warm restarts, and
  the baseline's epoch-to-epoch SSIM oscillations under each.

An advantage is MA-TAP's lead over the GRU of the same seed: SSIM(MA-TAP) - SSIM(GRU), or
MSE(GRU) - MSE(MA-TAP); a claim is its change between two levels, per seed. Every level's
models are shown beside the trivial predictions of that level's own sequences.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from matap.baselines import evaluate_baselines, mean_training_frame
from matap.errors import MatapError
from matap.experiments import stats
from matap.experiments.claims import Claim, how_judged, judge, verdict_table
from matap.experiments.report import (
    MODEL_LABELS,
    SPLIT_NAMES,
    baseline_rows,
    curves_figure,
    evaluate_run,
    header,
    model_label,
    picture_link,
    sample_pictures,
    scored_split,
    split_videos,
    table,
    versus_baselines,
)
from matap.experiments.runner import MODELS, Evaluations, Experiment, Spec
from matap.experiments.runs import Run, run_config
from matap.registry import EXPERIMENTS

METRICS = ("ssim", "mse")
BOUNDS = {"oscillation-cosine": (-1.0, 1.0), "oscillation-restarts": (-1.0, 1.0)}


@dataclass(frozen=True)
class Hypothesis:
    words: str                                          # the paper's words (§6)
    factor: str                                         # what is varied, in words
    levels: Callable[[Any], dict[str, tuple[str, list[str]]]]  # preset config -> level -> (label, overrides)
    protocol: str                                       # what each model is scored on: predict or rollout
    horizon: int                                        # frames scored after the 10 context frames
    claims: Callable[[dict[str, Any]], list[Claim]]     # results -> the claims, from per-seed values


def _advantage(results: dict[str, Any], level: str, metric: str, key: str = "scores") -> list[float]:
    """MA-TAP's lead over the GRU of the same seed at ``level``: per seed, higher when MA-TAP is better."""
    m, g = results[key][level]["matap"][metric], results[key][level]["gru"][metric]
    return [a - b if metric == "ssim" else b - a for a, b in zip(m, g)]


def _change(results: dict[str, Any], level: str, reference: str, metric: str, key: str = "scores") -> list[float]:
    return [a - b for a, b in zip(_advantage(results, level, metric, key), _advantage(results, reference, metric, key))]


def _length_levels(cfg: Any) -> dict[str, tuple[str, list[str]]]:
    return {"len20": ("trained on 20 frames", ["data.seq_len=20"]), "len50": ("trained on 50 frames", ["data.seq_len=50"])}


def _length_claims(r: dict[str, Any]) -> list[Claim]:
    curves = r["curves"]["len50"]
    steps = np.arange(1, r["horizon"] + 1)
    slopes = [float(np.polyfit(steps, np.subtract(a, b), 1)[0]) * 10
              for a, b in zip(curves["matap"]["ssim"], curves["gru"]["ssim"])]
    return [
        Claim("length-training", "MA-TAP's advantage is larger when trained on 50 frames than on 20",
              f"change of the SSIM advantage (MA-TAP - GRU, mean over the {r['horizon']} predicted frames) "
              "from 20- to 50-frame training", _change(r, "len50", "len20", "ssim"), 0.0, source="§6"),
        Claim("length-training-mse", "... and by MSE",
              f"change of the MSE advantage (GRU - MA-TAP, mean over the {r['horizon']} frames) from 20- to "
              "50-frame training", _change(r, "len50", "len20", "mse"), 0.0, source="§6"),
        Claim("length-horizon", "Trained on 50 frames, MA-TAP's advantage grows with the horizon",
              "slope of the per-frame SSIM advantage (MA-TAP - GRU) over the horizon, per 10 frames",
              slopes, 0.0, source="§6"),
    ]


def _digits_levels(cfg: Any) -> dict[str, tuple[str, list[str]]]:
    return {"digits2": ("2 digits", ["data.num_digits=2"]), "digits3": ("3 digits", ["data.num_digits=3"])}


def _digits_claims(r: dict[str, Any]) -> list[Claim]:
    return [Claim(f"occlusion-{m}", f"MA-TAP's advantage is larger with 3 digits than with 2 ({m.upper()})",
                  f"change of the {m.upper()} advantage from 2 to 3 digits", _change(r, "digits3", "digits2", m), 0.0,
                  source="§6") for m in METRICS]


def _capacity_levels(cfg: Any) -> dict[str, tuple[str, list[str]]]:
    budget = (f"train.max_time={cfg.train.max_time * 2:g}" if cfg.train.max_time > 0
              else f"train.epochs={cfg.train.epochs * 2}")
    return {"d64": (f"d = {cfg.model.latent_dim}, the preset's budget", []),
            "d128": ("d = 128", ["model.latent_dim=128"]),
            "budget2x": ("twice the training budget", [budget])}


def _capacity_claims(r: dict[str, Any]) -> list[Claim]:
    claims = []
    for level, what in (("d128", "with d = 128 than with 64"), ("budget2x", "with twice the training budget")):
        for key, task in (("scores", f"{r['context']} -> {r['horizon']} prediction"),
                          ("reconstruction", "the paper's teacher-forced reconstruction")):
            claims.append(Claim(f"{level}-{'predict' if key == 'scores' else 'reconstruct'}",
                                f"The gap between MA-TAP and the GRU widens {what} ({task})",
                                f"change of the SSIM advantage (MA-TAP - GRU) on {task}",
                                _change(r, level, "d64", "ssim", key), 0.0, source="§6"))
    return claims


def _schedule_levels(cfg: Any) -> dict[str, tuple[str, list[str]]]:
    return {"constant": ("constant rate", ["train.schedule=none"]), "cosine": ("cosine", ["train.schedule=cosine"]),
            "restarts": ("cosine with warm restarts", ["train.schedule=restarts"])}


def _schedule_claims(r: dict[str, Any]) -> list[Claim]:
    wobble = r["oscillation"]
    return [Claim(f"oscillation-{level}", f"A {label} schedule calms the baseline's SSIM oscillations",
                  "GRU share of epoch-to-epoch validation-SSIM changes that reverse direction, constant rate minus "
                  f"{label}", [a - b for a, b in zip(wobble["constant"]["gru"], wobble[level]["gru"])], 0.0,
                  source="§7")
            for level, label in (("cosine", "cosine"), ("restarts", "warm-restart"))]


HYPOTHESES = {
    "length": Hypothesis("MA-TAP's advantages would be more pronounced on longer sequences (more than 50 frames)",
                         "training sequence length", _length_levels, "rollout", 90, _length_claims),
    "digits": Hypothesis("MA-TAP's advantages would be more pronounced on multi-object scenes with occlusions",
                         "digits per scene", _digits_levels, "predict", 10, _digits_claims),
    "capacity": Hypothesis("with extended training and increased model capacity (latent_dim = 128 instead of 64), "
                           "the gap between MA-TAP and BASELINE would widen significantly, particularly for "
                           "reconstruction quality", "latent size and training budget", _capacity_levels,
                           "predict", 10, _capacity_claims),
    "schedule": Hypothesis("Investigating learning rate schedules (cosine annealing, warm restarts) ... to further "
                           "reduce the observed oscillations", "learning-rate schedule", _schedule_levels,
                           "predict", 10, _schedule_claims),
}
CONTEXT = 10


def add_arguments(p: Any) -> None:
    p.add_argument("--hypothesis", required=True, choices=HYPOTHESES,
                   help="which one: length (20 against 50 training frames, rolled out 10 -> 90), digits (3 against "
                        "2), capacity (d = 128 and twice the budget against the preset) or schedule (constant, "
                        "cosine, warm restarts)")


def _levels(spec: Spec) -> dict[str, tuple[str, list[str]]]:
    return HYPOTHESES[spec.options["hypothesis"]].levels(run_config(spec.preset, list(spec.overrides), [],
                                                                    spec.seeds[0]))


def _run_names(spec: Spec) -> dict[str, str]:
    """Level -> the prefix of its runs' names: "" for a level that leaves the preset as it is (its runs
    are those compare and drift train, ``matap-seed0``, and are shared with them under the same --runs),
    else "-LEVEL" (``matap-digits3-seed0``)."""
    preset = run_config(spec.preset, list(spec.overrides), [], spec.seeds[0]).to_dict()
    return {level: "" if run_config(spec.preset, list(spec.overrides), o, spec.seeds[0]).to_dict() == preset
            else f"-{level}" for level, (_, o) in _levels(spec).items()}


def _variants(spec: Spec) -> dict[str, list[str]]:
    names = _run_names(spec)
    return {f"{model}{names[level]}": [*overrides, *level_overrides]
            for level, (_, level_overrides) in _levels(spec).items() for model, overrides in MODELS.items()}


def _check(spec: Spec, cfg: Any) -> None:
    if cfg.data.source == "array":
        raise MatapError("hypothesis varies the generated data; it needs data.source=mnist or idx")
    if spec.options["hypothesis"] == "schedule" and cfg.train.epochs < 3:
        raise MatapError(f"the schedule hypothesis counts epoch-to-epoch reversals: it needs train.epochs >= 3, "
                         f"got {cfg.train.epochs}")


def _level_baselines(cfg: Any, protocol: str, horizon: int) -> dict[str, Any]:
    videos = split_videos(cfg, scored_split(cfg), CONTEXT + horizon)
    scores = evaluate_baselines(videos, mean_training_frame(cfg), protocol, CONTEXT, horizon, cfg.eval.batch_size)
    return {name: value["metrics"] for name, value in scores.items()}


def _evaluations(spec: Spec, cfg: Any) -> Evaluations:
    name = spec.options["hypothesis"]
    h = HYPOTHESES[name]
    protocols = {h.protocol: (CONTEXT, h.horizon)}
    if name == "capacity":
        protocols["reconstruct"] = (CONTEXT, h.horizon)
    return protocols, CONTEXT + h.horizon


def _results(spec: Spec, cfg: Any, runs: dict[str, list[Run]]) -> dict[str, Any]:
    """Per level, model and seed: the scored metrics (mean over the predicted frames), the per-frame
    curves, the baselines of the level's own sequences, the oscillations; then the claims."""
    name = spec.options["hypothesis"]
    h, levels, names = HYPOTHESES[name], _levels(spec), _run_names(spec)
    out: dict[str, Any] = {"hypothesis": name, "context": CONTEXT, "horizon": h.horizon, "protocol": h.protocol,
                           "levels": {level: {"label": label, "overrides": o} for level, (label, o) in levels.items()},
                           "scores": {}, "curves": {}, "reconstruction": {}, "oscillation": {},
                           "level_baselines": {}}
    for level, (label, overrides) in levels.items():
        print(f"scoring the models {label} on the {SPLIT_NAMES[scored_split(cfg)]} set")
        for key in ("scores", "curves", "reconstruction", "oscillation"):
            out[key][level] = {}
        for model in MODELS:
            scored = [evaluate_run(r.run_dir, *_evaluations(spec, cfg)) for r in runs[f"{model}{names[level]}"]]
            metrics = [s[h.protocol]["metrics"] for s in scored]
            out["scores"][level][model] = {m: [x[m]["mean"] for x in metrics] for m in METRICS}
            out["curves"][level][model] = {m: [x[m]["per_timestep"] for x in metrics] for m in METRICS}
            if name == "capacity":
                out["reconstruction"][level][model] = {m: [s["reconstruct"]["metrics"][m]["mean"] for s in scored]
                                                       for m in METRICS}
            out["oscillation"][level][model] = [stats.oscillation(r.column("val_ssim")) for r in runs[f"{model}{names[level]}"]]
        level_cfg = run_config(spec.preset, [*spec.overrides, *overrides], [], spec.seeds[0])
        out["level_baselines"][level] = _level_baselines(level_cfg, h.protocol, h.horizon)
    out["claims"] = [c.to_json() for c in h.claims(out)]
    refresh(out)
    return out


def refresh(results: dict[str, Any]) -> None:
    """Recompute the claims' intervals and verdicts from their per-seed values."""
    judge(results["claims"], bounds=BOUNDS)


def draw_figure(results: dict[str, Any], out: Path) -> None:
    """OUT/hypothesis.png: per-frame SSIM and MSE of both models at every level (mean over seeds,
    with their range), all-black frames of each level's sequences as dashed grey lines."""
    levels = results["levels"]
    panels = [(f"{m.upper()} per predicted frame",
               {f"{MODEL_LABELS[model]}, {levels[level]['label']}": results["curves"][level][model][m]
                for level in levels for model in MODELS}) for m in METRICS]
    black = {level: results["level_baselines"][level]["black"] for level in levels}
    curves_figure(panels, f"frames after the {results['context']} context frames", out / "hypothesis.png",
                  [{f"all-black frames, {levels[level]['label']}": b[m]["per_timestep"] for level, b in black.items()}
                   for m in METRICS])


def _pictures(spec: Spec, results: dict[str, Any], runs: dict[str, list[Run]]) -> dict[str, str]:
    draw_figure(results, spec.out)
    tested = list(results["levels"])[1]  # the level the paper names
    files = {"figure": "hypothesis.png"}
    files.update(sample_pictures({model: runs[f"{model}{_run_names(spec)[tested]}"] for model in MODELS}, spec.out,
                                 results["context"], results["horizon"], num=2))
    return files


def render(r: dict[str, Any]) -> str:
    h = HYPOTHESES[r["hypothesis"]]
    levels, n = r["levels"], len(r["seeds"])
    task = f"{r['context']} -> {r['horizon']} {'rollout' if r['protocol'] == 'rollout' else 'prediction'}"
    parts = [header(r, f"Hypothesis: {h.factor}"),
             f"> {h.words}. (the paper, §6-7)", "",
             f"MA-TAP and the GRU baseline were trained at each level of the {h.factor} below, {n} seed(s) each, "
             f"and scored on {task} of {SPLIT_NAMES[r.get('split', 'val')]} sequences (the final model of each "
             "run). Values are means over sequences and over the predicted frames, then mean ± std over seeds. "
             "Each level's models stand beside the trivial predictions of that level's own sequences.", "",
             "| level | overrides |", "|---|---|",
             *[f"| {v['label']} | {', '.join(f'`{o}`' for o in v['overrides']) or 'none'} |" for v in levels.values()],
             "", "## Scores", "", "![per-frame curves](hypothesis.png)", ""]
    for level, v in levels.items():
        baselines = r["level_baselines"][level]
        rows = [[model_label(MODEL_LABELS[model], r["scores"][level][model], baselines),
                 *[stats.fmt_summary(stats.summary(r["scores"][level][model][m]), 1 if m == "mse" else 4)
                   for m in METRICS],
                 stats.fmt_summary(stats.summary(r["oscillation"][level][model]), 3)] for model in MODELS]
        rows += baseline_rows(baselines, lambda b: [stats.fmt(b[m]["mean"], 1 if m == "mse" else 4) for m in METRICS]
                              + [""])
        parts += [f"### {v['label']}", "", table(["model", "SSIM", "MSE per frame", "SSIM oscillation"], rows), ""]
        if r["reconstruction"].get(level):
            rows = [[MODEL_LABELS[model], *[stats.fmt_summary(stats.summary(r["reconstruction"][level][model][m]),
                                                              1 if m == "mse" else 4) for m in METRICS]]
                    for model in MODELS]
            parts += ["The paper's teacher-forced reconstruction (its protocol):", "",
                      table(["model", "SSIM", "MSE per frame"], rows), ""]
    for i, (level, v) in enumerate(levels.items()):
        against = versus_baselines({f"{MODEL_LABELS[model]}, {v['label']}": r["scores"][level][model]
                                    for model in MODELS}, r["level_baselines"][level], f"{task}, at each level")
        parts += [*(against[:4] if i == 0 else []), f"### {v['label']}", "", *against[4:]]
    parts += ["## Verdicts", "",
              how_judged(r["claims"]) + " A verdict on models that do not beat all-black frames (tagged in the "
              "tables above) says little about models that predict.", "",
              verdict_table(r["claims"]), "",
              f"Still frames of the models {list(levels.values())[1]['label']}: "
              + picture_link(r["files"], "samples", "samples") + ".",
              ""]
    return "\n".join(parts)


EXPERIMENTS.register("hypothesis")(Experiment(
    help="one of the paper's untested hypotheses (§6): longer sequences, 3 digits, d = 128 and a 2x budget, "
         "learning-rate schedules",
    description="Train MA-TAP and the GRU baseline at each level of one factor (--hypothesis) for each seed (or "
                "reuse finished runs), score them beside the trivial predictions of each level's sequences and "
                "write OUT/report.md and OUT/results.json with a verdict on each claim.",
    variants=_variants, evaluations=_evaluations, analyse=_results, pictures=_pictures, render=render,
    add_arguments=add_arguments, options=("hypothesis",), check=_check,
    scored=lambda results: (results["protocol"], results["context"], results["horizon"]), redraw=draw_figure,
    refresh=refresh))

__all__ = ["HYPOTHESES", "draw_figure", "refresh", "render"]
