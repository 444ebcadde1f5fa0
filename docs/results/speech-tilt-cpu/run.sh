#!/bin/bash
# Tilt augmentation experiment: pretrain + fine-tune on Dutch + Czech with speech.tilt_db_per_octave=[-4, 4],
# same sizes and seeds as the large CPU recipe (/tmp/recipe-large-val); evaluate on its test grid.
set -e
cd /work/main
R=/tmp/recipe-large-val; O=/tmp/exp-tilt; B=/tmp/exp-tilt/bin/btrain
TILT="speech.tilt_db_per_octave=[-4, 4]"
[ -f $O/pre/.done ] || { $B pretrain --config $R/pre/config.yaml --on-the-fly --set "$TILT" --out $O/pre --quiet $( [ -d $O/pre/checkpoint ] && echo --resume ) 2>&1 | tail -2; touch $O/pre/.done; }
ft() {  # NAME ENC_LR_SCALE INIT
  d=$O/doa-$1
  [ -f $d/.done ] || { $B finetune --config $R/doa-pretrained_enclr0.1/config.yaml --set train.encoder_lr_scale=$2 $3 --on-the-fly \
     --set "$TILT" --out $d --quiet 2>&1 | tail -2; touch $d/.done; }
  [ -f $O/eval-$1-test_grid/predictions.csv ] || $B eval --model $d --shards $R/test_grid.h5 --report $O/eval-$1-test_grid 2>&1 | tail -1
}
ft x0.1 0.1 "--init $O/pre"
ft x0 0 "--init $O/pre"
ft scratch 1 ""
echo done
