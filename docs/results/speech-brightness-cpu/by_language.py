#!/usr/bin/env python3
"""Brightness of the embedded corpus's languages as the networks hear it: per example of shards rendered with the
same head, the clean pair's energy share above 3 kHz (scripts/doa_report.py's measure), grouped by the language
of the example's first utterance (the speech file's folder: nl, cs, en).
usage: by_language.py shard.h5 [shard.h5 ...]"""
import pathlib
import sys

import h5py
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[3] / "scripts"))
from doa_report import speech_hf_share  # noqa: E402

for path in sys.argv[1:]:
    _, share = speech_hf_share(path)  # first: a missing file or a non-shard is a one-line error there
    with h5py.File(path, "r") as f:
        files = [x.decode() for x in f["speech_files"][:]]
        first = f["scene/speech_index"][:]
    lang = np.array([pathlib.Path(files[i]).parent.name for i in first])
    for l in sorted(set(lang)):
        s = share[lang == l]
        print(f"{path}: {l}: {len(s)} examples, energy share above 3 kHz: median {np.median(s):.1f} dB "
              f"(quartiles {np.percentile(s, 25):.1f} .. {np.percentile(s, 75):.1f})")
