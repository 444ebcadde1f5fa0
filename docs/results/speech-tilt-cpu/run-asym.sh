#!/bin/bash
# Asymmetric tilt: pretrain + fine-tune on Dutch + Czech with speech.tilt_db_per_octave=[-2, 6], the large CPU
# recipe's sizes and seeds; fine-tuning's validation reads out as the [-4, 4] runs did (mean of frames, class
# centres: the binary of b06592c with model.doa_estimate=class). Scored with both readouts by the current build.
set -eo pipefail
cd /work/main
R=/tmp/recipe-large-val; O=/tmp/exp-asym; B=$O/bin/btrain; E=/work/main/build/apps/btrain
TILT="speech.tilt_db_per_octave=[-2, 6]"
[ -f $O/pre/.done ] || { $B pretrain --config $R/pre/config.yaml --on-the-fly --set "$TILT" --out $O/pre --quiet $( [ -d $O/pre/checkpoint ] && echo --resume ) 2>&1 | tail -2; touch $O/pre/.done; }
ft() {  # NAME ENC_LR_SCALE INIT
  d=$O/doa-$1
  [ -f $d/.done ] || { $B finetune --config $R/doa-pretrained_enclr0.1/config.yaml --set train.encoder_lr_scale=$2 $3 --on-the-fly \
     --set "$TILT" --set model.doa_estimate=class --out $d --quiet 2>&1 | tail -2; touch $d/.done; }
  for r in mean-class last-parabolic; do
    [ -f $O/eval-$1-$r/predictions.csv ] || $E eval --model $d --shards $R/test_grid.h5 --report $O/eval-$1-$r \
      --set model.doa_pooling=${r%-*} --set model.doa_estimate=${r#*-} 2>&1 | tail -1
  done
}
ft x0 0 "--init $O/pre"
ft x0.1 0.1 "--init $O/pre"
echo done
