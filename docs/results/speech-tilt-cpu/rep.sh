#!/bin/bash
# The report with the claim lines, each tilted network against the scratch network trained with the same tilt.
set -e
cd /work/main
R=/tmp/recipe-large-val; E=/tmp/exp-bright; O=/tmp/exp-tilt
C=$E/classic-test_grid; G=$E/classic-generic-test_grid
for v in x0.1 x0; do
  P=()
  for m in gcc_phat srp_phat music gcc_phat_frames srp_phat_frames; do
    P+=(--pred "$m=$C/predictions_$m.csv" --pred "${m}_generic=$G/predictions_$m.csv")
  done
  .venv/bin/python scripts/doa_report.py --pred "pre=$O/eval-$v-test_grid/predictions.csv" --pred "scratch=$O/eval-scratch-test_grid/predictions.csv" \
    "${P[@]}" --pretrained pre --scratch scratch \
    --classic-group "own=gcc_phat,srp_phat,music,gcc_phat_frames,srp_phat_frames" \
    --classic-group "KEMAR=gcc_phat_generic,srp_phat_generic,music_generic,gcc_phat_frames_generic,srp_phat_frames_generic" \
    --shard $R/test_grid.h5 --out $O/rep-$v > /dev/null
  grep -A6 "^## The paper's claim" $O/rep-$v/summary.md
done
