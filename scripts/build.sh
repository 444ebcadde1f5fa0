#!/usr/bin/env bash
# Configures and builds bsim into ./build (Release, Ninja). CUDA kernels are built when nvcc is found.
# Extra arguments go to CMake's configure step, e.g. scripts/build.sh -DBSIM_ENABLE_CUDA=OFF
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/cuda/bin:$PATH"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build build -j "$(nproc)"
