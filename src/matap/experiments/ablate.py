"""``matap ablate``: trained ablations. Memory size K (the paper's Table 5, which it
computed on untrained models) and the components: no attention, no gate, masked
empty memory slots, no memory at all (the GRU baseline); and every other registered
cell (the memories of ``matap.modules.memories``), under its model name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matap.atomic import atomic_write
from matap.errors import MatapError
from matap.experiments import stats
from matap.experiments.claims import Claim, judge, verdict_table
from matap.experiments.report import (
    SPLIT_NAMES,
    baseline_rows,
    evaluate_run,
    header,
    model_label,
    rolled_out,
    scored_split,
    table,
    versus_baselines,
)
from matap.experiments.runner import Evaluations, Experiment, Spec, evaluation_fits
from matap.experiments.runs import Run
from matap.registry import CELLS, EXPERIMENTS, OBJECTIVES

# name -> (overrides, description). "matap" and "gru" share their run folders with `matap compare`.
VARIANTS: dict[str, tuple[list[str], str]] = {
    "k5": (["model.memory_size=5"], "MA-TAP, K = 5"),
    "matap": ([], "MA-TAP, K = 10 (the paper's)"),
    "k15": (["model.memory_size=15"], "MA-TAP, K = 15"),
    "k20": (["model.memory_size=20"], "MA-TAP, K = 20"),
    "no-attention": (["model.use_attention=false"], "no attention (context: LN(0), a learned constant)"),
    "no-gate": (["model.use_gate=false"], "no gate (alpha fixed at 0.5)"),
    "masked": (["model.mask_empty=true"], "empty memory slots masked"),
    "gru": (["model.name=gru"], "no memory (the GRU baseline)"),
}
PAPER_TABLE5 = {"k5": 0.0017, "matap": 0.0017, "k15": 0.0017, "k20": 0.0017}
MEMORY_SIZES = {"k5": 5, "matap": 10, "k15": 15, "k20": 20}


def all_variants() -> dict[str, tuple[list[str], str]]:
    """VARIANTS, then every other registered cell under its model name (``model.name=NAME``)."""
    cells = {name: ([f"model.name={name}"], CELLS.describe(name)) for name in CELLS if name not in ("matap", "gru")}
    return {**VARIANTS, **cells}


def add_arguments(p: Any) -> None:
    p.add_argument("--variants", nargs="+", default=None, metavar="NAME",
                   help=f"which ablations to train (default: all: {', '.join(VARIANTS)}, and every other "
                        "registered cell under its model name, e.g. matap-write)")


def _prepare(spec: Spec) -> Spec:
    known = all_variants()
    unknown = [v for v in spec.options.get("variants") or () if v not in known]
    if unknown:
        raise MatapError(f"variants: unknown {', '.join(unknown)} (known: {', '.join(known)})")
    return spec


def _variants(spec: Spec) -> dict[str, list[str]]:
    """The chosen variants (all by default), in the order of :func:`all_variants`."""
    known = all_variants()
    chosen = spec.options.get("variants") or known
    return {name: overrides for name, (overrides, _) in known.items() if name in chosen}


def _evaluations(spec: Spec, cfg: Any) -> Evaluations:
    return {"predict": (cfg.eval.context, cfg.eval.horizon)}, cfg.eval.context + cfg.eval.horizon


def _results(spec: Spec, cfg: Any, runs: dict[str, list[Run]]) -> dict[str, Any]:
    """Per variant, the final validation scores and the 10 -> 10 prediction, over seeds."""
    objective = OBJECTIVES.get(cfg.objective.name)
    frame_term = f"val_{objective.frame_term}"
    context, horizon = cfg.eval.context, cfg.eval.horizon
    print(f"evaluating the final models on the {SPLIT_NAMES[scored_split(cfg)]} set")
    rows, known = {}, all_variants()
    for name, model_runs in runs.items():
        evals = [evaluate_run(r.run_dir, *_evaluations(spec, cfg))["predict"]["metrics"] for r in model_runs]
        rows[name] = {
            "description": known[name][1], "overrides": known[name][0],
            "val_bce": stats.summary([r.history[-1][frame_term] for r in model_runs]),
            "val_loss": stats.summary([r.history[-1]["val_loss"] for r in model_runs]),
            "val_ssim": stats.summary([r.history[-1]["val_ssim"] for r in model_runs]),
            "val_ssim_mean_over_epochs": stats.summary([sum(r.column("val_ssim")) / len(r.history) for r in model_runs]),
            "predict_ssim": stats.summary([e["ssim"]["mean"] for e in evals]),
            "predict_mse": stats.summary([e["mse"]["mean"] for e in evals]),
        }
    return {"variants": rows, "claims": memory_claims(rows), "frame_term": frame_term, "epochs": cfg.train.epochs,
            "evaluation": {"context": context, "horizon": horizon}, "headline_ssim": f"val_ssim_{objective.headline}"}


def memory_claims(rows: dict[str, Any]) -> list[dict[str, Any]]:
    """For every memory beyond FIFO among ``rows`` (a registered cell other than matap and gru) and
    with MA-TAP's FIFO row beside it: does it predict better than FIFO? Two claims per memory, each
    measured per seed as the memory's advantage over the FIFO run of the same seed (same data, same
    train.seed): on the 10 -> 10 SSIM and on the validation frame term. Judged together (Holm's correction over all of them); [] without the FIFO row."""
    if "matap" not in rows:
        return []
    fifo = rows["matap"]
    claims = []
    for name, row in rows.items():
        if name in VARIANTS:
            continue
        ssim = [v - f for v, f in zip(row["predict_ssim"]["values"], fifo["predict_ssim"]["values"])]
        bce = [f - v for v, f in zip(row["val_bce"]["values"], fifo["val_bce"]["values"])]
        claims += [Claim(f"{name}-ssim", f"{name} predicts better than FIFO MA-TAP",
                         "10 -> 10 SSIM minus FIFO MA-TAP's, same seed", ssim, 0.0).to_json(),
                   Claim(f"{name}-bce", f"{name} fits the next frame better than FIFO MA-TAP",
                         "FIFO MA-TAP's val BCE minus its own, same seed", bce, 0.0).to_json()]
    return judge(claims) if claims else []


def refresh(results: dict[str, Any]) -> None:
    """Recompute the memory claims of a results.json from its per-seed values (results without
    memories beyond FIFO stay as they are)."""
    claims = memory_claims(results["variants"])
    if claims or "claims" in results:
        results["claims"] = claims


def _pictures(spec: Spec, results: dict[str, Any], runs: dict[str, list[Run]]) -> dict[str, str]:
    ev = results["evaluation"]
    _figure(results["variants"], ev_label=f"{ev['context']}->{ev['horizon']} SSIM", path=spec.out / "ablate.png")
    return {"figure": "ablate.png"}


def _figure(rows: dict[str, Any], ev_label: str, path: Path) -> None:
    """One bar per variant and metric: the mean over seeds, the range of seeds as dots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows)
    panels = (("val BCE (lower is better)", "val_bce"), ("val SSIM", "val_ssim"), (ev_label, "predict_ssim"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4))
    for ax, (title, key) in zip(axes, panels):
        means = [rows[n][key]["mean"] for n in names]
        ax.bar(range(len(names)), means, color="#8fb3d9")
        for i, n in enumerate(names):
            ax.plot([i] * rows[n][key]["n"], rows[n][key]["values"], "k.", markersize=4)
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda fh: fig.savefig(fh, dpi=70, format="png"))
    plt.close(fig)


def render(r: dict[str, Any]) -> str:
    f, fs = stats.fmt, stats.fmt_summary
    v = r["variants"]
    ev = r["evaluation"]
    baselines = r.get("baselines")
    per_seed = {name: {"ssim": v[name]["predict_ssim"]["values"], "mse": v[name]["predict_mse"]["values"]}
                for name in v}
    parts = [header(r, "Ablations of MA-TAP, trained"),
             f"Every variant trained for {r['epochs']} epochs with the same data and seeds; values are mean ± "
             f"standard deviation over {len(r['seeds'])} seed(s), of the final epoch unless the column says "
             "otherwise. 'val BCE' is the validation "
             f"frame term (`{r['frame_term']}`), 'val SSIM' the {r['headline_ssim']}; the {ev['context']} -> "
             f"{ev['horizon']} columns roll the final model (last.ckpt) out {rolled_out(r)} on the "
             f"{SPLIT_NAMES[r.get('split', 'val')]} set; the "
             "'trivial' rows predict the same frames without a model (see 'Against trivial predictions').", ""]
    k_rows = [[model_label(str(MEMORY_SIZES[name]), per_seed[name], baselines), PAPER_TABLE5[name],
               fs(v[name]["val_ssim_mean_over_epochs"]), fs(v[name]["val_ssim"]), fs(v[name]["val_bce"]),
               fs(v[name]["predict_ssim"])] for name in MEMORY_SIZES if name in v]
    if k_rows:
        if baselines is not None:
            k_rows += baseline_rows(baselines, lambda b: ["", "", "", "", f(b["ssim"]["mean"])])
        parts += ["## Table 5: memory size K, trained", "",
                  "The paper's Table 5 scored untrained models (SSIM 0.0017 for every K); these are trained.", "",
                  table(["K", "SSIM (paper, untrained)", "mean val SSIM over epochs", "final val SSIM", "val BCE",
                         f"{ev['context']}->{ev['horizon']} SSIM"], k_rows), ""]
    # The current wording of a known variant (older results.json files say "context c_t = 0" for no-attention).
    c_rows = [[model_label(name, per_seed[name], baselines), VARIANTS.get(name, (None, v[name]["description"]))[1],
               fs(v[name]["val_bce"]),
               fs(v[name]["val_loss"]), fs(v[name]["val_ssim"]), fs(v[name]["predict_ssim"]),
               fs(v[name]["predict_mse"], 1)] for name in v]
    if baselines is not None:
        c_rows += baseline_rows(baselines, lambda b: ["no model", "", "", "", f(b["ssim"]["mean"]),
                                                      f(b["mse"]["mean"], 1)])
    parts += ["## Components", "", f"![ablations]({r['files']['figure']})", "",
              "Bars: the mean over seeds; dots: each seed.", "",
              table(["variant", "what changes", "val BCE ↓", "val loss ↓", "val SSIM ↑",
                     f"{ev['context']}->{ev['horizon']} SSIM ↑", "MSE / frame ↓"], c_rows), ""]
    if len(r["seeds"]) > 1:
        parts += ["A difference between two variants is only worth reading when it is larger than their standard "
                  "deviations.", ""]
    if r.get("claims"):
        parts += ["## The memories beyond FIFO against MA-TAP", "",
                  "Each claim is measured per seed against the FIFO MA-TAP run of the same seed; it holds when "
                  "the 95% interval of the mean advantage lies above 0, does not hold when it lies below, and "
                  "is inconclusive otherwise.", "", verdict_table(r["claims"]), ""]
    parts += versus_baselines(per_seed, baselines, f"{ev['context']} -> {ev['horizon']} prediction")
    return "\n".join(parts)


EXPERIMENTS.register("ablate")(Experiment(
    help="trained ablations: memory size K (Table 5), components (attention, gate, masking, memory), other memories",
    description="Train each ablation for each seed (or reuse finished runs) and write OUT/report.md and "
                "OUT/results.json: memory size K in {5, 10, 15, 20}, the components, and every other registered "
                "cell (e.g. the learned write matap-write, the multi-scale matap-multiscale), mean and std over seeds.",
    variants=_variants, evaluations=_evaluations, analyse=_results, pictures=_pictures, render=render,
    add_arguments=add_arguments, options=("variants",), prepare=_prepare, check=evaluation_fits, refresh=refresh))

__all__ = ["VARIANTS", "add_arguments", "all_variants", "memory_claims", "refresh", "render"]
