"""The table ``matap bench`` prints, and the keys of every model's result."""

from __future__ import annotations

from typing import Any

from matap.bench.settings import PROFILE_STEPS

RESULT_KEYS = ("train_frames_per_s", "infer_frames_per_s", "rollout_frames_per_s", "data_frames_per_s",
               "peak_rss_mb", "matmul_gflops", "matmul_bf16_gflops", "ceiling_gflops", "train_fraction_of_ceiling", "infer_fraction_of_ceiling",
               "train_flops_per_frame", "infer_flops_per_frame")


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _compiled(s: dict[str, Any]) -> str:
    """What was compiled: 'compile on' (everything), 'compile training' or 'compile off', with ' (auto)'."""
    if s.get("compile_inference", s["compile"]):
        return "compile on"
    auto = " (auto)" if s.get("compile_requested") == "auto" else ""
    return ("compile training" if s["compile"] else "compile off") + auto


def format_table(report: dict[str, Any]) -> str:
    m, s = report["machine"], report["settings"]
    device = m["device"] + (f" ({m['device_name']})" if "device_name" in m else "")
    lines = [
        f"machine  {m['cpu']}; {m['cores']} cores, torch threads {m['torch_threads']}; "
        f"torch {m['torch']}, python {m['python']}; device {device}",
        f"settings batch {s['batch_size']} x {s['seq_len']} frames of 64x64, objective {s['objective']}, "
        f"{s['precision']}{' (auto)' if s.get('precision_requested') == 'auto' else ''}, channels_last {'on' if s['channels_last'] else 'off'}, "
        f"{_compiled(s)}, BatchNorm folded for inference "
        f"{'on' if s.get('fold_bn', True) else 'off'}; median of {s['repeats']} after {s['warmup']} warm-up; "
        f"rollout {s['rollout_context']} -> {s['rollout_horizon']}; malloc {s.get('allocator_in_effect', 'system')}"
        + (f" up to {s['keep_cap_mb']} MiB resident" if s.get("allocator_in_effect") == "glibc-keep"
           and s.get("keep_cap_mb") else ""),
        f"ceiling  matmul {s['matmul_size']}x{s['matmul_size']}: fp32 {report['matmul_gflops']:.1f} GFLOP/s, "
        f"bf16 {report['matmul_bf16_gflops']:.1f} GFLOP/s; fractions against the {s['precision']} ceiling "
        f"(training FLOPs taken as {s['train_flops_factor']:g}x forward)",
    ]
    if m.get("bench_wall_s") is not None:
        line = f"run      {m['bench_wall_s']:.0f} s wall"
        if m.get("other_processes_cpu_s") is not None:
            line += (f"; CPU taken meanwhile by other processes {m['other_processes_cpu_s']:.0f} s, by the host "
                     f"{m['cpu_steal_s']:.0f} s, of {m['cores'] * m['bench_wall_s']:.0f} core-s (high = contended)")
        lines.append(line)
    lines.append("")
    cols = ("model", "train fr/s", "infer fr/s", "rollout fr/s", "data fr/s", "peak RSS MB",
            "train ceil", "infer ceil", "fwd MFLOP/fr", "kernel CPU")
    widths = (8, 11, 11, 13, 11, 12, 11, 11, 13, 11)
    lines.append("".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cols, widths))))
    for name, r in report["results"].items():
        cells = (name, f"{r['train_frames_per_s']:,.1f}", f"{r['infer_frames_per_s']:,.1f}",
                 f"{r['rollout_frames_per_s']:,.1f}", f"{r['data_frames_per_s']:,.0f}", f"{r['peak_rss_mb']:,.0f}",
                 f"{100 * r['train_fraction_of_ceiling']:.1f}%", f"{100 * r['infer_fraction_of_ceiling']:.1f}%",
                 f"{r['infer_flops_per_frame'] / 1e6:,.1f}", _percent(r.get("train_kernel_cpu_share")))
        lines.append("".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))))
    lines.append("kernel CPU: share of the training step's CPU time spent in the kernel (page faults, threads)")
    capped = {name: int(r["allocator_trims"]) for name, r in report["results"].items() if r.get("allocator_trims")}
    if capped:
        lines.append(f"malloc   past the cap on kept memory (MATAP_KEEP_MB, {s.get('keep_cap_mb')} MiB) freed memory went "
                     "back to the kernel, and malloc as it is for the rest: "
                     + ", ".join(f"{name} {count} time{'s' if count > 1 else ''}" for name, count in capped.items()))
    for name, r in report["results"].items():
        if r.get("train_profile"):
            unit = "device" if m["device"].startswith("cuda") else "CPU"
            lines += ["", f"profile  {name}: training step, top {len(r['train_profile'])} operators by self {unit} "
                          f"time (over {s.get('profile_steps', PROFILE_STEPS)} steps)",
                      f"{'operator':<44}{'ms/step':>10}{'share':>8}{'calls/step':>12}"]
            lines += [f"{row['op'][:43]:<44}{row['ms_per_step']:>10,.1f}{100 * row['share']:>7.1f}%"
                      f"{row['calls_per_step']:>12,.0f}" for row in r["train_profile"]]
    for name, r in report["results"].items():
        if r.get("layers"):
            lines += _layer_lines(name, r, s["precision"])
    return "\n".join(lines)


def _layer_lines(name: str, r: dict[str, Any], precision: str) -> list[str]:
    """The ``--layers`` table of one model and the bounds under it."""
    lines = ["", f"layers   {name}: each convolution and linear layer alone, at its calls in a training step "
                 f"(forward + backward) and in an inference call (forward); ms for all its calls",
             f"{'layer':<24}{'input':>18}{'calls':>7}{'train ms':>10}{'train ceil':>12}{'infer ms':>10}"
             f"{'infer ceil':>12}"]
    for row in r["layers"]:
        shape = "x".join(str(n) for n in row["shapes"][0])
        calls = f"{row['train_calls']:,.0f}" + ("" if row["infer_calls"] == row["train_calls"]
                                               else f"/{row['infer_calls']:,.0f}")
        lines.append(f"{row['layer'][:23]:<24}{shape[:17]:>18}{calls:>7}{row['train_ms_per_step']:>10,.1f}"
                     f"{_percent(row['train_fraction_of_ceiling']):>12}{row['infer_ms_per_step']:>10,.1f}"
                     f"{_percent(row['infer_fraction_of_ceiling']):>12}")
    lines += [f"{'all layers':<49}{r['layers_train_ms_per_step']:>10,.1f}{'':>12}{r['layers_infer_ms_per_step']:>10,.1f}",
              f"bound    if nothing but these layers took time, the training step would reach about "
              f"{_percent(r['layers_train_bound'])} and inference {_percent(r['layers_infer_bound'])} of the "
              f"{precision} ceiling (measured: {_percent(r['train_fraction_of_ceiling'])} and "
              f"{_percent(r['infer_fraction_of_ceiling'])}); products outside the layers (the GRU's gates, "
              "attention's scores) are not timed"]
    slower = [kind for kind in ("train", "infer")
              if r[f"layers_{kind}_bound"] is not None and r[f"layers_{kind}_bound"] < r[f"{kind}_fraction_of_ceiling"]]
    if slower:
        lines.append(f"note     the layers alone ({' and '.join(slower)}) took longer than the whole step: the step lays "
                     "them out or fuses them differently (a compiled step picks its own memory format), so "
                     "this is no bound")
    return lines


__all__ = ["RESULT_KEYS", "format_table"]
