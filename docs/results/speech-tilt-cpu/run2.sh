#!/bin/bash
# Follow-ups: the tilted x0.1 fine-tuning reseeded (4322), and tilt in fine-tuning only (the untilted encoder).
set -e
cd /work/main
R=/tmp/recipe-large-val; O=/tmp/exp-tilt; B=/tmp/exp-tilt/bin/btrain
TILT="speech.tilt_db_per_octave=[-4, 4]"
ft() {  # NAME INIT [extra]
  d=$O/doa-$1; local init=$2; shift 2
  [ -f $d/.done ] || { $B finetune --config $R/doa-pretrained_enclr0.1/config.yaml --init $init --on-the-fly \
     --set "$TILT" "$@" --out $d --quiet 2>&1 | tail -2; touch $d/.done; }
  [ -f $O/eval-$(basename $d | sed 's/^doa-//')-test_grid/predictions.csv ] || $B eval --model $d --shards $R/test_grid.h5 --report $O/eval-$(basename $d | sed 's/^doa-//')-test_grid 2>&1 | tail -1
}
ft x0.1-seed4322 $O/pre --seed 4322
ft x0.1-untilted-pre $R/pre
echo done
