#!/usr/bin/env bash
# The experiment of the paper, end to end: a held-out test grid -> feature-distillation pretraining ->
# DoA fine-tuning of the pretrained encoder (all weights, the encoder at a tenth of the learning rate, the
# encoder frozen; the variant with the best validation MAE is the report's "pretrained") and of the same
# network from scratch (same budget, limited labels; each scored at its best step on a validation set of the
# training distribution, since the pretrained network memorises a small label set:
# docs/results/recipe-large-cpu) -> evaluation of all of them and of the classic methods (steered with the test
# head's own HRTFs and with a generic head) -> report (summary.md, cells.csv, plot; MAE by the speech's
# brightness, read from the test grid's clean audio) -> on the CPU sizes, the
# test grid's scenes with a training head and then the training speech: what each shift costs (shift.md).
#   scripts/recipe_doa.sh small [OUT]   about 15 minutes on a 2-core CPU (measured: 15 min 1 s, a compile sharing the cores)
#   scripts/recipe_doa.sh medium [OUT]  about 45 minutes on a 2-core CPU (2.5x the training steps)
#   scripts/recipe_doa.sh large  [OUT]  about 115 minutes on a 2-core CPU: the largest budget a CPU session allows
#                                       (the GPU recipe's 2,048 labels, 40 test examples per cell)
#   scripts/recipe_doa.sh gpu   [OUT]   the paper's model size in about 4 minutes on an H100/H200 (one device check)
#   scripts/recipe_doa.sh full  [OUT]   the paper's model size, twice the gpu size's budget (train.device=cuda;
#                                       measured: 6 min 41 s on an H100, docs/results/recipe-gpu-h100-full)
# Run from the repository root after scripts/build.sh (needs ../shared/hrtf for the held-out ARI head).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-small}
OUT=${2:-runs/recipe-$SIZE}
# PRE_STEPS / FIN_STEPS (environment) override the size's pretraining / fine-tuning steps, e.g. PRE_STEPS=10000 for
# the full size on a GPU of your own: at 3,000 steps its pretraining was still learning
# (docs/results/recipe-gpu-h100-full). Read before the size table sets the same names.
PRE_STEPS_SET=${PRE_STEPS:-}; FIN_STEPS_SET=${FIN_STEPS:-}
BSIM=${BSIM:-build/apps/bsim}
BTRAIN=${BTRAIN:-build/apps/btrain}
PY=${PY:-.venv/bin/python}
# One row per size: test examples per grid cell, clip length, pretraining and fine-tuning steps, labelled
# examples, steps between validations. The CPU sizes train a 2 x 128 LSTM at batch 16 (lr 0.002) and validate
# on 256 examples; the GPU sizes the paper's 3 x 256 at batch 32 on CUDA and validate on 512.
case "$SIZE" in
  small)  PER_CELL=8;  CLIP=2.0; PRE_STEPS=1200;  FIN_STEPS=500;  LABELS=512;  VAL_EVERY=100 ;;
  medium) PER_CELL=8;  CLIP=2.0; PRE_STEPS=3000;  FIN_STEPS=1200; LABELS=512;  VAL_EVERY=200 ;;
  large)  PER_CELL=40; CLIP=2.0; PRE_STEPS=10000; FIN_STEPS=3000; LABELS=2048; VAL_EVERY=250 ;;
  gpu)    PER_CELL=20; CLIP=4.0; PRE_STEPS=1500;  FIN_STEPS=600;  LABELS=2048; VAL_EVERY=100 ;;
  full)   PER_CELL=40; CLIP=4.0; PRE_STEPS=3000;  FIN_STEPS=1000; LABELS=2048; VAL_EVERY=100 ;;
  *) echo "usage: $0 small|medium|large|gpu|full [OUT]" >&2; exit 2 ;;
esac
# TEST_PER_CELL overrides the test examples per cell: at 40 most cells cannot decide the claim either way (the
# report's paired confidence; docs/results/recipe-large-cpu-validated: about 190 per cell would).
PER_CELL=${TEST_PER_CELL:-$PER_CELL}
[[ "$PER_CELL" =~ ^[1-9][0-9]*$ ]] || { echo "recipe_doa.sh: TEST_PER_CELL must be a positive whole number" >&2; exit 2; }
for v in PRE_STEPS_SET FIN_STEPS_SET; do
  [ -z "${!v}" ] || [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "recipe_doa.sh: ${v%_SET} must be a positive whole number, not '${!v}'" >&2; exit 2; }
done
PRE_STEPS=${PRE_STEPS_SET:-$PRE_STEPS}; FIN_STEPS=${FIN_STEPS_SET:-$FIN_STEPS}
if [ "$SIZE" = gpu ] || [ "$SIZE" = full ]; then
  MODEL=(); OPTIM=(--set train.batch_size=32 --set train.device=cuda); VAL_EXAMPLES=512
else
  MODEL=(--set model.width=128 --set model.layers=2); OPTIM=(--set train.batch_size=16 --set train.lr=0.002); VAL_EXAMPLES=256
fi
PRE=("${OPTIM[@]}" --set "train.steps=$PRE_STEPS")
FIN=("${OPTIM[@]}" --set "train.steps=$FIN_STEPS" --set "train.labelled_examples=$LABELS"
     --set "train.val_examples=$VAL_EXAMPLES" --set "train.val_every=$VAL_EVERY")
# The test grid is rendered, and the classic methods run, on the GPU for the GPU sizes (same scenes, labels
# and decisions as on the CPU: tests/test_gpu.cpp).
GEN_DEVICE=()
if [ "$SIZE" = gpu ] || [ "$SIZE" = full ]; then GEN_DEVICE=(--device cuda); fi
# Settings of the later stages, checked now: a typo must not surface after hours of training.
GENERIC_SOFA=${GENERIC_SOFA:-/usr/share/libmysofa/MIT_KEMAR_normal_pinna.sofa}
SHIFT=${SHIFT:-$([ "$SIZE" = gpu ] || [ "$SIZE" = full ] && echo 0 || echo 1)}
SHIFT_SOFA=${SHIFT_SOFA:-/usr/share/libmysofa/MIT_KEMAR_normal_pinna.sofa}
# TRAIN_SPEECH (speech.include_dirs of pretraining and fine-tuning; unset: the default corpus, Dutch and Czech).
# "[cs]" leaves out the muffled Dutch half, which cost the large CPU networks 6 deg on the brightest quarter of
# the test voices (docs/results/speech-brightness-cpu). The shift stage's training speech follows it.
SHIFT_SPEECH=${SHIFT_SPEECH:-${TRAIN_SPEECH:-[nl, cs]}}
[[ "$SHIFT" =~ ^[01]$ ]] || { echo "recipe_doa.sh: SHIFT must be 0 or 1, not '$SHIFT'" >&2; exit 2; }
for v in GENERIC_SOFA SHIFT_SOFA; do
  [ "$v" = SHIFT_SOFA ] && [ "$SHIFT" != 1 ] && continue
  [ -f "${!v}" ] || { echo "recipe_doa.sh: $v file '${!v}' does not exist: set $v to a SOFA file" >&2; exit 2; }
done
# The config values taken from the environment, checked by bsim's own config validation (its message names the key).
CHECK=()
[ -n "${HEAD_SCALES:-}" ] && CHECK+=(--set "hrtf.head_scales=$HEAD_SCALES")
[ "$SHIFT" = 1 ] && CHECK+=(--set "speech.include_dirs=$SHIFT_SPEECH")
"$BSIM" config "${CHECK[@]}" > /dev/null || { echo "recipe_doa.sh: HEAD_SCALES or SHIFT_SPEECH is not a valid value (above)" >&2; exit 2; }
check_env() {  # VAR KEY: the value of $VAR, when set, must be valid for config KEY (one bsim call, so the message names VAR)
  [ -z "${!1:-}" ] || "$BSIM" config --set "$2=${!1}" > /dev/null || { echo "recipe_doa.sh: $1 is not a valid value (above)" >&2; exit 2; }
}
check_env TRAIN_SPEECH speech.include_dirs
# SPEECH_TILT (speech.tilt_db_per_octave of pretraining and fine-tuning, e.g. "[-4, 4]"; unset: no tilt): voices
# of other spectral balance in training. The test grid and the shift grids are never tilted.
check_env SPEECH_TILT speech.tilt_db_per_octave
# bsim doa shows a progress bar on stderr; it goes to a log, which is shown if the command fails.
classic() {  # LOG bsim-doa-args...
  local log=$1; shift
  "$BSIM" doa "$@" 2> "$log" || { echo "recipe_doa.sh: bsim doa failed ($log):" >&2; tail -3 "$log" >&2; exit 3; }
}
# A test grid (FILE, extra bsim generate args): rendered once; a grid left by an earlier run must have this run's
# size (TEST_PER_CELL may have changed since).
grid() {
  local f=$1 n; shift
  if [ -f "$f" ]; then
    n=$("$BSIM" info "$f" | awk '$1 == "examples" {print $2}')
    [ "$n" = $((72 * PER_CELL)) ] || { echo "recipe_doa.sh: $f holds $n examples, not 72 x $PER_CELL: remove it or set TEST_PER_CELL to match" >&2; exit 2; }
  else
    "$BSIM" generate --rooms $((72 * PER_CELL)) --out "$f" --config configs/test_grid.yaml --quiet "${GEN_DEVICE[@]}" "$@"
  fi
}
mkdir -p "$OUT"
# Training heads: HEADS=multi (default when ../shared/hrtf exists: five subjects, one drawn per example, as
# the paper's authors drew a subject per utterance; configs/multi_subject.yaml) or HEADS=kemar (the embedded
# set only). The ARI test head is never among them.
HEADS=${HEADS:-$([ -d ../shared/hrtf ] && echo multi || echo kemar)}
HEAD_CFG=(); [ "$HEADS" = multi ] && HEAD_CFG=(--config configs/multi_subject.yaml)
echo "== training heads: $HEADS"
TRAIN=("${HEAD_CFG[@]}" --set "clip_s=$CLIP" "${MODEL[@]}" --set train.log_every=50 --set train.checkpoint_every=250)
# HEAD_SCALES="[0.9, 0.95, 1, 1.05, 1.1]" trains (pretraining and fine-tuning) on the heads scaled in size as well
# (hrtf.head_scales); unset, the measured heads only. The test grid is never scaled.
[ -n "${HEAD_SCALES:-}" ] && TRAIN+=(--set "hrtf.head_scales=$HEAD_SCALES") && echo "== head scales: $HEAD_SCALES"
[ -n "${TRAIN_SPEECH:-}" ] && TRAIN+=(--set "speech.include_dirs=$TRAIN_SPEECH") && echo "== training speech: $TRAIN_SPEECH"
[ -n "${SPEECH_TILT:-}" ] && TRAIN+=(--set "speech.tilt_db_per_octave=$SPEECH_TILT") && echo "== speech tilt: $SPEECH_TILT dB/octave"
# A finished stage is kept on a rerun, so a rerun into the same folder must train on the same data: the settings
# that choose it are written on the first run and compared on every later one.
SETTINGS="size=$SIZE heads=$HEADS head_scales=${HEAD_SCALES:-} train_speech=${TRAIN_SPEECH:-}"
[ -n "${SPEECH_TILT:-}" ] && SETTINGS+=" speech_tilt=$SPEECH_TILT"  # only when set: earlier folders still match
[ -n "$PRE_STEPS_SET" ] && SETTINGS+=" pre_steps=$PRE_STEPS"
[ -n "$FIN_STEPS_SET" ] && SETTINGS+=" fin_steps=$FIN_STEPS"
if [ -f "$OUT/recipe-settings.txt" ]; then
  [ "$(cat "$OUT/recipe-settings.txt")" = "$SETTINGS" ] || { echo "recipe_doa.sh: $OUT holds a run with $(cat "$OUT/recipe-settings.txt"), not $SETTINGS: give another OUT or remove it" >&2; exit 2; }
else
  echo "$SETTINGS" > "$OUT/recipe-settings.txt"
fi

echo "== test grid: 72 cells x $PER_CELL examples (English speech, ARI head: both unseen in training)"
grid "$OUT/test_grid.h5"
echo "== pretraining (feature distillation, on the fly)"
RESUME=(); [ -d "$OUT/pre/checkpoint" ] && RESUME=(--resume)
[ -f "$OUT/pre/encoder.pt" ] && [ -f "$OUT/pre/.done" ] || { "$BTRAIN" pretrain --on-the-fly --out "$OUT/pre" \
  "${TRAIN[@]}" "${PRE[@]}" --quiet "${RESUME[@]}" && touch "$OUT/pre/.done"; }
# The pretrained encoder is fine-tuned once per scale of its learning rate in ENC_LR_SCALES (train.encoder_lr_scale;
# default "1 0.1 0": every weight at train.lr, the encoder at a tenth of it, the encoder frozen = a linear probe
# of what pretraining learnt). The variant with the lowest validation MAE (best/state.yaml, never the test set)
# is the report's pretrained network; the others are reported beside it. The network from scratch trains all
# its weights at train.lr (scale 1).
ENC_LR_SCALES=${ENC_LR_SCALES:-1 0.1 0}
finetune() {  # NAME [btrain args]: fine-tune into doa-NAME (resumable), evaluate into eval-NAME
  local name=$1 resume=(); shift
  [ -d "$OUT/doa-$name/checkpoint" ] && resume=(--resume)
  [ -f "$OUT/doa-$name/.done" ] || { "$BTRAIN" finetune "$@" --on-the-fly --out "$OUT/doa-$name" \
    "${TRAIN[@]}" "${FIN[@]}" --seed 4321 --quiet "${resume[@]}" && touch "$OUT/doa-$name/.done"; }
  "$BTRAIN" eval --model "$OUT/doa-$name" --shards "$OUT/test_grid.h5" --report "$OUT/eval-$name" > /dev/null
}
VARIANTS=(); SCALES=()
for s in $ENC_LR_SCALES; do
  case "$s" in 1) v=pretrained ;; 0) v=pretrained_frozen ;; *) v=pretrained_enclr$s ;; esac
  echo "== fine-tuning (pretrained, encoder learning rate x$s)"
  finetune "$v" --init "$OUT/pre" --set train.encoder_lr_scale="$s"
  VARIANTS+=("$v"); SCALES+=("$s")
done
echo "== fine-tuning (scratch)"
finetune scratch
# Each variant's best validation step and MAE (best/state.yaml), read once: the selection table and the choice.
BEST=$(for i in "${!VARIANTS[@]}"; do
  awk -v v="${VARIANTS[$i]}" -v s="${SCALES[$i]}" '/^step:/ {st = $2} /^val_mae_deg:/ {print $2, v, s, st}' \
    "$OUT/doa-${VARIANTS[$i]}/best/state.yaml"
done)
{ echo "| pretrained variant | encoder lr scale | best validation step | validation MAE (deg) |"; echo "|---|---|---|---|"
  echo "$BEST" | awk '{printf "| %s | %s | %s | %.2f |\n", $2, $3, $4, $1}'; } > "$OUT/selection.md"
CHOSEN=$(echo "$BEST" | sort -g | head -1 | cut -d' ' -f2)
echo "== pretrained variant chosen on validation: $CHOSEN"
echo "== classic methods"
# Steered twice: with the test head's own HRTFs (the shard's set: an oracle no network has) and with a generic
# head, GENERIC_SOFA (default the embedded KEMAR, one of the training heads), which is what a network trained on
# other heads has to go on. The claim is checked against each group.
classic "$OUT/eval-classic.log" --shards "$OUT/test_grid.h5" --report "$OUT/eval-classic" "${GEN_DEVICE[@]}"
classic "$OUT/eval-classic-generic.log" --shards "$OUT/test_grid.h5" --report "$OUT/eval-classic-generic" \
  --sofa "$GENERIC_SOFA" "${GEN_DEVICE[@]}"
echo "== report"
NETS=(); for v in "${VARIANTS[@]}"; do NETS+=(--pred "$v=$OUT/eval-$v/predictions.csv"); [ "$v" = "$CHOSEN" ] || NETS+=(--network "$v"); done
CLASSIC=(); OWN=(); GENERIC=()
for m in gcc_phat srp_phat music gcc_phat_frames srp_phat_frames; do
  CLASSIC+=(--pred "$m=$OUT/eval-classic/predictions_$m.csv" --pred "${m}_generic=$OUT/eval-classic-generic/predictions_$m.csv")
  OWN+=("$m"); GENERIC+=("${m}_generic")
done
"$PY" scripts/doa_report.py --out "$OUT/report" --pretrained "$CHOSEN" --scratch scratch \
  "${NETS[@]}" --pred scratch="$OUT/eval-scratch/predictions.csv" "${CLASSIC[@]}" \
  --classic-group "steered with the test head's own HRTFs=$(IFS=,; echo "${OWN[*]}")" \
  --classic-group "steered with a generic head ($(basename "$GENERIC_SOFA"))=$(IFS=,; echo "${GENERIC[*]}")" \
  --shard "$OUT/test_grid.h5"
{ echo; echo "## The pretrained variant, chosen on the validation set"; echo; cat "$OUT/selection.md"; } >> "$OUT/report/summary.md"

# What the distribution shift costs: the test grid again (same seed, so the same scenes cell by cell) with the
# test head swapped for a training head (SHIFT_SOFA, default the embedded KEMAR), then also the speech swapped for
# the training corpus (SHIFT_SPEECH, default TRAIN_SPEECH or [nl, cs]; utterances the networks heard, so an
# in-distribution check, not a result). Every network and classic method is scored on each; the table goes into
# shift.md and the summary (docs/results/recipe-large-cpu-shift). SHIFT=0 skips it (default for the GPU sizes,
# whose time on the device is counted).
if [ "$SHIFT" = 1 ]; then
  mae() { awk -F, 'NR == 1 {for (i = 1; i <= NF; ++i) if ($i == "abs_error_deg") c = i; next} {s += $c; n++}
                   END {printf "%.2f", s / n}' "$1"; }
  METHODS=(gcc_phat srp_phat music gcc_phat_frames srp_phat_frames)
  row() {  # LABEL DIR-OF-NETWORK-EVALS-PREFIX CLASSIC-DIR
    printf "| %s |" "$1"
    for v in "${VARIANTS[@]}" scratch; do printf " %s |" "$(mae "$2$v/predictions.csv")"; done
    for m in "${METHODS[@]}"; do printf " %s |" "$(mae "$3/predictions_$m.csv")"; done; echo
  }
  echo "== distribution shift: the test grid with a training head ($(basename "$SHIFT_SOFA")), then also training speech"
  {
    echo "| test grid (same scenes) | $(printf '%s | ' "${VARIANTS[@]}")scratch | $(printf '%s | ' "${METHODS[@]}" | sed 's/ | $//') |"
    printf '|---|'; for _ in "${VARIANTS[@]}" scratch "${METHODS[@]}"; do printf -- '---|'; done; echo
    row "unseen head and speech (the test grid)" "$OUT/eval-" "$OUT/eval-classic"
  } > "$OUT/shift.md"
  for g in head speech; do
    SETS=(--set "hrtf.sofa=[$SHIFT_SOFA]"); LABEL="training head, unseen speech"
    [ "$g" = speech ] && SETS+=(--set "speech.include_dirs=$SHIFT_SPEECH") && LABEL="training head and speech"
    grid "$OUT/shift-$g.h5" "${SETS[@]}"
    mkdir -p "$OUT/shift-$g"
    for v in "${VARIANTS[@]}" scratch; do
      "$BTRAIN" eval --model "$OUT/doa-$v" --shards "$OUT/shift-$g.h5" --report "$OUT/shift-$g/eval-$v" > /dev/null
    done
    classic "$OUT/shift-$g/eval-classic.log" --shards "$OUT/shift-$g.h5" --report "$OUT/shift-$g/eval-classic" \
      "${GEN_DEVICE[@]}"
    row "$LABEL" "$OUT/shift-$g/eval-" "$OUT/shift-$g/eval-classic" >> "$OUT/shift.md"
  done
  { echo; echo "## What the distribution shift costs: MAE (deg) on the test grid's scenes"; echo
    echo "The classic methods are steered with each grid's own head."; echo; cat "$OUT/shift.md"; } >> "$OUT/report/summary.md"
  cat "$OUT/shift.md"
fi
