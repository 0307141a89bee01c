"""matap beside the paper's models in Keras, timed in one window on one machine, with the ratios.

    python benchmarks/reference.py --tf-python /path/to/python-with-tensorflow [--rounds 2] [--json FILE]

Each round runs, one after another, each in a process of its own: the Keras reference of each model
(``benchmarks/keras_reference.py``, fp32, under ``--tf-python``), then ``matap bench`` in fp32 and with
bf16 autocast (``--precision bf16``, which on a CPU without native bf16 is slow and says nothing). The
table gives, per model and setting, the median over rounds of training and inference frames/s and the
peak resident memory, and matap's ratio to the Keras reference of the same round. Batch 32 x 20 frames,
as the paper trains. Both sides use every core (the thread counts are each framework's default).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODELS = ("matap", "gru")
SETTINGS = {"fp32": ["--precision", "fp32"], "bf16": ["--precision", "bf16"]}


def keras(python: str, model: str, batch: int, repeats: int, tmp: Path) -> dict:
    out = tmp / f"keras-{model}.json"
    subprocess.run([python, str(HERE / "keras_reference.py"), "--models", model, "--batch-size", str(batch),
                    "--repeats", str(repeats), "--json", str(out)], check=True, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def matap(setting: str, batch: int, repeats: int, tmp: Path) -> dict:
    out = tmp / f"matap-{setting}.json"
    subprocess.run([sys.executable, "-m", "matap.cli", "bench", "--models", *MODELS, "--batch-size", str(batch),
                    "--repeats", str(repeats), *SETTINGS[setting], "--json", str(out)], check=True,
                   stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tf-python", default=sys.executable, help="a Python with TensorFlow (default: this one)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", help="also write every round's figures to this JSON file")
    args = p.parse_args()
    rounds = []
    with tempfile.TemporaryDirectory(prefix="matap-reference-") as name:
        tmp = Path(name)
        for i in range(args.rounds):
            print(f"round {i + 1} of {args.rounds}", file=sys.stderr)
            ref = {m: keras(args.tf_python, m, args.batch_size, args.repeats, tmp) for m in MODELS}
            ours = {s: matap(s, args.batch_size, args.repeats, tmp) for s in SETTINGS}
            rounds.append({"keras": ref, "matap": ours})
    machine = rounds[0]["matap"]["fp32"]["machine"]
    framework = rounds[0]["keras"]["matap"]["framework"]
    print(f"machine  {machine['cpu']}; {machine['cores']} cores; torch {machine['torch']}, {framework}; "
          f"python {machine['python']}; batch {args.batch_size} x 20 frames; median of {args.rounds} rounds, each "
          f"the median of {args.repeats} steps")
    print(f"{'model':<6} {'run':<16} {'train fr/s':>11} {'infer fr/s':>11} {'peak RSS MB':>12} {'train x':>8} {'infer x':>8}")

    def med(values: list[float]) -> float:
        return statistics.median(values)

    for model in MODELS:
        ref = [r["keras"][model]["models"][0] for r in rounds]
        print(f"{model:<6} {'keras, fp32':<16} {med([x['train_frames_per_s'] for x in ref]):>11.1f} "
              f"{med([x['infer_frames_per_s'] for x in ref]):>11.1f} {med([x['peak_rss_mb'] for x in ref]):>12.0f}")
        for setting in SETTINGS:
            ours = [r["matap"][setting]["results"][model] for r in rounds]
            train_x = med([o["train_frames_per_s"] / x["train_frames_per_s"] for o, x in zip(ours, ref)])
            infer_x = med([o["infer_frames_per_s"] / x["infer_frames_per_s"] for o, x in zip(ours, ref)])
            print(f"{model:<6} {'matap, ' + setting:<16} {med([o['train_frames_per_s'] for o in ours]):>11.1f} "
                  f"{med([o['infer_frames_per_s'] for o in ours]):>11.1f} {med([o['peak_rss_mb'] for o in ours]):>12.0f} "
                  f"{train_x:>7.2f}x {infer_x:>7.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"rounds": rounds}, indent=1))


if __name__ == "__main__":
    main()
