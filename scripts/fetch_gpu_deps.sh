#!/usr/bin/env bash
# Downloads (does not install) the Debian packages the offline CUDA host lacks into .gpu-deps/, to travel
# with the tree to a GPU check (device tool: carry [".gpu-deps"]). About 50 MB: libmysofa (with the MIT
# KEMAR SOFA file), libsndfile + codecs, soxr, Gloo's headers (btrain's data-parallel training), the Dutch
# part of the speech corpus, the English voices and the shared HRTF sets.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .gpu-deps
cd .gpu-deps
apt-get download libmysofa1 libmysofa-dev libsndfile1 libsndfile1-dev libsoxr0 libsoxr-dev \
  libflac12 libvorbis0a libvorbisenc2 libogg0 libopus0 libmpg123-0 libmp3lame0 fillets-ng-data-nl \
  libgloo-dev
# The English voices (held-out speech of the DoA test grid; ~3 MB of the large fillets-ng-data package) and
# the shared HRTF sets (training heads and the held-out ARI head), for scripts/gpu_check.sh recipe.
mkdir -p sound-en hrtf
for d in /usr/share/games/fillets-ng/sound/*/en; do mkdir -p "sound-en/$(basename "$(dirname "$d")")"; cp -r "$d" "sound-en/$(basename "$(dirname "$d")")/"; done
[ -d ../../shared/hrtf ] && cp ../../shared/hrtf/*.sofa hrtf/
du -sh .
