"""``matap drift``: the long-horizon study the paper only hypothesised (§6). Both
models, trained on short sequences, are rolled out in latent space far past their
training length; per-frame SSIM, MSE and BCE show how fast each one drifts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from matap.baselines import LABELS
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
    rolled_out,
    sample_pictures,
    scored_split,
    table,
    versus_baselines,
)
from matap.experiments.runner import MODELS, Evaluations, Experiment, Spec
from matap.experiments.runs import Run
from matap.registry import EXPERIMENTS

SSIM_LEVELS = (0.5, 0.4, 0.3, 0.2, 0.1)
CURVE_METRICS = ("ssim", "mse", "bce")
FIGURE_BASELINES = ("black", "last_frame")  # drawn dashed in drift.png; the tables show every baseline


def add_arguments(p: Any) -> None:
    p.add_argument("--context", type=int, default=10, help="context frames (default: 10)")
    p.add_argument("--horizon", type=int, default=90, help="frames rolled out after the context (default: 90)")


def _prepare(spec: Spec) -> Spec:
    context, horizon = spec.options["context"], spec.options["horizon"]
    if context < 1 or horizon < 2:
        raise MatapError(f"drift: context ({context}) must be >= 1 and horizon ({horizon}) >= 2")
    return spec


def _check(spec: Spec, cfg: Any) -> None:
    if cfg.data.source == "array":
        raise MatapError("drift generates long validation sequences; it needs data.source=mnist or idx")


def _evaluations(spec: Spec, cfg: Any) -> Evaluations:
    context, horizon = spec.options["context"], spec.options["horizon"]
    return {"rollout": (context, horizon)}, context + horizon


def _results(spec: Spec, cfg: Any, runs: dict[str, list[Run]]) -> dict[str, Any]:
    """Per model and seed, the per-frame metrics of a long rollout on the scored split, and the claims."""
    context, horizon = spec.options["context"], spec.options["horizon"]
    print(f"rolling out {context} -> {horizon} frames on the {SPLIT_NAMES[scored_split(cfg)]} set")
    curves = {name: {m: [] for m in CURVE_METRICS} for name in runs}
    for name, model_runs in runs.items():
        for r in model_runs:
            result = evaluate_run(r.run_dir, *_evaluations(spec, cfg))["rollout"]["metrics"]
            for m in CURVE_METRICS:
                curves[name][m].append(result[m]["per_timestep"])
    return analyse(curves, context, horizon, cfg.data.seq_len)


def _pictures(spec: Spec, results: dict[str, Any], runs: dict[str, list[Run]]) -> dict[str, str]:
    draw_figure(results, spec.out)
    files = {"drift": "drift.png"}
    files.update(sample_pictures(runs, spec.out, results["context"], results["horizon"], num=2))
    return files


def draw_figure(results: dict[str, Any], out: Path) -> None:
    """OUT/drift.png from results.json: per-frame SSIM, MSE and BCE of each model, with all-black
    frames and the last context frame as dashed grey lines when the baselines are recorded."""
    curves, baselines = results["curves"], results.get("baselines")
    panels = [(f"{m.upper()} per predicted frame", {MODEL_LABELS[n]: curves[n][m] for n in curves})
              for m in CURVE_METRICS]
    references = None if baselines is None else [
        {LABELS[b]: baselines[b][m]["per_timestep"] for b in FIGURE_BASELINES} for m in CURVE_METRICS]
    curves_figure(panels, f"frames after the {results['context']} context frames", out / "drift.png", references)


def analyse(curves: dict[str, dict[str, list[list[float]]]], context: int, horizon: int, train_len: int
            ) -> dict[str, Any]:
    seeds = len(curves["matap"]["ssim"])
    below = {name: {str(level): [stats.first_to_reach(c, level, below=True) for c in curves[name]["ssim"]]
                    for level in SSIM_LEVELS} for name in curves}
    # Frames predicted within the training length vs beyond it.
    inside = max(1, min(horizon, train_len - context))
    adv = np.subtract(curves["matap"]["ssim"], curves["gru"]["ssim"])      # (seeds, horizon)
    steps = np.arange(1, horizon + 1)
    slopes = [float(np.polyfit(steps, a, 1)[0]) * 10 for a in adv]        # SSIM advantage gained per 10 frames
    late = horizon // 2
    growth = [float(a[late:].mean() - a[:inside].mean()) for a in adv]
    claims = []
    for cid, text, measure, values, target in (
            ("advantage-grows", "MA-TAP's advantage grows with the horizon (§6: more pronounced beyond 50 frames)",
             "slope of the per-frame SSIM advantage (MA-TAP - GRU) over the horizon, per 10 frames", slopes, 0.0),
            ("late-vs-early", "MA-TAP's advantage is larger far from the context than near it",
             f"mean SSIM advantage over frames {late + 1}-{horizon} minus over frames 1-{inside} "
             "(the part of the horizon inside the training length)", growth, 0.0),
            ("mitigates-drift", "MA-TAP mitigates error accumulation in autoregressive generation (abstract)",
             f"mean SSIM advantage (MA-TAP - GRU) over frames {late + 1}-{horizon}",
             [float(a[late:].mean()) for a in adv], 0.0)):
        claims.append(Claim(cid, text, measure, values, target).to_json())
    summarise_claims(claims)
    per_model = {name: {m: {"mean": np.mean(curves[name][m], axis=0).tolist(),
                            "std": (np.std(curves[name][m], axis=0, ddof=1).tolist() if seeds > 1 else None)}
                        for m in CURVE_METRICS} for name in curves}
    return {"context": context, "horizon": horizon, "train_len": train_len, "inside": inside,
            "curves": curves, "per_model": per_model, "frames_to_fall_below": below, "claims": claims}


def summarise_claims(claims: list[dict[str, Any]]) -> None:
    """Each claim's Student-t interval over seeds from its "per_seed" values, its verdict, p-value
    and verdict after Holm's correction over the claims (:func:`judge`)."""
    judge(claims)


def refresh(results: dict[str, Any]) -> None:
    """Recompute the claims' intervals and verdicts of a results.json from its per-seed values."""
    summarise_claims(results["claims"])


def render(r: dict[str, Any]) -> str:
    H, inside = r["horizon"], r["inside"]
    n = len(r["seeds"])
    baselines = r.get("baselines")
    # Per seed, the mean over the horizon: what a model is compared with the baselines on.
    per_seed = {name: {m: [float(np.mean(c)) for c in r["curves"][name][m]] for m in ("ssim", "mse")}
                for name in ("matap", "gru")}
    marks = sorted({t for t in (1, inside, 10, 25, 50, 75, 90, H) if 1 <= t <= H})
    parts = [header(r, f"Latent drift: {r['context']} -> {H} frames"),
             f"Both models were trained on {r['train_len']}-frame sequences and are rolled out {H} frames "
             f"{rolled_out(r)} from "
             f"{r['context']} context frames of {SPLIT_NAMES[r.get('split', 'val')]} sequences (the final model of "
             "each seed, last.ckpt). Per-frame values are means over sequences, "
             f"then mean ± std over {n} seed(s). "
             + ("The 'trivial' rows predict the same frames without a model (see 'Against trivial predictions'); "
                "the figure draws all-black frames and the last context frame as dashed grey lines."
                if baselines is not None else "Trivial baselines: not recorded in this results.json."), "",
             "## Per-frame metrics", "", "![drift](drift.png)", ""]
    for m in CURVE_METRICS:
        digits = 1 if m == "mse" else 4
        rows = []
        for name in ("matap", "gru"):
            pm = r["per_model"][name][m]
            cells = []
            for t in marks:
                mean = pm["mean"][t - 1]
                cells.append(stats.fmt(mean, digits) if pm["std"] is None
                             else f"{stats.fmt(mean, digits)} ± {stats.fmt(pm['std'][t - 1], digits)}")
            rows.append([model_label(MODEL_LABELS[name], per_seed[name], baselines), *cells])
        if baselines is not None:
            rows += baseline_rows(baselines, lambda b: [stats.fmt(b[m]["per_timestep"][t - 1], digits) for t in marks])
        parts += [f"{m.upper()} at predicted frame t:", "", table(["model", *[f"t={t}" for t in marks]], rows), ""]
    rows = []
    for level in SSIM_LEVELS:
        rows.append([f"SSIM < {level}", *[", ".join("never" if v is None else str(v)
                                                     for v in r["frames_to_fall_below"][name][str(level)])
                                          for name in ("matap", "gru")]])
    parts += ["## First predicted frame below an SSIM level (one entry per seed)", "",
              table(["level", "MA-TAP", "GRU baseline"], rows), ""]
    parts += versus_baselines({MODEL_LABELS[name]: per_seed[name] for name in ("matap", "gru")}, baselines,
                              f"{r['context']} -> {H} rollout, mean over the {H} predicted frames")
    parts += ["## Verdicts", "", how_judged(r["claims"]), "",
              verdict_table(r["claims"]), "",
              "Animations of ground truth beside the rollout: "
              + ", ".join(picture_link(r["files"], k, MODEL_LABELS[k]) for k in ("matap", "gru")) + "; "
              + picture_link(r["files"], "samples", "still frames") + ".", ""]
    return "\n".join(parts)


EXPERIMENTS.register("drift")(Experiment(
    help="long-horizon rollouts of both models (10 -> 90 frames): per-frame metrics and verdicts",
    description="Train both models for each seed (or reuse finished runs), roll them out far past their training "
                "length and write OUT/report.md, OUT/results.json, a figure of per-frame SSIM, MSE and BCE, and GIFs.",
    variants=lambda spec: MODELS, evaluations=_evaluations, analyse=_results, pictures=_pictures, render=render,
    add_arguments=add_arguments, options=("context", "horizon"), prepare=_prepare, check=_check,
    scored=lambda results: ("rollout", results["context"], results["horizon"]), redraw=draw_figure, refresh=refresh))

__all__ = ["add_arguments", "analyse", "draw_figure", "refresh", "render", "summarise_claims"]
