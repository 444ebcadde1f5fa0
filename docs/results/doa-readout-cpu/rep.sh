#!/bin/bash
# The claim per cell with every network read out alike: the tilted networks (../speech-tilt-cpu) against the
# tilted scratch network and the classic methods (own head and KEMAR-steered), for the old readout (mean, class)
# and the new one (last, parabolic).
set -e
cd /work/main
R=/tmp/recipe-large-val; E=/tmp/exp-bright; O=/tmp/exp-est
C=$E/classic-test_grid; G=$E/classic-generic-test_grid
for r in mean-class last-parabolic; do
  for v in tilt-x0.1 tilt-frozen; do
    P=()
    for m in gcc_phat srp_phat music gcc_phat_frames srp_phat_frames; do
      P+=(--pred "$m=$C/predictions_$m.csv" --pred "${m}_generic=$G/predictions_$m.csv")
    done
    .venv/bin/python scripts/doa_report.py --pred "pre=$O/test_grid/$v-$r/predictions.csv" \
      --pred "scratch=$O/test_grid/tilt-scratch-$r/predictions.csv" "${P[@]}" --pretrained pre --scratch scratch \
      --classic-group "own=gcc_phat,srp_phat,music,gcc_phat_frames,srp_phat_frames" \
      --classic-group "KEMAR=gcc_phat_generic,srp_phat_generic,music_generic,gcc_phat_frames_generic,srp_phat_frames_generic" \
      --out $O/rep-$v-$r > /dev/null
    echo "== $v, $r"; grep -A6 "^## The paper's claim" $O/rep-$v-$r/summary.md
  done
done
