"""The tables of README.md from the predictions run.sh wrote: MAE (95 % interval), the easy and the hard cells,
and the median, per network, grid, pooling and estimate; the paired difference of each readout against the
old one (mean pooling, class centres) on the same examples."""
import sys
import numpy as np

O = sys.argv[1] if len(sys.argv) > 1 else "/tmp/exp-est"
NETS = ["tilt-frozen", "tilt-x0.1", "tilt-scratch", "frozen", "x0.1", "scratch"]
READOUTS = [("mean", "class"), ("mean", "parabolic"), ("last", "class"), ("last", "parabolic")]


def load(g, n, p, e):
    d = np.genfromtxt(f"{O}/{g}/{n}-{p}-{e}/predictions.csv", delimiter=",", names=True)
    return d[np.argsort(d["example_index"])]


for g in ["test_grid", "kemar_nlcs"]:
    print(f"\n### {g}\n")
    print("| network | readout | MAE | paired vs mean/class | easy cells | hard cells | median |")
    print("|---|---|---|---|---|---|---|")
    for n in NETS:
        base = load(g, n, "mean", "class")["abs_error_deg"]
        for p, e in READOUTS:
            d = load(g, n, p, e)
            a = d["abs_error_deg"]
            easy = (d["snr_db"] >= 10) & (d["t60_s"] <= 0.6)
            hard = (d["snr_db"] <= 0) | (d["t60_s"] >= 0.6)
            ci = 1.96 * a.std(ddof=1) / np.sqrt(a.size)
            diff = a - base
            pci = 1.96 * diff.std(ddof=1) / np.sqrt(diff.size)
            paired = "" if (p, e) == ("mean", "class") else f"{diff.mean():+.2f} +-{pci:.2f}"
            print(f"| {n} | {p}, {e} | {a.mean():.2f} +-{ci:.2f} | {paired} | {a[easy].mean():.2f} | "
                  f"{a[hard].mean():.2f} | {np.median(a):.2f} |")
