#!/usr/bin/env bash
# The test command of the README: set up a fresh machine, build, run every CPU test (C++ and Python
# oracles). GPU-labelled tests skip themselves where no device is visible.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
ctest --test-dir build --output-on-failure -j 2 "$@"
