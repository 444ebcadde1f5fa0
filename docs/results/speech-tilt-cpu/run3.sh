#!/bin/bash
# The frozen-encoder fine-tunings reseeded (4322): tilted (tilted encoder) and untilted (the recipe's encoder).
set -e
cd /work/main
R=/tmp/recipe-large-val; O=/tmp/exp-tilt; B=/tmp/exp-tilt/bin/btrain
run() {  # NAME INIT [extra]
  local name=$1 init=$2; shift 2
  local d=$O/doa-$name
  [ -f $d/.done ] || { $B finetune --config $R/doa-pretrained_enclr0.1/config.yaml --set train.encoder_lr_scale=0 \
     --seed 4322 --init $init --on-the-fly "$@" --out $d --quiet 2>&1 | tail -2; touch $d/.done; }
  [ -f $O/eval-$name-test_grid/predictions.csv ] || $B eval --model $d --shards $R/test_grid.h5 --report $O/eval-$name-test_grid 2>&1 | tail -1
}
run x0-seed4322 $O/pre --set "speech.tilt_db_per_octave=[-4, 4]"
run untilted-x0-seed4322 $R/pre
echo done
