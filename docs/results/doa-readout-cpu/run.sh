#!/bin/bash
# Every readout of six fine-tuned networks on two grids of the same scenes: the test grid (unseen ARI head,
# English) and the same scenes with a training head (KEMAR) and the training speech (Dutch + Czech).
# Pooling (model.doa_pooling) mean | last x estimate (model.doa_estimate) class | parabolic, and local_mean with
# mean pooling on the test grid. Networks: ../recipe-large-cpu-validated (untilted) and ../speech-tilt-cpu
# (tilted), kept under /tmp; binaries of the commit named in the README.
set -e
cd /work/main
B=build/apps/btrain; R=/tmp/recipe-large-val; T=/tmp/exp-tilt; O=/tmp/exp-est
declare -A GRID=([test_grid]=$R/test_grid.h5 [kemar_nlcs]=$R/shift-speech.h5)
NETS=(tilt-frozen=$T/doa-x0 tilt-x0.1=$T/doa-x0.1 tilt-scratch=$T/doa-scratch
      frozen=$R/doa-pretrained_frozen x0.1=$R/doa-pretrained_enclr0.1 scratch=$R/doa-scratch)
for g in test_grid kemar_nlcs; do
  for nv in "${NETS[@]}"; do
    n=${nv%%=*}; net=${nv#*=}
    for p in mean last; do
      E=(class parabolic); [ $g = test_grid ] && [ $p = mean ] && E+=(local_mean)
      for e in "${E[@]}"; do
        d=$O/$g/$n-$p-$e
        [ -f "$d/summary.md" ] || "$B" eval --model "$net" --shards "${GRID[$g]}" --report "$d" \
          --set model.doa_pooling=$p --set model.doa_estimate=$e > /dev/null 2>&1
      done
    done
  done
done
