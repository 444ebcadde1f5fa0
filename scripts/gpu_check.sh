#!/usr/bin/env bash
# The GPU check, run on the offline CUDA host (see ../shared/GPU.md) from the repository root with
# .gpu-deps carried (scripts/fetch_gpu_deps.sh). Builds with CUDA + libtorch, runs the gpu-labelled tests,
# the CPU benchmarks and a btrain timing (default model, on the fly vs shards), and prints a short table.
# Full logs go to $OUT (or ./gpu-check-logs).
set -uo pipefail
export PATH=/usr/local/cuda/bin:$PATH
cd "$(dirname "$0")/.."
LOG=${OUT:-gpu-check-logs}
mkdir -p "$LOG"
nvidia-smi -L | tee "$LOG/gpu.txt"
date -u +%FT%TZ >> "$LOG/gpu.txt"; git rev-parse --short HEAD >> "$LOG/gpu.txt" 2>/dev/null

# Debian packages unpacked aside (never into /), the machine's own HDF5 kept.
mkdir -p /opt/deps
for f in .gpu-deps/*.deb; do dpkg -x "$f" /opt/deps; done
for pc in /opt/deps/usr/lib/x86_64-linux-gnu/pkgconfig/*.pc; do sed -i 's#^prefix=/usr#prefix=/opt/deps/usr#' "$pc"; done
export PKG_CONFIG_PATH=/opt/deps/usr/lib/x86_64-linux-gnu/pkgconfig
export LD_LIBRARY_PATH=/opt/deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
SPEECH=/opt/deps/usr/share/games/fillets-ng/sound
SOFA=/opt/deps/usr/share/libmysofa/MIT_KEMAR_normal_pinna.sofa
PY=$(command -v python3)
TORCH_PREFIX=$($PY -c 'import torch; print(torch.utils.cmake_prefix_path)')

t0=$(date +%s)
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
  -DCMAKE_PREFIX_PATH="$TORCH_PREFIX;/opt/deps/usr" -DBSIM_PYTHON="$PY" -DBSIM_ENABLE_CUDA=ON \
  -DBSIM_BUILD_TRAINER=ON > "$LOG/configure.log" 2>&1 && cmake --build build-gpu -j 16 > "$LOG/build.log" 2>&1
build_rc=$?; build_s=$(( $(date +%s) - t0 ))

COMMON=(--set "hrtf.sofa=[$SOFA]" --set "speech.roots=[$SPEECH]" --set "speech.include_dirs=[nl]")
ctest --test-dir build-gpu -L gpu --output-on-failure > "$LOG/ctest-gpu.log" 2>&1; gpu_tests_rc=$?
build-gpu/apps/bsim devices > "$LOG/devices.txt" 2>&1
build-gpu/bench/bench_cpu --benchmark_min_time=0.5 > "$LOG/bench_cpu.txt" 2>&1
build-gpu/bench/bench_gpu --benchmark_min_time=1 > "$LOG/bench_gpu.txt" 2>&1
$PY bench/torch_baselines.py build-gpu/bench/bench_gpu > "$LOG/torch_baselines.md" 2>&1
compute-sanitizer --tool memcheck build-gpu/tests/test_gpu > "$LOG/memcheck.log" 2>&1; memcheck_rc=$?
compute-sanitizer --tool racecheck build-gpu/tests/test_gpu > "$LOG/racecheck.log" 2>&1; racecheck_rc=$?

# btrain with the default model (3 x 256 LSTM), 4 s clips, batch 32: data on the fly (CPU simulator on
# 16 cores), streamed from a shard, and pre-loaded into memory (the upper bound); the log's data_share
# column is the fraction of each step spent waiting.
build-gpu/apps/bsim generate --rooms 1024 --out "$LOG/train.h5" --quiet "${COMMON[@]}" > "$LOG/generate.log" 2>&1
for src in fly shard preload; do
  data=(--on-the-fly); [ $src = shard ] && data=(--shards "$LOG/train.h5"); [ $src = preload ] && data=(--shards "$LOG/train.h5" --preload)
  timeout 240 build-gpu/apps/btrain pretrain "${data[@]}" --out "runs-gpu/$src" "${COMMON[@]}" \
    --set train.steps=60 --set train.log_every=10 --set train.device=cuda --quiet > "$LOG/btrain-$src.log" 2>&1
  cp "runs-gpu/$src/log.csv" "$LOG/btrain-$src.csv" 2>/dev/null
done

echo
echo "| check | result |"
echo "|---|---|"
echo "| build (CUDA + libtorch) | rc=$build_rc, ${build_s} s |"
echo "| ctest -L gpu | rc=$gpu_tests_rc ($(grep -c ' Passed' "$LOG/ctest-gpu.log") passed) |"
echo "| compute-sanitizer memcheck / racecheck on test_gpu | rc=$memcheck_rc / rc=$racecheck_rc |"
echo "| devices | $(head -1 "$LOG/devices.txt") |"
grep -hE "^BM_" "$LOG/bench_cpu.txt" "$LOG/bench_gpu.txt" | awk '{printf "| %s | %s %s  %s %s %s |\n", $1, $2, $3, $(NF-2), $(NF-1), $NF}'
cat "$LOG/torch_baselines.md"
for src in fly shard preload; do
  last=$(tail -1 "$LOG/btrain-$src.csv" 2>/dev/null)
  echo "| btrain pretrain ($src): step,loss,data_ms,compute_ms,data_share,ex/s | ${last:-failed, see btrain-$src.log} |"
done
