#!/usr/bin/env python3
"""A copy of a test shard whose augmented (student input) audio is filtered the same way in both ears, to ask which
part of the spectrum a method relies on; the labels, scenes and clean pairs are untouched.
usage: filter_grid.py SRC.h5 DST.h5 --lowpass HZ              8th-order Butterworth magnitude, zero phase
       filter_grid.py SRC.h5 DST.h5 --eq-from A.sofa --eq-to B.sofa [C.sofa ...]
                      the average horizontal-plane power spectrum of head A replaced by the mean of heads B, C, ...
                      (1/3-octave smoothed, level kept at 1 kHz): a head's equalisation, not its directional cues."""
import argparse
import os
import shutil

import h5py
import numpy as np


def envelope_db(sofa, freqs):
    with h5py.File(sofa, "r") as s:  # SOFA files are netCDF-4, i.e. HDF5
        ir, fs = s["Data.IR"][:], float(np.ravel(s["Data.SamplingRate"][:])[0])
        horizontal = np.abs(s["SourcePosition"][:, 1]) < 10
    f = np.fft.rfftfreq(8192, 1 / fs)
    db = 10 * np.log10((np.abs(np.fft.rfft(ir[horizontal], n=8192, axis=2)) ** 2).mean(axis=(0, 1)) + 1e-20)
    out = np.empty_like(freqs)
    for i, f0 in enumerate(np.maximum(freqs, 50.0)):
        band = (f >= f0 * 2 ** (-1 / 6)) & (f <= f0 * 2 ** (1 / 6))
        out[i] = db[band].mean() if band.any() else np.interp(f0, f, db)
    return out


ap = argparse.ArgumentParser()
ap.add_argument("src")
ap.add_argument("dst")
ap.add_argument("--lowpass", type=float)
ap.add_argument("--eq-from")
ap.add_argument("--eq-to", nargs="+")
a = ap.parse_args()
if (a.lowpass is None) == (a.eq_from is None) or (a.eq_from is None) != (a.eq_to is None):
    raise SystemExit("filter_grid.py: give either --lowpass HZ or both --eq-from and --eq-to")
try:
    with h5py.File(a.src, "r") as f:
        if "augmented" not in f or "sample_rate_hz" not in f.attrs:
            raise SystemExit(f"filter_grid.py: {a.src} is not a bsim shard (no augmented audio or sample_rate_hz)")
except OSError as e:
    raise SystemExit(f"filter_grid.py: cannot open {a.src}: {e}")
partial = a.dst + ".partial"  # renamed when complete: an interrupted run leaves no DST that looks finished
shutil.copy(a.src, partial)
with h5py.File(partial, "r+") as o:
    x = o["augmented"]
    fs, t = float(o.attrs["sample_rate_hz"]), x.shape[2]
    n = 2 * t  # zero padding: the zero-phase filter's response is short against it
    freqs = np.fft.rfftfreq(n, 1 / fs)
    if a.lowpass:
        gain = 1 / np.sqrt(1 + (freqs / a.lowpass) ** 16)
    else:
        db = np.mean([envelope_db(s, freqs) for s in a.eq_to], axis=0) - envelope_db(a.eq_from, freqs)
        db -= np.interp(1000.0, freqs, db)
        print("EQ (dB) at 0.25/0.5/1/2/3/4/6/7.9 kHz:",
              [round(float(np.interp(f, freqs, db)), 1) for f in (250, 500, 1000, 2000, 3000, 4000, 6000, 7900)])
        gain = 10 ** (db / 20)
    for i in range(0, x.shape[0], 128):
        block = np.fft.irfft(np.fft.rfft(x[i:i + 128].astype(np.float32), n=n, axis=2) * gain, n=n, axis=2)[..., :t]
        x[i:i + 128] = block.astype(x.dtype)
os.replace(partial, a.dst)
