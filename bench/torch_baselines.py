#!/usr/bin/env python3
"""The same GPU work done with PyTorch, beside bsim's kernels (bench_gpu), with the ratios.

Times (CUDA events, medians of 20 runs after warm-up), per example, B = 256:
  * FFT convolution of 4 s speech (16 kHz) with a 0.5 s two-ear response: power-of-two size, 5-smooth size
    72000, overlap-save with 16384- and 32768-point blocks;
  * torch.stft (512/400/160, periodic Hann, center=False) + GCC-PHAT over 17 lags; torch.stft + IPD/ILD.
usage: python3 bench/torch_baselines.py [build/bench/bench_gpu | bench_gpu.json] [--json OUT]
(a .json argument: a bench_gpu --benchmark_out=... file from the same run, instead of running bench_gpu again;
--json OUT also writes torch's times, us per example, for bench/targets.py)
"""
import argparse
import json
import subprocess

import torch

B, T, L = 256, 64000, 8000


def timed(fn, reps=20):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b))
    times.sort()
    return times[len(times) // 2] * 1e3 / B  # us per example


def conv_fft(x, h, n):
    X = torch.fft.rfft(x, n)[:, None]
    return torch.fft.irfft(X * torch.fft.rfft(h, n), n)[..., :T]


def conv_ols(x, h, n):
    step = n - L + 1
    H = torch.fft.rfft(h, n)[:, :, None]
    blocks = -(-T // step)
    xp = torch.nn.functional.pad(x, (L - 1, blocks * step - T + n))
    frames = xp.unfold(-1, n, step)[:, :blocks]
    y = torch.fft.irfft(torch.fft.rfft(frames, n)[:, None] * H, n)[..., L - 1:]
    return y.reshape(B, 2, -1)[..., :T]


def main():
    ap = argparse.ArgumentParser(description="PyTorch's times for bsim's GPU work, and the ratios")
    ap.add_argument("bench", nargs="?", help="bench_gpu binary or its --benchmark_out JSON")
    ap.add_argument("--json", help="write torch's times (us per example) here")
    args = ap.parse_args()
    dev = "cuda"
    x = torch.randn(B, T, device=dev)
    h = torch.randn(B, 2, L, device=dev)
    a = torch.randn(B, 2, T, device=dev)
    win = torch.hann_window(400, device=dev)

    def stft(sig):
        fr = sig.unfold(-1, 400, 160) * win
        return torch.fft.rfft(fr, 512)

    def gcc():
        X = stft(a)
        G = X[:, 0] * X[:, 1].conj()
        r = torch.fft.irfft(G / G.abs().clamp_min(1e-12), 512)
        return torch.cat([r[..., -8:], r[..., :9]], -1)

    def ipd_ild():
        X = torch.stft(a.reshape(-1, T), 512, 160, 400, win, center=False, return_complex=True).reshape(B, 2, 257, -1)
        c = X[:, 0] * X[:, 1].conj()
        ph = torch.angle(c)
        return torch.cat([torch.cos(ph), torch.sin(ph), 10 * torch.log10((X[:, 0].abs() ** 2 + 1e-10) / (X[:, 1].abs() ** 2 + 1e-10))], 1)

    rows = {
        "conv pow2 131072": timed(lambda: conv_fft(x, h, 131072)),
        "conv 5-smooth 72000": timed(lambda: conv_fft(x, h, 72000)),
        "conv overlap-save 16384": timed(lambda: conv_ols(x, h, 16384)),
        "conv overlap-save 32768": timed(lambda: conv_ols(x, h, 32768)),
        "stft + GCC-PHAT 17 lags": timed(gcc),
        "stft + IPD/ILD": timed(ipd_ild),
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__, "batch": B,
                       "us_per_example": rows}, f, indent=1)
    ours = {}
    if args.bench:
        if args.bench.endswith(".json"):
            with open(args.bench) as f:
                report = json.load(f)
        else:
            report = json.loads(subprocess.run([args.bench, "--benchmark_filter=Convolve|Teacher", "--benchmark_format=json",
                                                "--benchmark_min_time=1"], capture_output=True, text=True, check=True).stdout)
        for b in report["benchmarks"]:
            if "us/example" not in b or not any(w in b["name"] for w in ("Convolve", "Teacher")):
                continue
            ours[b["name"].split("/real_time")[0]] = b["us/example"] * 1e6  # JSON holds the inverted rate in seconds
    print(f"GPU: {torch.cuda.get_device_name()}; torch {torch.__version__}; B = {B}")
    print("| work | torch us/example | bsim us/example | speed-up |")
    print("|---|---|---|---|")
    best_conv = min(v for k, v in rows.items() if k.startswith("conv"))
    for k, v in rows.items():
        mine = ours.get("BM_ConvolveBatch") if k.startswith("conv") else ours.get(
            "BM_TeacherBatch/0" if "GCC" in k else "BM_TeacherBatch/1")
        ratio = f"{v / mine:.1f}x" if mine else "-"
        print(f"| {k}{' (fastest torch)' if v == best_conv else ''} | {v:.2f} | {f'{mine:.2f}' if mine else '-'} | {ratio} |")
    # Every bsim variant (default and the alternatives beside it) against the fastest torch path for its work.
    if ours:
        print()
        print("| bsim variant | us/example | torch reference | speed-up |")
        print("|---|---|---|---|")
        for name, mine in sorted(ours.items()):
            if "Convolve" in name:
                ref, label = best_conv, "fastest conv"
            elif name.split("/")[1] == "0":
                ref, label = rows["stft + GCC-PHAT 17 lags"], "stft + GCC-PHAT"
            else:
                ref, label = rows["stft + IPD/ILD"], "stft + IPD/ILD"
            print(f"| {name} | {mine:.2f} | {label} {ref:.2f} | {ref / mine:.1f}x |")


if __name__ == "__main__":
    main()
