"""Score a finished run as a study scores each of its runs, into the run's scores.json:

    python scripts/score-run.py RUN_FOLDER [EXPERIMENT]     # EXPERIMENT: compare (default)

A study (``matap compare`` and the others) reuses a finished run whose checkpoints are gone through the
evaluations its scores.json holds. A run trained on its own, in one sitting of a study that spans many
(docs/notes/paper-budget.md), is scored so while its checkpoint is still there; its config.yaml,
history.csv and scores.json then join the study's runs folder from any machine."""

import sys
from pathlib import Path

from matap.config import load_config
from matap.errors import MatapError
from matap.experiments.report import evaluate_run
from matap.experiments.runner import Spec
from matap.experiments.runs import read_history, read_scores, training_seconds, write_scores
from matap.registry import EXPERIMENTS


def main(run_dir: Path, name: str) -> None:
    cfg = load_config(str(run_dir / "config.yaml"))
    done = len(read_history(run_dir))
    if done < cfg.train.epochs:
        raise MatapError(f"{run_dir}: {done} of its {cfg.train.epochs} epochs trained; a study scores finished runs")
    spec = Spec(preset=str(run_dir / "config.yaml"), overrides=(), seeds=(cfg.train.seed,), out=run_dir,
                runs=run_dir.parent, command="")
    protocols, seq_len = EXPERIMENTS.get(name).evaluations(spec, cfg)
    results = evaluate_run(run_dir, protocols, seq_len)
    write_scores(run_dir, {**read_scores(run_dir), "seconds": training_seconds(run_dir)})
    for protocol, result in results.items():
        metrics = result["metrics"]
        print(f"{run_dir} {protocol}: SSIM {metrics['ssim']['mean']:.4f}  MSE {metrics['mse']['mean']:.1f}  "
              f"BCE {metrics['bce']['mean']:.4f}")


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    try:
        main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) == 3 else "compare")
    except MatapError as exc:
        sys.exit(f"error: {exc}")
