#!/usr/bin/env bash
# The GPU check, run on the offline CUDA host (see ../shared/GPU.md) from the repository root with
# .gpu-deps carried (scripts/fetch_gpu_deps.sh here first).
#   scripts/gpu_check.sh quick   every target of issue 3 in one call, no libtorch: build, all gpu tests,
#                                memcheck, racecheck, every benchmark, torch ratios, Nsight Compute, generate
#                                --rooms 10000 beside the disk, and bench/targets.py's verdict table (5-8 min; <= 560 s)
#   scripts/gpu_check.sh targets every target of issue 3 and nothing else, for a lease's last minutes: quick without
#                                its implementation variants, Nsight Compute and the racecheck of kernels no change
#                                touched since a clean run (racecheck: convolution and teacher only); ~4 min, <= 290 s
#   scripts/gpu_check.sh kernels the shared-memory FFT kernels only: their gpu tests + racecheck, the
#                                convolution / teacher / whole-batch benchmarks, the torch ratios and, where
#                                ncu is installed, Nsight Compute counters of the teacher and convolution (~3 min)
#   scripts/gpu_check.sh full    quick + btrain timings (on the fly on the device, streamed shards,
#                                pre-loaded, two data-parallel ranks on the GPU), with the trainer built (~7 min)
#   scripts/gpu_check.sh recipe [gpu|full]  build, gpu tests, pipeline + DoA benchmarks, then the DoA recipe
#                                at the paper's model size (scripts/recipe_doa.sh gpu: ~3.5 min, or full: ~7 min,
#                                which leaves the sanitizers to kernels mode; needs the English voices and the
#                                shared HRTF sets from fetch_gpu_deps.sh)
#   scripts/gpu_check.sh both [gpu|full]  kernels mode's checks with every gpu test, then the recipe started in the
#                                background (its own process session, so it outlives this command) while the
#                                sanitizers and Nsight Compute run beside it; returns after those (~5 min)
#   scripts/gpu_check.sh collect [SECONDS]  the next command on the same warm machine: waits for that recipe, saves
#                                its report and rescores like recipe mode, all within SECONDS (default 480; give
#                                it the lease's time left, less a margin: what is unfinished then is skipped).
#                                The two fit kernels and full recipe into one 15-minute lease, whose commands are
#                                limited to 10 minutes each.
#   scripts/gpu_check.sh train   full mode's btrain timings alone (trainer built; no tests, benchmarks or sanitizers):
#                                the next command on a warm machine after `targets` (~3 min with the build)
#   scripts/gpu_check.sh test [FILTER]  builds test_gpu alone and runs the gpu tests FILTER selects (gtest filter,
#                                default all): a failing test again with little device time (~1 min)
# Every stage has its own time limit so that one hang cannot eat the lease; full logs are packed into
# $OUT/logs.tgz (the device tool returns at most 8 files) and a short table is printed last and kept in
# $OUT/summary.md.
set -uo pipefail
MODE=${1:-full}
case "$MODE" in quick|targets|kernels|full|train|recipe|both|collect|test) ;; *) echo "mode: quick, targets, kernels, full, train, recipe, both, collect or test" >&2; exit 2 ;; esac
RECIPE_SIZE=gpu; COLLECT_WAIT=480; TEST_FILTER='*'
case "$MODE" in
  collect) COLLECT_WAIT=${2:-480} ;;
  test) TEST_FILTER=${2:-*} ;;
  *) RECIPE_SIZE=${2:-gpu} ;;  # recipe_doa.sh gpu (~3.5 min) or full (~7 min)
esac
case "$RECIPE_SIZE" in gpu) RECIPE_LIMIT=330 ;; full) RECIPE_LIMIT=540 ;; *) echo "recipe size: gpu or full" >&2; exit 2 ;; esac
[[ "$COLLECT_WAIT" =~ ^[0-9]+$ ]] || { echo "collect: SECONDS must be a whole number" >&2; exit 2; }
RECIPE_DIR=/tmp/recipe-gpu; RECIPE_RC=/tmp/recipe-gpu.rc
export PATH=/usr/local/cuda/bin:$PATH
cd "$(dirname "$0")/.." || exit 2
DEST=${OUT:-gpu-check-logs}
LOG=/tmp/gpu-logs
mkdir -p "$LOG" "$DEST"
T0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
# Every stage runs under `run_for SECONDS cmd ...`: its own limit, cut to what is left of the command's budget
# (GPU_CHECK_BUDGET, default 560 s: the device tool stops a command at 600 s and keeps only what is under $OUT
# by then), less 40 s for the summary. A stage with under 10 s left is skipped (status 124, said in the log).
DEFAULT_BUDGET=560; [ "$MODE" = targets ] && DEFAULT_BUDGET=290
BUDGET=${GPU_CHECK_BUDGET:-$DEFAULT_BUDGET}
if ! [[ "$BUDGET" =~ ^[0-9]+$ ]] || (( BUDGET < 60 )); then
  echo "GPU_CHECK_BUDGET='$BUDGET': give whole seconds, at least 60 (default $DEFAULT_BUDGET for $MODE)" >&2; exit 2
fi
run_for() {
  local want=$1 left=$(( BUDGET - 40 - ($(date +%s) - T0) )); shift
  (( left < want )) && want=$left
  if (( want < 10 )); then echo "skipped (command budget spent): $*" >&2; return 124; fi
  timeout "$want" "$@"
}
# The commit: BSIM_COMMIT when the caller sets it (the device tool copies the working tree, but the git metadata
# there can be older than the tree: run 7 printed the session's first commit for every call).
{ nvidia-smi -L; date -u +%FT%TZ; echo "commit ${BSIM_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null) (git metadata of the copy; set BSIM_COMMIT)}"; } | tee "$LOG/gpu.txt"

# Debian packages unpacked aside (never into /), the machine's own HDF5 kept. The data folders (SOFA file,
# speech corpus) are linked to where the default config and the tests look for them. Not again in collect mode:
# the recipe is reading them.
if [ "$MODE" != collect ]; then
mkdir -p /opt/deps
for f in .gpu-deps/*.deb; do dpkg -x "$f" /opt/deps; done
for pc in /opt/deps/usr/lib/x86_64-linux-gnu/pkgconfig/*.pc; do sed -i 's#^prefix=/usr#prefix=/opt/deps/usr#' "$pc"; done
# sndfile.pc names the codecs' .pc files (Requires.private), which only their -dev packages ship: not needed here.
sed -i "/^Requires.private/d" /opt/deps/usr/lib/x86_64-linux-gnu/pkgconfig/sndfile.pc
[ -e /usr/share/libmysofa ] || ln -s /opt/deps/usr/share/libmysofa /usr/share/libmysofa
mkdir -p /usr/share/games
[ -e /usr/share/games/fillets-ng ] || ln -s /opt/deps/usr/share/games/fillets-ng /usr/share/games/fillets-ng
# English voices (held-out test speech) into the corpus; the shared HRTF sets where the configs expect them.
[ -d .gpu-deps/sound-en ] && cp -r .gpu-deps/sound-en/. /opt/deps/usr/share/games/fillets-ng/sound/
[ -d .gpu-deps/hrtf ] && [ ! -d ../shared/hrtf ] && mkdir -p ../shared/hrtf && cp .gpu-deps/hrtf/*.sofa ../shared/hrtf/
fi
export PKG_CONFIG_PATH=/opt/deps/usr/lib/x86_64-linux-gnu/pkgconfig
export LD_LIBRARY_PATH=/opt/deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
PY=$(command -v python3)
TORCH_PREFIX=$($PY -c 'import torch; print(torch.utils.cmake_prefix_path)')

# The DoA recipe at the paper's model size (recipe and both modes): runs into $RECIPE_DIR and leaves its exit
# status in $RECIPE_RC. Should the fused teacher kernel have failed its test, the recipe uses the framing +
# cuFFT teacher instead (said in the table).
start_recipe() {  # fg | bg
  local teacher_impl=fused
  if grep -q "FAILED  \] GpuTeacher" "$LOG/test_gpu.log"; then export BSIM_TEACHER_KERNEL=cufft; teacher_impl=cufft; fi
  echo "$RECIPE_SIZE $teacher_impl" > "$RECIPE_RC.about"; rm -f "$RECIPE_RC"
  local run=(env BSIM=build-gpu/apps/bsim BTRAIN=build-gpu/apps/btrain PY=python3 bash -c
    'timeout "$0" bash scripts/recipe_doa.sh "$1" "$2" > "$3" 2>&1; echo $? > "$4"'
    "$RECIPE_LIMIT" "$RECIPE_SIZE" "$RECIPE_DIR" "$LOG/recipe.log" "$RECIPE_RC")
  if [ "$1" = bg ]; then
    # A process session of its own outlives this command (the device tool ends the others when it returns).
    setsid "${run[@]}" < /dev/null > /dev/null 2>&1 &
    stamp "recipe ($RECIPE_SIZE) started in the background; scripts/gpu_check.sh collect picks it up"
  else
    "${run[@]}"; stamp "recipe rc=$(cat "$RECIPE_RC")"
  fi
}

if [ "$MODE" != collect ]; then
TRAINER=OFF; TARGETS=(--target bsim test_gpu bench_gpu)
case "$MODE" in full|recipe|both) TRAINER=ON; TARGETS=(--target bsim btrain test_gpu bench_gpu) ;; train) TRAINER=ON; TARGETS=(--target bsim btrain) ;; test) TARGETS=(--target test_gpu) ;; esac
t=$(date +%s)
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
  -DCMAKE_PREFIX_PATH="$TORCH_PREFIX;/opt/deps/usr" -DBSIM_PYTHON="$PY" -DBSIM_ENABLE_CUDA=ON -DBSIM_BUILD_EMULATION=OFF \
  -DBSIM_BUILD_TRAINER=$TRAINER > "$LOG/configure.log" 2>&1 &&
  run_for 400 cmake --build build-gpu -j 16 "${TARGETS[@]}" > "$LOG/build.log" 2>&1
build_rc=$?; build_s=$(( $(date +%s) - t ))
stamp "build rc=$build_rc"
[ $build_rc -ne 0 ] && { tail -40 "$LOG/build.log"; tail -20 "$LOG/configure.log"; }

[ "$MODE" = kernels ] && TEST_FILTER='GpuConvolution.*:GpuTeacher.*:GpuClassicDoa.*:GpuBrirTail.*:GpuPipeline.RendersTheCpuPlan'
# train mode: straight to the btrain timings (a targets run on the same machine did the rest).
gpu_tests_rc=skipped; memcheck_rc=skipped; racecheck_rc=skipped; ncu_state=skipped; gen_rc=skipped
if [ "$MODE" != train ]; then
run_for 180 build-gpu/tests/test_gpu --gtest_filter="$TEST_FILTER" > "$LOG/test_gpu.log" 2>&1; gpu_tests_rc=$?
stamp "test_gpu rc=$gpu_tests_rc"; grep -E "FAILED|Failure|error|Expected|Which is|actual|example|ms\)" "$LOG/test_gpu.log" | head -60
[ "$MODE" = test ] && { cp "$LOG/test_gpu.log" "$DEST/"; tail -80 "$LOG/test_gpu.log"; exit "$gpu_tests_rc"; }
build-gpu/apps/bsim devices > "$LOG/devices.txt" 2>&1
BENCH_FILTER=.; [ "$MODE" = recipe ] && BENCH_FILTER='Pipeline|ClassicDoa'
[ "$MODE" = kernels ] || [ "$MODE" = both ] && BENCH_FILTER='Convolve|Teacher|Pipeline|ClassicDoa'
# targets: the benchmarks bench/targets.py and bench/torch_baselines.py read, and the GCC-PHAT teacher's two
# launch shapes 4 and 8 frames per block of 256 threads (the default 8 settled in run 11; ~3 s).
[ "$MODE" = targets ] && BENCH_FILTER='BM_BrirBatch/8192/1/0|BM_ConvolveBatch/|BM_TeacherBatch/|BM_PipelineBatch/|BM_TeacherBatchFused/0/[48]/256/'
run_for 150 build-gpu/bench/bench_gpu --benchmark_min_time=0.3s --benchmark_filter="$BENCH_FILTER" \
  --benchmark_out="$LOG/bench_gpu.json" --benchmark_out_format=json > "$LOG/bench_gpu.txt" 2>&1
stamp "bench_gpu rc=$?"
# The whole batch with each teacher implementation forced (the default picks per kind, by measurement), and
# with the pipeline's cuFFT rows instead of the partitioned convolution (BSIM_PIPELINE_CONV, default fused),
# and with the one-kernel late tail (BSIM_TAIL_KERNEL=fused, not yet the default).
if [ "$MODE" != recipe ] && [ "$MODE" != targets ]; then
  for variant in BSIM_TEACHER_KERNEL=fused BSIM_TEACHER_KERNEL=cufft BSIM_PIPELINE_CONV=cufft BSIM_TAIL_KERNEL=fused; do
    run_for 30 env "$variant" build-gpu/bench/bench_gpu --benchmark_filter=PipelineBatch \
      --benchmark_out="$LOG/pipeline-$variant.json" --benchmark_out_format=json 2>&1 |
      grep -E "^BM_" | sed "s#^BM_PipelineBatch#BM_PipelineBatch($variant)#" >> "$LOG/bench_gpu.txt"
  done
  stamp "pipeline benchmark per teacher and convolution implementation"
fi
# The torch ratios need the convolution and teacher benchmarks: not in recipe mode (quick/full measure them).
[ "$MODE" != recipe ] && { run_for 120 $PY bench/torch_baselines.py "$LOG/bench_gpu.json" --json "$LOG/torch.json" > "$LOG/torch_baselines.md" 2>&1; stamp "torch rc=$?"; }
gen_rc=skipped
if [ "$MODE" = quick ] || [ "$MODE" = targets ] || [ "$MODE" = full ]; then
  # End to end (before the sanitizers: a target needs it): 10,000 rooms to HDF5 on the device, beside the time
  # to write the same bytes to this disk.
  run_for 150 build-gpu/apps/bsim generate --rooms 10000 --out /tmp/gen.h5 --device cuda > "$LOG/generate.log" 2>&1
  gen_rc=$?; stamp "generate rc=$gen_rc"; tail -3 "$LOG/generate.log"
  bytes=$(stat -c %s /tmp/gen.h5 2>/dev/null || echo 0)
  t=$(date +%s.%N); head -c "$bytes" /dev/zero > /tmp/gen.bin; sync; disk_s=$(python3 -c "import time; print(round(time.time() - $t, 2))")
  rm -f /tmp/gen.bin /tmp/gen.h5
fi
# From here on nothing is timed in both mode, so the recipe starts now and the sanitizers run beside it.
[ "$MODE" = both ] && start_recipe bg
# Sanitizers: the heavy end-to-end tests are left out (minutes under instrumentation); the pipeline's kernels
# run in GpuPipeline.DeterministicAcrossSlotsAndBatches (both convolutions, several batches). TooLargeABatch-
# SaysWhatToDo is left out too: its cudaMalloc fails on purpose, which memcheck counts as an error (run 8's 4).
MEMCHECK_FILTER=-GpuPipeline.TooLargeABatchSaysWhatToDo:GpuPipeline.GenerateWritesTheCpuScenes:GpuPipeline.GenerateInterruptedThenResumedWritesTheSameShard:GpuBrir.LongResponsesAt48kHz:GpuPipeline.RendersTheCpuPlan:GpuPipeline.OtherConfigurationsRenderTheCpuPlan:GpuPipeline.ABatchWhoseSpeechOutgrowsTheArenaSaysWhatToDo
case "$MODE" in recipe|kernels|both) MEMCHECK_FILTER='GpuConvolution.*:GpuTeacher.*:GpuClassicDoa.*' ;; esac
# The full-size recipe leaves them to `kernels` mode (the same kernels, run first in the same lease): it needs
# the time (four fine-tuning runs).
memcheck_rc=skipped
if [ "$MODE" != recipe ] || [ "$RECIPE_SIZE" != full ]; then
  run_for 150 compute-sanitizer --tool memcheck --error-exitcode 9 build-gpu/tests/test_gpu \
    --gtest_filter="$MEMCHECK_FILTER" > "$LOG/memcheck.log" 2>&1
  memcheck_rc=$?; stamp "memcheck rc=$memcheck_rc"
fi
racecheck_rc=skipped
# racecheck: the shared-memory FFT kernels (convolution, teacher, DoA STFT); in quick and full mode also the
# other kernels that share memory between threads (BRIR scatter taps, the pipeline's reductions).
RACECHECK_FILTER='GpuConvolution.*:GpuTeacher.*:GpuClassicDoa.*'; RACECHECK_LIMIT=90
case "$MODE" in quick|full) RACECHECK_FILTER+=':GpuBrir.MatchesCpu*:GpuBrirTail.*:GpuPipeline.Deterministic*'; RACECHECK_LIMIT=240 ;; esac
# targets: the kernels changed since the last clean racecheck (run 9): the convolution's in-place transforms, the
# teacher's power kernel and PHAT loop.
[ "$MODE" = targets ] && RACECHECK_FILTER='GpuConvolution.*:GpuTeacher.*' && RACECHECK_LIMIT=90
case "$MODE" in quick|targets|kernels|both|full)
  run_for $RACECHECK_LIMIT compute-sanitizer --tool racecheck --error-exitcode 9 build-gpu/tests/test_gpu \
    --gtest_filter="$RACECHECK_FILTER" > "$LOG/racecheck.log" 2>&1
  racecheck_rc=$?; stamp "racecheck rc=$racecheck_rc" ;;
esac
# Hardware counters for the kernels nearest their targets (GCC-PHAT teacher, convolution's output blocks),
# the BRIR scatter (the batch's second-longest kernel) and mix_noise, where Nsight Compute is installed and the
# counters may be read: what bounds them (shared-memory pipe, issue, barriers, occupancy) decides the next
# change. One launch of each, ~60 s. (In both mode the
# recipe's training shares the GPU: the counters hold, the durations do not.)
ncu_state=skipped
case "$MODE" in quick|kernels|both|full)
  NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
  if [ -n "$NCU" ]; then
    # One launch of each kernel, each from its own benchmark (one shared launch count went to the first one).
    # The scatter and mix_noise as the pipeline launches them (~725 rooms; mix_noise missed its prediction in run
    # 10, the scatter is L1-bound there: run 11).
    : > "$LOG/ncu.txt"; ncu_rc=0
    for probe in "fused_teacher([^_]|$) BM_TeacherBatch/0/" "conv_output_blocks BM_ConvolveBatch/" \
                 "scatter_kernel BM_PipelineBatch/256" "mix_noise BM_PipelineBatch/256"; do
      run_for 40 "$NCU" --kernel-name regex:"${probe% *}" --launch-count 1 \
        --section SpeedOfLight --section Occupancy --section WarpStateStats --section LaunchStats \
        --section MemoryWorkloadAnalysis_Tables build-gpu/bench/bench_gpu --benchmark_min_time=0.05s \
        --benchmark_filter="${probe#* }" >> "$LOG/ncu.txt" 2>&1 || ncu_rc=$?
    done
    # Every kernel of a few whole pipeline batches (default implementations), its time and DRAM bytes, summed per
    # kernel and batch by bench/ncu_batch.py: where the batch's time goes beyond the stage counters.
    run_for 90 "$NCU" --metrics gpu__time_duration.sum,dram__bytes.sum --csv --page raw --print-units base \
      --launch-count 500 --log-file "$LOG/ncu_batch.csv" build-gpu/bench/bench_gpu \
      --benchmark_filter='BM_PipelineBatch/256' > "$LOG/ncu_batch.log" 2>&1
    peak_gb_s=$(build-gpu/apps/bsim devices 2>/dev/null | grep -oE '[0-9.]+ GB/s' | head -1 | cut -d' ' -f1)
    $PY bench/ncu_batch.py "$LOG/ncu_batch.csv" --peak-gb-s "${peak_gb_s:-0}" > "$LOG/ncu_batch.md" 2>&1
    if grep -q "ERR_NVGPUCTRPERM" "$LOG/ncu.txt"; then ncu_state="no permission to read the counters"
    else ncu_state="rc=$ncu_rc, $(grep -c 'Section: GPU Speed Of Light' "$LOG/ncu.txt") kernels profiled (logs.tgz: ncu.txt); per-kernel batch: ncu_batch.md"; fi
  else
    ncu_state="ncu not installed"
  fi
  stamp "ncu: $ncu_state"
  grep -E "^  [a-z_]+\(|Duration|Compute \(SM\) Throughput|Memory Throughput|Achieved Occupancy|Registers Per|Shared Memory Configuration Size|Stall|Bank" "$LOG/ncu.txt" 2>/dev/null | head -40
  cp "$LOG/ncu_batch.md" "$DEST/ncu_batch.md" 2>/dev/null; head -30 "$LOG/ncu_batch.md" 2>/dev/null ;;
esac
fi  # not train
[ "$MODE" = recipe ] && [ "$RECIPE_SIZE" != full ] && {
  run_for 60 compute-sanitizer --tool racecheck --error-exitcode 9 build-gpu/tests/test_gpu \
    --gtest_filter='GpuConvolution.*:GpuTeacher.*:GpuClassicDoa.*' > "$LOG/racecheck.log" 2>&1
  racecheck_rc=$?; stamp "racecheck rc=$racecheck_rc"
}
[ "$MODE" = recipe ] && start_recipe fg
fi  # not collect

if [ "$MODE" = collect ]; then
  [ -f "$RECIPE_RC.about" ] || { echo "collect: no recipe was started on this machine (run scripts/gpu_check.sh both first)" >&2; exit 2; }
  while [ ! -f "$RECIPE_RC" ] && [ $(( $(date +%s) - T0 + 15 )) -lt "$COLLECT_WAIT" ]; do sleep 5; done
  [ -f "$RECIPE_RC" ] && stamp "recipe rc=$(cat "$RECIPE_RC")" || stamp "recipe still running after ${COLLECT_WAIT} s: its partial logs are saved"
fi
if [ "$MODE" = recipe ] || [ "$MODE" = collect ]; then
  read -r RECIPE_SIZE teacher_impl < "$RECIPE_RC.about"
  recipe_rc=$(cat "$RECIPE_RC" 2>/dev/null || echo "unfinished")
  tail -5 "$LOG/recipe.log"
  cp -r "$RECIPE_DIR/report" "$LOG/recipe-report" 2>/dev/null
  for r in "$RECIPE_DIR"/pre "$RECIPE_DIR"/doa-*; do
    cp "$r/log.csv" "$LOG/recipe-$(basename "$r").csv" 2>/dev/null
    cp "$r/val.csv" "$LOG/recipe-val-$(basename "$r").csv" 2>/dev/null
  done
  cp "$RECIPE_DIR/report/summary.md" "$DEST/recipe-summary.md" 2>/dev/null
  cp "$RECIPE_DIR/report/mae_vs_snr.png" "$DEST/recipe-mae_vs_snr.png" 2>/dev/null
  cp "$RECIPE_DIR/report/cells.csv" "$DEST/recipe-cells.csv" 2>/dev/null
  # Each network scored again with the readout of GPU recipe runs 3-4 (mean of all frames, class centres), so
  # that this run compares with those and shows the readout's effect at the paper's size; bounded, after the
  # report is safe, since a full-size lease has little time left here.
  mae() { tail -1 "$1" 2>/dev/null | cut -d'|' -f3 | tr -d ' '; }  # MAE column of a btrain eval summary.md
  for d in "$RECIPE_DIR"/doa-*; do
    [ -f "$RECIPE_RC" ] && [ -d "$d" ] || continue; n=$(basename "$d")
    [ "$MODE" = collect ] && [ $(( $(date +%s) - T0 + 35 )) -gt "$COLLECT_WAIT" ] && { echo "${n#doa-} (no time left to rescore)"; continue; }
    run_for 25 build-gpu/apps/btrain eval --model "$d" --shards "$RECIPE_DIR/test_grid.h5" \
      --report "$LOG/recipe-oldreadout-$n" --set model.doa_pooling=mean --set model.doa_estimate=class > /dev/null 2>&1
    echo "${n#doa-} $(mae "$RECIPE_DIR/eval-${n#doa-}/summary.md") / $(mae "$LOG/recipe-oldreadout-$n/summary.md")"
  done > "$DEST/recipe-readouts.txt"
fi
if [ "$MODE" = full ] || [ "$MODE" = train ]; then
  # btrain with the default model (3 x 256 LSTM, batch 32, 4 s clips): on the fly from the GPU pipeline, on
  # the fly from the CPU simulator, from a streamed shard and from the shard pre-loaded (the upper bound).
  run_for 60 build-gpu/apps/bsim generate --rooms 1024 --out /tmp/train.h5 --quiet --device cuda > "$LOG/generate-train.log" 2>&1
  # dp2: the fly run again as two data-parallel ranks on the one GPU (c10d Gloo, each rank with its own CUDA
  # pipeline and half of every batch): its losses should be fly's (bench/RESULTS.md, btrain data-parallel).
  for src in fly cpufly shard preload dp2; do
    data=(--on-the-fly); [ $src = cpufly ] && data=(--on-the-fly --set train.simulator=cpu)
    [ $src = shard ] && data=(--shards /tmp/train.h5); [ $src = preload ] && data=(--shards /tmp/train.h5 --preload)
    launch=(); [ $src = dp2 ] && launch=("$PY" -m torch.distributed.run --standalone --nproc-per-node 2 --no-python)
    run_for 90 "${launch[@]}" build-gpu/apps/btrain pretrain "${data[@]}" --out "/tmp/runs-gpu/$src" --set train.steps=50 \
      --set train.log_every=10 --set train.device=cuda > "$LOG/btrain-$src.log" 2>&1
    stamp "btrain $src rc=$?"; tail -2 "$LOG/btrain-$src.log"
    cp "/tmp/runs-gpu/$src/log.csv" "$LOG/btrain-$src.csv" 2>/dev/null
  done
  dp_vs_fly=$(paste -d, "$LOG/btrain-fly.csv" "$LOG/btrain-dp2.csv" 2>/dev/null | tail -n +2 |
    awk -F, '{d = $2 - $8; if (d < 0) d = -d; if (d / $2 > m) m = d / $2} END {if (NR) printf "%.2g over %d rows", m, NR}')
fi

{
echo
echo "| check | result |"
echo "|---|---|"
echo "| card | $(head -1 "$LOG/gpu.txt") |"
if [ "$MODE" != collect ]; then
echo "| build (CUDA sm_90, trainer $TRAINER) | rc=$build_rc, ${build_s} s |"
echo "| test_gpu | rc=$gpu_tests_rc; $(grep -E '^\[  PASSED|^\[  FAILED|^\[  SKIPPED' "$LOG/test_gpu.log" | tr '\n' ' ') |"
echo "| compute-sanitizer memcheck / racecheck | rc=$memcheck_rc / $racecheck_rc; $(grep -E 'ERROR SUMMARY' "$LOG/memcheck.log" 2>/dev/null | tail -1) |"
echo "| Nsight Compute (teacher, convolution, scatter, mix_noise) | $ncu_state |"
grep -hE "^BM_" "$LOG/bench_gpu.txt" | awk '{printf "| %s | %s %s |", $1, $2, $3; for (i = 6; i <= NF; ++i) printf " %s", $i; print " |"}'
cat "$LOG/torch_baselines.md" 2>/dev/null
fi
[ "$MODE" = both ] && echo "| DoA recipe ($RECIPE_SIZE size) | started in the background: scripts/gpu_check.sh collect |"
if [ "$MODE" = recipe ] || [ "$MODE" = collect ]; then
  echo "| DoA recipe ($RECIPE_SIZE size, teacher kernel $teacher_impl) | rc=$recipe_rc; see recipe-summary.md |"
  echo "| DoA MAE, default readout / mean, class (runs 3-4's) | $(tr '\n' ';' < "$DEST/recipe-readouts.txt" 2>/dev/null) |"
fi
if [ "$MODE" = quick ] || [ "$MODE" = targets ] || [ "$MODE" = full ]; then
  echo "| generate --rooms 10000 --device cuda | rc=$gen_rc; $(grep -E 'wrote' "$LOG/generate.log" | tail -1); disk write of the same $bytes bytes ${disk_s} s |"
fi
if [ "$MODE" = full ] || [ "$MODE" = train ]; then
  for src in fly cpufly shard preload dp2; do
    echo "| btrain pretrain ($src): last row of log.csv | $(tail -1 "$LOG/btrain-$src.csv" 2>/dev/null || echo "failed: $(tail -1 "$LOG/btrain-$src.log")") |"
  done
  echo "| btrain dp2 against fly: largest relative loss difference | ${dp_vs_fly:-not measured} |"
fi
} | tee "$DEST/summary.md"
# Issue 3's targets judged on this run alone (kernels and both modes leave the rooms/s and generate rows unmeasured).
case "$MODE" in quick|targets|kernels|both|full)
  # Only the files this run wrote (a stage that failed leaves its rows "not measured").
  args=(--tests "$gpu_tests_rc" --tests-log "$LOG/test_gpu.log" --memcheck "$memcheck_rc" --racecheck "$racecheck_rc")
  [ -s "$LOG/bench_gpu.json" ] && args+=(--bench "$LOG/bench_gpu.json")
  [ -s "$LOG/torch.json" ] && args+=(--torch "$LOG/torch.json")
  for j in "$LOG"/pipeline-*.json; do [ -s "$j" ] && { v=${j##*/pipeline-}; args+=(--pipeline "${v%.json}" "$j"); }; done
  [ "$gen_rc" != skipped ] && args+=(--generate "$LOG/generate.log" --disk-seconds "$disk_s")
  { echo; $PY bench/targets.py "${args[@]}"; } 2>&1 | tee -a "$DEST/summary.md" ;;
esac
tar czf "$DEST/logs.tgz" -C /tmp gpu-logs
stamp "done"
