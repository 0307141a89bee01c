"""What ``matap bench`` measures and how often: its options, and the settings they resolve to."""

from __future__ import annotations

import argparse
from typing import Any

from matap.errors import MatapError
from matap.registry import OBJECTIVES

SEQ_LEN = 20          # frames per training / inference sequence
ROLLOUT_CONTEXT = 10  # rollout: context frames in ...
ROLLOUT_HORIZON = 90  # ... predicted frames out
DATA_SEQUENCES = 256  # sequences in the array the data pipeline iterates over
TRAIN_FLOPS_FACTOR = 3.0  # training step ~ forward + backward (2x forward)
PROFILE_STEPS = 2     # training steps recorded by --profile

DEFAULTS = {"batch_size": 32, "repeats": 5, "warmup": 2, "matmul_size": 2048}
QUICK = {"batch_size": 4, "repeats": 2, "warmup": 1, "matmul_size": 1024}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``matap bench``."""
    parser.add_argument("--models", nargs="+", default=["matap", "gru"], metavar="NAME",
                        help="models to measure, at the paper's configuration (default: matap gru)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help=f"sequences of {SEQ_LEN} frames per batch (default: {DEFAULTS['batch_size']})")
    parser.add_argument("--repeats", type=int, default=None,
                        help=f"timed steps; the median is reported (default: {DEFAULTS['repeats']})")
    parser.add_argument("--warmup", type=int, default=None,
                        help=f"untimed steps before timing (default: {DEFAULTS['warmup']})")
    parser.add_argument("--objective", default="paper", choices=OBJECTIVES, metavar="NAME",
                        help="training objective of the timed training step (default: paper)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1 (default: cpu)")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                        help="fp32, or bf16 autocast for training and inference; auto: bf16 where the "
                             "CPU or GPU computes it natively and faster than fp32, as "
                             "train.precision=auto (default: auto)")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                        help="keep the model in channels_last as training does (default: on)")
    parser.add_argument("--fold-bn", action=argparse.BooleanOptionalAction, default=True,
                        help="fold BatchNorm into the convolutions for inference and rollout, as "
                             "'matap evaluate' does (default: on)")
    parser.add_argument("--compile", nargs="?", const="on", default="auto", choices=("auto", "on", "off"),
                        help="torch.compile the encoder, cell, predictor and decoder. auto: the training step "
                             "only, where train.compile=auto compiles it (bf16 on a CPU, a batch of 16 or more, "
                             "a C++ compiler); on (or --compile alone): training, inference and rollout; "
                             "off: nothing (default: auto)")
    parser.add_argument("--allocator", default="system", choices=("keep", "system"),
                        help="system: malloc as it is, as every matap command and Python call leaves it; keep: "
                             "glibc keeps freed memory for the next step, as the other commands do where "
                             "MATAP_ALLOCATOR=keep (matap.runtime) (default: system)")
    parser.add_argument("--isolate", action=argparse.BooleanOptionalAction, default=True,
                        help="measure each model in a fresh Python process, so that its peak RSS and allocator "
                             "state are its own (default: on)")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="also profile two training steps with torch.profiler and list the N operators "
                             "that took the most self time (default: 0, off)")
    parser.add_argument("--layers", action="store_true",
                        help="also time every convolution and linear layer alone at its calls in a training "
                             "step (forward + backward) and in inference (forward), and report about the highest "
                             "fraction of the ceiling each could reach if nothing between the layers took time")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and data (default: 0)")
    parser.add_argument("--json", metavar="FILE", help="also write the results to this JSON file")
    parser.add_argument("--quick", action="store_true",
                        help=f"tiny run: batch {QUICK['batch_size']}, repeats {QUICK['repeats']}, "
                             f"warmup {QUICK['warmup']} (options given explicitly still win)")


def resolve(args: argparse.Namespace) -> dict[str, Any]:
    """The settings of one benchmark (recorded in its JSON) from the parsed options."""
    base = QUICK if args.quick else DEFAULTS
    batch = args.batch_size if args.batch_size is not None else base["batch_size"]
    repeats = args.repeats if args.repeats is not None else base["repeats"]
    warmup = args.warmup if args.warmup is not None else base["warmup"]
    if batch < 1 or repeats < 1 or warmup < 0:
        raise MatapError("--batch-size and --repeats must be >= 1 and --warmup >= 0")
    if args.profile < 0:
        raise MatapError(f"--profile {args.profile}: give the number of operators to list (0 = off)")
    precision = args.precision
    if precision == "auto":
        from matap.machine import bf16_pays

        precision = "bf16" if bf16_pays(args.device.split(":")[0]) else "fp32"
    from matap.config import TrainConfig
    from matap.training.module import compile_wanted

    accelerator = "cpu" if args.device.split(":")[0] == "cpu" else "gpu"
    train = TrainConfig(batch_size=batch, accelerator=accelerator, compile=args.compile)
    compile_training = compile_wanted(train, "bf16-mixed" if precision == "bf16" else "32-true")
    models = [name for item in args.models for name in item.split(",") if name]
    if not models:
        raise MatapError("--models: give at least one model name")
    return {
        "models": models, "batch_size": batch, "seq_len": SEQ_LEN, "repeats": repeats, "warmup": warmup,
        "objective": args.objective, "device": args.device, "precision": precision,
        "precision_requested": args.precision,
        "channels_last": bool(args.channels_last), "compile": compile_training, "compile_inference": args.compile == "on",
        "compile_requested": args.compile, "seed": args.seed,
        "fold_bn": bool(args.fold_bn), "profile": args.profile, "layers": bool(args.layers), "profile_steps": PROFILE_STEPS,
        "quick": bool(args.quick), "matmul_size": base["matmul_size"],
        "rollout_context": ROLLOUT_CONTEXT, "rollout_horizon": ROLLOUT_HORIZON,
        # A rollout step decodes batch x 90 frames (4.5x a training batch): fewer repeats keep the run short.
        "rollout_repeats": min(repeats, 3), "rollout_warmup": min(warmup, 1),
        "isolate": bool(args.isolate), "allocator": args.allocator,
        "data_sequences": max(DATA_SEQUENCES, batch),
        "data": "random_uint8" if args.quick else "moving_mnist",
        "train_flops_factor": TRAIN_FLOPS_FACTOR,
    }


__all__ = ["DEFAULTS", "QUICK", "add_arguments", "resolve"]
