#!/usr/bin/env bash
# Installs everything bsim needs on a fresh Debian 12 machine: build tools, libraries, the embedded
# default data (MIT KEMAR SOFA, fillets-ng speech) and a Python venv (.venv) with the test oracles.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

DEB_PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libmysofa-dev libmysofa1            # SOFA HRTF sets (+ /usr/share/libmysofa/MIT_KEMAR_normal_pinna.sofa)
  libsndfile1-dev libsoxr-dev         # audio I/O (WAV/FLAC/OGG) and resampling
  libhdf5-dev libfftw3-dev            # shards, CPU FFTs
  libyaml-cpp-dev libcli11-dev        # configuration, command line
  libgtest-dev libgmock-dev libbenchmark-dev
  libgloo-dev                         # Gloo's headers: btrain's data-parallel training (c10d, inside libtorch)
  libboost-context-dev                # fibers for the emulated CUDA backend's barriers (tests only)
  libasan8 libtsan2                   # AddressSanitizer, ThreadSanitizer runtimes of the emulated tests (g++'s own)
  fillets-ng-data fillets-ng-data-nl fillets-ng-data-cs   # embedded real speech corpus (OGG)
  python3 python3-venv
  shellcheck                          # lints the scripts (a test: the GPU check runs only on a lent machine)
)

missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Python test oracles (numpy/scipy/h5py/pyroomacoustics) live in a project venv, never in the system.
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import numpy, scipy, h5py, pyroomacoustics, pytest, yaml, sofa, torch" 2>/dev/null; then
  echo "setup: creating .venv with the Python test oracles"
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -r tests/python/requirements.txt
fi
echo "setup: done"
