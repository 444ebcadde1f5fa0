#!/usr/bin/env bash
# Downloads (does not install) the Debian packages the offline CUDA host lacks into .gpu-deps/, to travel
# with the tree to a GPU check (device tool: carry [".gpu-deps"]). About 36 MB: libmysofa (with the MIT
# KEMAR SOFA file), libsndfile + codecs, soxr, and the Dutch part of the speech corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .gpu-deps
cd .gpu-deps
apt-get download libmysofa1 libmysofa-dev libsndfile1 libsndfile1-dev libsoxr0 libsoxr-dev \
  libflac12 libvorbis0a libvorbisenc2 libogg0 libopus0 libmpg123-0 libmp3lame0 fillets-ng-data-nl
du -sh .
