#!/usr/bin/env bash
# The runs of the paper-budget reports (docs/notes/paper-budget.md), one after another: the paper's setup
# (--config paper) with the paper's objective, then with the corrected one (objective.name=predict), MA-TAP
# and the GRU, seeds 0 1 2, each into RUNS/<objective>/<variant>-seed<seed>, the folders `matap compare
# --runs RUNS/<objective>` reuses. A run with a checkpoint is resumed; a run with 50 epochs in its history
# is skipped, so the script can be started again after any stop. Each finished run is scored as
# `matap compare` scores it (scripts/score-run.py, into its scores.json), so that its config.yaml,
# history.csv and scores.json join the report from any machine once its checkpoints are gone.
#
#   scripts/paper-budget.sh RUNS            # MATAP=... names another matap command, PYTHON=... its Python
#   matap compare --config paper --runs RUNS/paper --seeds 0 1 2 --out docs/results/paper-budget
set -u
RUNS=${1:?usage: scripts/paper-budget.sh RUNS_FOLDER}
MATAP=${MATAP:-matap}
PYTHON=${PYTHON:-python}
SCORE=$(dirname "$0")/score-run.py
for objective in paper predict; do
  for seed in 0 1 2; do
    for variant in matap gru; do
      dir=$RUNS/$objective/$variant-seed$seed
      epochs=0
      [ -f "$dir/history.csv" ] && epochs=$(($(wc -l < "$dir/history.csv") - 1))
      if [ "$epochs" -ge 50 ]; then
        echo "$(date -u +%FT%TZ) done  $dir"
        [ -f "$dir/scores.json" ] || "$PYTHON" "$SCORE" "$dir"
        continue
      fi
      echo "$(date -u +%FT%TZ) start $dir (from epoch $epochs)"
      if [ -f "$dir/checkpoints/last.ckpt" ]; then
        $MATAP train --resume "$dir"
      else
        $MATAP train --config paper model.name=$variant objective.name=$objective train.seed=$seed \
          train.progress_bar=false --out "$dir" --overwrite
      fi
      echo "$(date -u +%FT%TZ) end   $dir (exit $?)"
      [ "$(($(wc -l < "$dir/history.csv") - 1))" -ge 50 ] && "$PYTHON" "$SCORE" "$dir"
    done
  done
done
