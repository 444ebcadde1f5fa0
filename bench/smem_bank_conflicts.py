#!/usr/bin/env python3
"""Shared-memory wavefronts of the Stockham FFT (kernels/smem_fft.cuh) for candidate layouts.

Model: a warp's float2 (8-byte) access is served per half-warp; a half-warp needs as many wavefronts as the
largest number of distinct 8-byte words that fall in one bank pair (word mod 16). The conflict-free count is 2
per warp access. Counted: every pass's loads and stores, plus the split of two real spectra (bins k and n-k);
then, separately, the passes' twiddle reads (w, and w^4 for radix 16; lanes with k = 0 read none) from one
table indexed m = k << shift against the per-pass table that fft_twiddles builds.
usage: python3 bench/smem_bank_conflicts.py
"""
import math


def wavefronts(words):
    total = 0
    for half in (words[:16], words[16:]):
        pairs = {}
        for w in half:
            pairs.setdefault(w % 16, set()).add(w)
        total += max((len(v) for v in pairs.values()), default=0)
    return total


def fft_plan(n, max_radix):
    """The pass radices of kernels/smem_fft.cuh's fft_plan: radix 8, or 16 where that takes fewer passes."""
    log2_n = int(math.log2(n))
    log2_r = 4 if max_radix >= 16 and (log2_n + 3) // 4 < (log2_n + 2) // 3 else 3
    first = log2_n % log2_r
    return ([2 ** first] if first else []) + [2 ** log2_r] * (log2_n // log2_r)


def fft_cost(n, count, slot, stride, max_radix=8):
    radices = fft_plan(n, max_radix)
    log2_ns, total, ideal = 0, 0, 0
    for R in radices:
        log2_r = int(math.log2(R))
        per = n >> log2_r
        items = count * per
        for w0 in range(0, items, 32):
            for r in range(R):
                loads, stores = [], []
                for item in range(w0, min(w0 + 32, items)):
                    c, j = divmod(item, per)
                    k = j & ((1 << log2_ns) - 1)
                    loads.append(c * stride + slot(j + r * per))
                    stores.append(c * stride + slot(((j - k) << log2_r) + k + (r << log2_ns)))
                total += wavefronts(loads) + wavefronts(stores)
                ideal += 4
        log2_ns += log2_r
    for c in range(count):  # split_two_real: bins k and n - k, k consecutive
        for k0 in range(0, n // 2 + 1, 32):
            ks = range(k0, min(k0 + 32, n // 2 + 1))
            total += wavefronts([c * stride + slot(k) for k in ks]) + wavefronts([c * stride + slot((n - k) % n) for k in ks])
            ideal += 4
    return total / ideal


def twiddle_cost(n, count, max_radix, per_pass):
    """Twiddle-read wavefronts over the conflict-free count (one per half-warp that reads), every pass."""
    radices = fft_plan(n, max_radix)
    log2_n, log2_ns, total, ideal = int(math.log2(n)), 0, 0, 0
    for R in radices:
        log2_r = int(math.log2(R))
        per, shift = n >> log2_r, log2_n - log2_ns - log2_r
        # (offset in the per-pass table, shift in the single one) of w, and of w^4 for radix 16
        reads = [(1 << log2_ns, shift)] + ([(n // 8 + (1 << log2_ns), shift + 2)] if R == 16 else [])
        for w0 in range(0, count * per, 32):
            for offset, s in reads:
                for h0 in (w0, w0 + 16):
                    words = []
                    for item in range(h0, min(h0 + 16, count * per)):
                        k = (item % per) & ((1 << log2_ns) - 1)
                        if k:
                            words.append(offset + k if per_pass else k << s)
                    if words:
                        total += wavefronts(words)  # one half-warp: at most 16 words
                        ideal += 1
        log2_ns += log2_r
    return total / ideal if ideal else 1.0


def frame_fastest_cost(n, frames, slot, stride):
    """Reads of bin k of `frames` transforms with the frame fastest (the IPD/ILD loop)."""
    total, ideal, idx = 0, 0, list(range((n // 2 + 1) * frames))
    for w0 in range(0, len(idx), 32):
        words = [(i % frames) * stride + slot(i // frames) for i in idx[w0:w0 + 32]]
        total += wavefronts(words)
        ideal += 2
    return total / ideal


LAYOUTS = {
    "pad one in 8, stride 9n/8": (lambda i: i + (i >> 3), lambda n: n + n // 8),
    "xor (i>>3)&15, stride n+2": (lambda i: i ^ ((i >> 3) & 15), lambda n: n + 2),
    "xor ((i>>3)^(i>>5))&15, stride n+2 (used)": (lambda i: i ^ (((i >> 3) ^ (i >> 5)) & 15), lambda n: n + 2),
}

if __name__ == "__main__":
    print("wavefronts / conflict-free count (passes' loads and stores + the two-real split reads)")
    print("| layout | 512 x 8, radix 8 | 4096, radix 8 | 4096, radix 16 | 256 x 8, radix 8 | bin reads, 8 frames fastest |")
    print("|---|---|---|---|---|---|")
    for name, (slot, stride) in LAYOUTS.items():
        cells = [fft_cost(n, c, slot, stride(n), r) for n, c, r in ((512, 8, 8), (4096, 1, 8), (4096, 1, 16), (256, 8, 8))]
        cells.append(frame_fastest_cost(512, 8, slot, stride(512)))
        print(f"| {name} | " + " | ".join(f"{x:.2f}x" for x in cells) + " |")
    print()
    print("twiddle reads: wavefronts / conflict-free count")
    shapes = ((256, 8, 8), (512, 8, 8), (1024, 4, 8), (4096, 1, 8), (4096, 1, 16), (8192, 1, 16))
    print("| table | " + " | ".join(f"{n}{' x ' + str(c) if c > 1 else ''}, radix {r}" for n, c, r in shapes) + " |")
    print("|---|" + "---|" * len(shapes))
    for name, per_pass in (("one table, m = k << shift", False), ("per pass, [ns + k] (used)", True)):
        print(f"| {name} | " + " | ".join(f"{twiddle_cost(n, c, r, per_pass):.2f}x" for n, c, r in shapes) + " |")
