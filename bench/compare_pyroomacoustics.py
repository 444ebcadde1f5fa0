#!/usr/bin/env python3
"""Side-by-side: the same binaural room with per-image HRTFs, rendered by pyroomacoustics and by bsim.

Room 6 x 4 x 3 m, T60 0.5 s (Eyring), listener (2, 2, 1.5), source (4, 3, 1.6), MIT KEMAR (Debian's SOFA
file), 16 kHz, images up to reflection order 6 / 10 / 15, no late tail, both ears. pyroomacoustics uses
its MeasuredDirectivityFile (one-time set-up not timed); bsim uses bench_cpu's BM_BrirImagesOnly (SOFA
grid built once, not timed). Both single-threaded. Prints a markdown table with the ratio.

usage: .venv/bin/python bench/compare_pyroomacoustics.py [build/bench/bench_cpu]
"""
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np
import pyroomacoustics as pra
from pyroomacoustics.directivities import MeasuredDirectivityFile, Rotation3D

SOFA = "/usr/share/libmysofa/MIT_KEMAR_normal_pinna.sofa"
ORDERS = [6, 10, 15]


def pra_seconds_per_room(order, d_left, d_right, repeats=5):
    e_abs = 1 - np.exp(-24 * np.log(10) / 343 * 72 / (108 * 0.5))
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        room = pra.ShoeBox([6, 4, 3], fs=16000, materials=pra.Material(e_abs), max_order=order,
                           air_absorption=False)
        room.add_source([4, 3, 1.6])
        room.add_microphone([2, 2, 1.5], directivity=d_left)
        room.add_microphone([2, 2, 1.5], directivity=d_right)
        room.compute_rir()
        times.append(time.perf_counter() - t)
    return float(np.median(times)), room.sources[0].images.shape[1]


def main():
    bench = sys.argv[1] if len(sys.argv) > 1 else "build/bench/bench_cpu"
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    pra.constants.set("num_threads", 1)
    pra.constants.set("rir_hpf_enable", False)
    f = MeasuredDirectivityFile(path=SOFA, fs=16000, interp_order=12, interp_n_points=1000)
    rot = Rotation3D([0, 0], "yz", degrees=True)
    d_left, d_right = f.get_mic_directivity(0, orientation=rot), f.get_mic_directivity(1, orientation=rot)
    out = subprocess.run([bench, "--benchmark_filter=BM_BrirImagesOnly", "--benchmark_format=json",
                          "--benchmark_min_time=0.5"], capture_output=True, text=True, check=True)
    ours = {int(b["name"].split("/")[1]): b for b in json.loads(out.stdout)["benchmarks"]}
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
               platform.processor())
    print(f"CPU: {cpu}; pyroomacoustics {pra.__version__}; single thread")
    print("| max order | images | pyroomacoustics ms/room | bsim ms/room | bsim speed-up |")
    print("|---|---|---|---|---|")
    for order in ORDERS:
        t_pra, n_img = pra_seconds_per_room(order, d_left, d_right)
        t_ours = ours[order]["real_time"] / 1e3 if ours[order]["time_unit"] == "ms" else ours[order]["real_time"] / 1e9
        assert int(ours[order]["images"]) == n_img, (ours[order]["images"], n_img)
        print(f"| {order} | {n_img} | {t_pra * 1e3:.2f} | {t_ours * 1e3:.2f} | {t_pra / t_ours:.1f}x |")


if __name__ == "__main__":
    main()
