"""``matap inspect``: what a memory cell does at every step, teacher-forced and in a rollout.

A :class:`Recorder` is attached to a model for the length of a ``with recording(model)``
block; the cells report to it what they compute (``Cell.recorder``: the attention weights of
each head over the K slots and the ages of the writes those slots hold, the gate a_t, the GRU
state and the memory context). Outside that block no cell reports anything, and inside it the
forward pass computes the same numbers: the cells only hand copies of their tensors over.

:func:`inspect` loads a run, traces a few sequences twice (teacher-forced over the true frames,
then rolled out from the first ``context`` frames, fed its own predictions after them), and
writes the arrays (``inspect.json``) and figures (``docs/memory.md`` says how to read them).
"""

from __future__ import annotations

import json
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from matap.atomic import atomic_write
from matap.errors import MatapError

PASSES = {"teacher_forced": "teacher-forced (true frames in)",
          "rollout": "rollout (its own predictions in after the context)"}
STYLES = {"teacher_forced": ("tab:blue", "-"), "rollout": ("tab:orange", "--")}  # colour and line of a pass's curves
QUANTILES = (0.1, 0.9)  # the band of the gate curves: over sequences and latent dimensions


class Recorder:
    """What the cells of a model report while it is attached (:func:`recording`): one dict of
    named tensors per cell step, as float copies on the CPU."""

    def __init__(self) -> None:
        self.steps: list[dict[str, torch.Tensor]] = []
        self._pending: dict[str, torch.Tensor] = {}

    def record(self, **values: torch.Tensor) -> None:
        """Part of the current step (a cell's attention reports before the cell ends the step)."""
        self._pending.update({name: value.detach().float().cpu().clone() for name, value in values.items()})

    def step(self, **values: torch.Tensor) -> None:
        """The rest of the current step, which it ends."""
        self.record(**values)
        self.steps.append(self._pending)
        self._pending = {}

    def arrays(self, batch: int) -> dict[str, np.ndarray]:
        """Every reported name as a (batch, steps, ...) array; NaN at a step that did not report it
        (the attention of a step that read no memory). A value without its batch axis (a slot age
        that is the same for every sequence) is repeated over the batch."""
        out = {}
        for name in dict.fromkeys(n for step in self.steps for n in step):
            shape = next(s[name].shape for s in self.steps if name in s)
            full = shape if shape[:1] == (batch,) else (batch, *shape)
            out[name] = np.stack([step[name].expand(full).numpy() if name in step else np.full(full, np.nan)
                                  for step in self.steps], axis=1)
        return out


@contextmanager
def recording(model: nn.Module) -> Iterator[Recorder]:
    """Attach a new :class:`Recorder` to every part of ``model`` that can report (``recorder``)."""
    recorder = Recorder()
    parts = [module for module in model.modules() if hasattr(module, "recorder")]
    for module in parts:
        module.recorder = recorder
    try:
        yield recorder
    finally:
        for module in parts:
            del module.recorder  # back to the class attribute, None


@torch.inference_mode()
def trace(model: nn.Module, frames: torch.Tensor, context: int, horizon: int
          ) -> tuple[dict[str, dict[str, np.ndarray]], torch.Tensor]:
    """Per pass ("teacher_forced", "rollout"), the recorded arrays of ``frames`` (N, context + horizon,
    1, H, W) in [0, 1], over the context + horizon - 1 cell steps that both passes take (step t reads
    frame t: the true one, or from step context + 1 on in the rollout, the model's prediction of it);
    and the rolled-out frames (N, horizon, 1, H, W)."""
    n, steps = frames.shape[0], context + horizon - 1
    with recording(model) as forced:
        model(frames[:, :steps])
    with recording(model) as rolled:
        predicted = model.rollout(frames[:, :context], horizon)
    passes = {"teacher_forced": forced.arrays(n), "rollout": rolled.arrays(n)}
    if not passes["teacher_forced"]:
        raise MatapError("this model's cell reports nothing to inspect (it has no memory)")
    return {name: derived(arrays) for name, arrays in passes.items()}, predicted


def derived(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The recorded arrays with the norms of the two terms of Eq. 4, (N, S) each, in place of the GRU
    state and the context vectors: ||h~_t||, ||c'_t|| (c'_t = tanh(W_c c_t)), ||(1 - a_t) h~_t||,
    ||a_t c'_t||."""
    out = {k: v for k, v in arrays.items() if k not in ("gru", "context")}
    gru, context, gate = arrays["gru"], arrays["context"], arrays["gate"]
    out["gru_norm"] = np.linalg.norm(gru, axis=-1)
    out["context_norm"] = np.linalg.norm(context, axis=-1)
    out["gru_term"] = np.linalg.norm((1 - gate) * gru, axis=-1)
    out["memory_term"] = np.linalg.norm(gate * context, axis=-1)
    return out


def attention_by_age(attention: np.ndarray, ages: np.ndarray, max_age: int) -> tuple[np.ndarray, np.ndarray]:
    """Attention (N, S, H, K) summed over the slots that hold a write of the same age (ages (N, S, K),
    NaN: an empty slot) -> (N, S, H, max_age + 1), index 0 the empty slots, index a the write of age a;
    and how many slots hold each age, (N, S, max_age + 1)."""
    index = np.where(np.isnan(ages), 0, np.nan_to_num(ages)).astype(int)       # (N, S, K)
    onehot = np.eye(max_age + 1)[np.clip(index, 0, max_age)]                    # (N, S, K, A + 1)
    return np.einsum("nshk,nska->nsha", attention, onehot), onehot.sum(axis=2)


def summary(passes: dict[str, dict[str, np.ndarray]], context: int) -> dict[str, dict[str, dict[str, float | None]]]:
    """Per pass and phase ("context": steps 1..C, "after": the steps after them), the mean gate, the
    memory term's share of the two terms of Eq. 4, and, with attention, its mass on the empty slots,
    on the newest write, and the mean age of the writes it reads (weighted by attention); None where
    no step of the phase has a value (no memory read)."""
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for name, a in passes.items():
        out[name] = {}
        for phase, steps in (("context", slice(0, context)), ("after", slice(context, None))):
            values = {"gate": a["gate"][:, steps].mean(),
                      "memory_share": (a["memory_term"] / (a["memory_term"] + a["gru_term"]))[:, steps].mean()}
            if "attention" in a:
                w, ages = a["attention"][:, steps], a["ages"][:, steps, None, :]  # (N, S, H, K), (N, S, 1, K)
                written = np.where(np.isnan(ages), 0, w)
                with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
                    warnings.simplefilter("ignore", RuntimeWarning)  # a step without a read is NaN: left out
                    values["attention_empty"] = np.nanmean(np.where(np.isnan(ages), w, 0).sum(-1))
                    values["attention_newest"] = np.nanmean((w * (ages == 1)).sum(-1))
                    values["attended_age"] = np.nanmean((written * np.nan_to_num(ages)).sum(-1) / written.sum(-1))
            if "write" in a:
                values["write"] = a["write"][:, steps].mean()
            out[name][phase] = {k: float(v) if np.isfinite(v) else None for k, v in values.items()}
    return out


def _listed(array: np.ndarray) -> Any:
    """An array as nested lists for JSON, NaN as null."""
    return np.where(np.isnan(array), None, array.astype(object)).tolist()


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    atomic_write(path, lambda fh: fig.savefig(fh, dpi=80, format="png", bbox_inches="tight"))
    _plt().close(fig)


def _max_age(passes: dict[str, dict[str, np.ndarray]]) -> int:
    """The oldest write any slot held (from step 2 on, some slot holds one)."""
    return int(max(np.nanmax(a["ages"]) for a in passes.values()))


def _mark_context(ax: Any, context: int, colour: str = "0.3") -> None:
    """A dashed line between step C and step C + 1, where the rollout starts reading its own predictions."""
    ax.axvline(context + 0.5, color=colour, linestyle="--", linewidth=1)


def attention_figure(passes: dict[str, dict[str, np.ndarray]], context: int, path: Path) -> None:
    """One heat map per pass (rows) and head (columns): attention by the age of the write a slot holds
    (y, 'empty' at the bottom) at every step (x), mean over the sequences; grey where no slot holds
    a write of that age."""
    plt = _plt()
    max_age = _max_age(passes)
    heads = passes["teacher_forced"]["attention"].shape[2]
    fig, axes = plt.subplots(len(passes), heads, figsize=(2.9 * heads + 0.8, 2.2 + 0.11 * max_age * len(passes)),
                             squeeze=False, sharey=True, layout="constrained")
    cmap = plt.get_cmap("viridis").with_extremes(bad="0.85")  # grey: no slot holds a write of that age
    for row, (name, a) in enumerate(passes.items()):
        mass, held = attention_by_age(a["attention"], a["ages"], max_age)  # (N, S, H, A + 1), (N, S, A + 1)
        steps = mass.shape[1]
        for head in range(heads):
            ax = axes[row, head]
            image = mass[:, :, head].mean(axis=0).T                        # (A + 1, S); NaN: a step without a read
            image[held.sum(0).T == 0] = np.nan
            shown = ax.imshow(np.ma.masked_invalid(image), aspect="auto", origin="lower", cmap=cmap, vmin=0, vmax=1,
                              extent=(0.5, steps + 0.5, -0.5, max_age + 0.5), interpolation="nearest")
            _mark_context(ax, context, "white")
            ax.set_title(f"head {head + 1}, {PASSES[name].split(' (')[0]}", fontsize=9)
            ax.set_xlabel("step t (reads frame t)", fontsize=8)
            ax.tick_params(labelsize=7)
        axes[row, 0].set_ylabel("age of the write read", fontsize=8)
    ticks = [0, *range(1, max_age + 1, max(1, max_age // 8))]
    axes[0, 0].set_yticks(ticks, ["empty", *map(str, ticks[1:])])
    fig.colorbar(shown, ax=axes, fraction=0.02, pad=0.01, label="attention weight")
    fig.suptitle(f"Attention over the memory slots by the age of their write, mean over sequences; the rollout "
                 f"reads its own predictions right of the dashed line (after step {context})", fontsize=9)
    _save(fig, path)


def gate_figure(passes: dict[str, dict[str, np.ndarray]], context: int, path: Path) -> None:
    """The gate a_t (mean, and its 10-90% band over sequences and dimensions), the norms of the GRU state
    and of the memory context, the memory term's share of Eq. 4, and a_t per dimension in the rollout."""
    plt = _plt()
    fig, axes = plt.subplots(2, 2, figsize=(11, 6.4), layout="constrained")
    for name, a in passes.items():
        (c, style), label = STYLES[name], PASSES[name]
        steps = np.arange(1, a["gate"].shape[1] + 1)
        pooled = a["gate"].transpose(1, 0, 2).reshape(len(steps), -1)     # (S, N * d)
        low, high = np.quantile(pooled, QUANTILES, axis=1)
        axes[0, 0].plot(steps, pooled.mean(1), style, color=c, label=label)
        axes[0, 0].fill_between(steps, low, high, color=c, alpha=0.2)
        axes[0, 1].plot(steps, a["gru_norm"].mean(0), style, color="tab:green", label=f"||h~_t||, {name}")
        axes[0, 1].plot(steps, a["context_norm"].mean(0), style, color="tab:purple", label=f"||tanh(W_c c_t)||, {name}")
        share = a["memory_term"] / (a["memory_term"] + a["gru_term"])   # (N, S)
        axes[1, 0].plot(steps, share.mean(0), style, color=c, label=label)
        axes[1, 0].fill_between(steps, share.min(0), share.max(0), color=c, alpha=0.2)
    gate = passes["rollout"]["gate"].mean(0).T                          # (d, S)
    order = np.argsort(gate.mean(1))
    shown = axes[1, 1].imshow(gate[order], aspect="auto", origin="lower", cmap="magma", vmin=0, vmax=1,
                              extent=(0.5, gate.shape[1] + 0.5, -0.5, gate.shape[0] - 0.5), interpolation="nearest")
    fig.colorbar(shown, ax=axes[1, 1], fraction=0.04, pad=0.01, label="a_t")
    titles = ((f"gate a_t: mean; band {QUANTILES[0]:.0%}-{QUANTILES[1]:.0%} over sequences and dims", "a_t"),
              ("norms of the two terms of Eq. 4 (mean over sequences)", "norm"),
              ("memory's share ||a c'|| / (||a c'|| + ||(1-a) h~||); band: min-max", "share"),
              ("a_t per dimension, rollout (mean over sequences; sorted)", "dimension"))
    for ax, (title, ylabel) in zip(axes.flat, titles):
        _mark_context(ax, context)
        ax.set_title(title, fontsize=8)
        ax.set_xlabel("step t (reads frame t)", fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in (axes[0, 0], axes[0, 1], axes[1, 0]):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0, 0].set_ylim(0, 1)
    axes[1, 0].set_ylim(0, 1)
    _save(fig, path)


def ages_figure(passes: dict[str, dict[str, np.ndarray]], context: int, path: Path) -> None:
    """Left: the share of attention on each age of write (mean over heads, sequences and the steps of
    each phase). Right: the ages the slots hold at the last step of the rollout (all sequences)."""
    plt = _plt()
    max_age = _max_age(passes)
    x = np.arange(max_age + 1)
    labels = ["empty", *map(str, x[1:])]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4), gridspec_kw={"width_ratios": (3, 2)}, layout="constrained")
    groups = ((f"steps 1-{context} (context, both passes)", passes["teacher_forced"], slice(0, context)),
              (f"steps {context + 1}+, true frames in", passes["teacher_forced"], slice(context, None)),
              (f"steps {context + 1}+, own predictions in", passes["rollout"], slice(context, None)))
    width = 0.8 / len(groups)
    for i, (label, a, steps) in enumerate(groups):
        mass, _ = attention_by_age(a["attention"][:, steps], a["ages"][:, steps], max_age)
        read = mass.reshape(-1, max_age + 1)
        read = read[~np.isnan(read).any(axis=1)]                       # leave out the steps without a read
        if len(read):
            axes[0].bar(x + (i - 1) * width, read.mean(axis=0), width, label=label)
    axes[0].set_title("share of attention on each age of write (mean over heads, sequences, steps)", fontsize=8)
    axes[0].set_ylabel("attention weight", fontsize=8)
    last = passes["rollout"]["ages"][:, -1]                            # (N, K)
    counts = np.bincount(np.where(np.isnan(last), 0, np.nan_to_num(last)).astype(int).ravel(), minlength=max_age + 1)
    axes[1].bar(x, counts / len(last), 0.8, color="0.4")
    axes[1].set_title(f"ages the K slots hold at the last step ({last.shape[0]} sequences)", fontsize=8)
    axes[1].set_ylabel("slots per sequence", fontsize=8)
    for ax in axes:
        ax.set_xticks(x, labels, fontsize=7)
        ax.set_xlabel("age of the write (steps ago)", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=7)
    _save(fig, path)


def write_figure(passes: dict[str, dict[str, np.ndarray]], context: int, path: Path) -> None:
    """A learned write: the amount w_t per step, and the ages of the writes it replaced."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.2), layout="constrained")
    max_age = _max_age(passes)
    for i, (name, a) in enumerate(passes.items()):
        (c, style), steps = STYLES[name], np.arange(1, a["write"].shape[1] + 1)
        axes[0].plot(steps, a["write"].mean(0), style, color=c, label=PASSES[name])
        axes[0].fill_between(steps, a["write"].min(0), a["write"].max(0), color=c, alpha=0.2)
        replaced = a["replaced"][:, context:]
        counts = np.bincount(np.where(np.isnan(replaced), 0, np.nan_to_num(replaced)).astype(int).ravel(),
                             minlength=max_age + 1)
        axes[1].bar(np.arange(len(counts)) + (i - 0.5) * 0.4, counts / counts.sum(), 0.4, color=c,
                    label=f"steps {context + 1}+, {PASSES[name]}")
    axes[1].set_xticks(np.arange(max_age + 1), ["empty", *map(str, range(1, max_age + 1))], fontsize=7)
    _mark_context(axes[0], context)
    axes[0].set_title("amount written w_t (mean, min-max over sequences)", fontsize=8)
    axes[0].set_xlabel("step t", fontsize=8)
    axes[0].set_ylim(0, 1)
    axes[1].set_title("age of the write each step replaced", fontsize=8)
    axes[1].set_xlabel("age (steps ago)", fontsize=8)
    axes[1].set_ylabel("share of steps", fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    _save(fig, path)


def attention_gif(videos: np.ndarray, predicted: np.ndarray, passes: dict[str, dict[str, np.ndarray]], context: int,
                  path: Path) -> None:
    """Per sequence (rows) and step (frames of the GIF): the true frame t, the frame the rollout read at
    step t (from step C + 1 on, its prediction), and its attention (one row per head, slots from the
    newest write to the oldest, left to right; grey: the uniform weight 1/K, white: twice that or more)."""
    from matap import viz

    a = passes["rollout"]
    attention, ages = a["attention"], a["ages"]                        # (N, S, H, K), (N, S, K)
    N, S, H, K = attention.shape
    order = np.argsort(np.where(np.isnan(ages), np.inf, ages), axis=-1)  # newest first, empty slots last
    sorted_weights = np.take_along_axis(np.nan_to_num(attention), order[:, :, None, :], axis=-1) * K / 2
    cell_h, cell_w = 64 // H, max(64 // K, 6)
    image = np.repeat(np.repeat(sorted_weights, cell_h, axis=2), cell_w, axis=3)  # (N, S, H * cell_h, K * cell_w)
    image = np.pad(image, ((0, 0), (0, 0), (0, 64 - H * cell_h), (0, 0)))       # as tall as a frame
    read = np.concatenate([videos[:, :context], np.rint(predicted[:, :S - context] * 255)], axis=1)
    viz.save_gif([videos[:, :S], read.astype(np.uint8), image], path)


def inspect(run: str | Path, out: str | Path, data: str | None = None, num: int = 4, context: int | None = None,
            horizon: int | None = None, checkpoint: str = "best", gif: bool = False, layout: str = "auto"
            ) -> dict[str, Any]:
    """Trace ``num`` sequences of ``data`` (an array file, or videos cut into clips of context + horizon frames:
    :func:`matap.data.user_videos`; default: the run's validation set) through the
    model of ``run`` (a run folder or checkpoint), teacher-forced and rolled out from ``context`` frames
    for ``horizon`` (defaults: the run's eval.context and eval.horizon), and write into ``out``:
    inspect.json (every array), attention.png, gate.png, ages.png, write.png (a learned write) and with
    ``gif`` attention.gif. ``layout``: which axis of ``data`` is time (NT, TN or auto, read from the
    content). Returns what inspect.json holds, without the arrays."""
    from matap.checkpoint import load_model
    from matap.data import to_frames, user_videos, validation_videos

    model, cfg, path = load_model(run, checkpoint)
    context = cfg.eval.context if context is None else context
    horizon = cfg.eval.horizon if horizon is None else horizon
    if num < 1 or context < 1 or horizon < 2:
        raise MatapError(f"need num >= 1, context >= 1 and horizon >= 2; got num={num}, context={context}, "
                         f"horizon={horizon}")
    videos = user_videos(data, cfg.data, context + horizon, layout) if data else validation_videos(cfg.data, context + horizon)
    if videos.shape[1] < context + horizon:
        raise MatapError(f"the videos have {videos.shape[1]} frames, fewer than context ({context}) + horizon "
                         f"({horizon}) = {context + horizon}; lower context or horizon, or give longer videos")
    videos = np.array(videos[:num, :context + horizon])  # a copy: the cache is read-only
    passes, predicted = trace(model, to_frames(torch.from_numpy(videos)), context, horizon)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figures = {"gate": gate_figure}
    if "attention" in passes["rollout"]:  # the memory is read (not use_attention=false)
        figures.update(attention=attention_figure, ages=ages_figure)
    if "write" in passes["rollout"]:      # a learned write
        figures["write"] = write_figure
    for name, draw in figures.items():
        draw(passes, context, out / f"{name}.png")
    files = [f"{name}.png" for name in figures]
    if gif and "attention" in passes["rollout"]:
        attention_gif(videos, predicted[:, :, 0].numpy(), passes, context, out / "attention.gif")
        files.append("attention.gif")
    result = {"checkpoint": str(path), "model": cfg.model.name, "options": dict(cfg.model.options),
              "memory_size": cfg.model.memory_size, "num_heads": cfg.model.num_heads,
              "data": data or "the run's validation set", "sequences": len(videos), "context": context,
              "horizon": horizon, "steps": context + horizon - 1, "summary": summary(passes, context),
              "files": files}
    arrays = {name: {key: _listed(value) for key, value in a.items()} for name, a in passes.items()}
    atomic_write(out / "inspect.json", json.dumps({**result, "passes": arrays}))
    return result


__all__ = ["PASSES", "Recorder", "attention_by_age", "inspect", "recording", "summary", "trace"]
