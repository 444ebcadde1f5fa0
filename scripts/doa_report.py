#!/usr/bin/env python3
"""DoA report over a test grid: per-cell metrics with 95% confidence intervals, a markdown summary, the
paper's claim checked cell by cell (with paired 95 % confidence where every method scored the same examples),
and a plot of error against SNR per method (one panel per T60).

usage: doa_report.py --pred NAME=predictions.csv [--pred ...] --out DIR
                     [--pretrained NAME --scratch NAME]   # names of the two neural runs for the claim
                     [--network NAME]...                  # other neural runs: reported, never classic
                     [--classic-group LABEL=NAME,NAME...]...
                     [--shard test_grid.h5]               # adds MAE by the speech's high-frequency share
Every --pred that is not a network is a classic method. The claim's "below every classic method" is checked
against all of them, or once per --classic-group (e.g. the methods steered with the test head's own HRTFs, and
the same methods steered with a generic head, which is all a network trained on other heads has to go on).
Inputs are the CSVs of `btrain eval` and `bsim doa` (azimuth_deg, predicted_deg, abs_error_deg, snr_db,
t60_s, noise_type; example_index optional: it pairs the methods' rows). Accuracy: the estimate falls in the true 5-degree class of [-90, 90) (of [-180, 180)
when the data cover the full circle). Front-back
confusions (reported when any true azimuth lies behind the head): estimates nearer to 180 - az than to az.
"""
import argparse
import csv
import math
import pathlib
import re

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

NOISE = {0: "diffuse", 1: "point", 2: "babble"}


COLUMNS = ("azimuth_deg", "predicted_deg", "abs_error_deg", "snr_db", "t60_s", "noise_type")


def load(path):
    try:
        with open(path) as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise SystemExit(f"doa_report: cannot read --pred file {path}: {e.strerror}")
    if not rows:
        raise SystemExit(f"doa_report: {path} has no rows")
    missing = [c for c in COLUMNS if c not in rows[0]]
    if missing:
        raise SystemExit(f"doa_report: {path} lacks column(s) {', '.join(missing)}: expected the CSV of btrain eval or bsim doa")
    try:  # example_index (written by btrain eval and bsim doa since 2026-11-26) pairs the methods' rows
        return {k: np.array([float(r[k]) for r in rows]) for k in (*COLUMNS, "example_index") if k in rows[0]}
    except (TypeError, ValueError):
        raise SystemExit(f"doa_report: {path} holds a value that is not a number")


HF_HZ = 3000.0  # "bright" speech: its energy above this share of the total


def speech_hf_share(path):
    """Per example of a shard: (keys, dB) where dB = 10 log10 of the clean pair's energy above HF_HZ over its total
    energy (both ears; the clean pair is the speech through the direct path's HRIR only, so this is the talker's
    and the utterance's brightness, hardly the room's or the noise's). keys: scene/example_index, else the row."""
    import h5py  # only here: the report itself needs no shard
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise SystemExit(f"doa_report: cannot open --shard {path}: {e}")
    with f:
        if "clean" not in f or f["clean"].ndim != 3 or "sample_rate_hz" not in f.attrs:
            raise SystemExit(f"doa_report: --shard {path} is not a bsim shard (no clean audio or sample_rate_hz)")
        clean, fs = f["clean"], float(f.attrs["sample_rate_hz"])
        n, t = clean.shape[0], clean.shape[2]
        keys = f["scene/example_index"][:].astype(np.float64) if "scene/example_index" in f else np.arange(n, dtype=np.float64)
        high = np.fft.rfftfreq(t, 1.0 / fs) >= HF_HZ
        share = np.empty(n)
        for i in range(0, n, 256):  # blocks: a 14,400-example grid of 4 s clips is 3.7 GB of float16
            power = (np.abs(np.fft.rfft(clean[i:i + 256].astype(np.float32), axis=2)) ** 2).sum(axis=1)
            share[i:i + 256] = 10.0 * np.log10(power[:, high].sum(axis=1) / np.maximum(power.sum(axis=1), 1e-30) + 1e-12)
    return keys, share


def brightness_quartiles(share):
    """The shard's quartile edges of the share and each example's quartile (0 dullest .. 3 brightest)."""
    edges = np.percentile(share, [25, 50, 75])
    return edges, np.searchsorted(edges, share)


def readout(path):
    """How btrain eval read the network out, from the summary.md beside its predictions.csv: "last frame,
    parabolic" and the like; the old readout for a summary written before the keys existed; None for anything
    that is not a btrain eval folder (bsim doa's predictions_<method>.csv, CSVs of other tools)."""
    p = pathlib.Path(path)
    summary = p.with_name("summary.md")
    if p.name != "predictions.csv" or not summary.is_file():
        return None
    title = summary.read_text().split("\n", 1)[0]
    if not title.startswith("# DoA evaluation of "):
        return None
    m = re.search(r"\(model\.doa_pooling: (\w+), model\.doa_estimate: (\w+)\)$", title)
    pooling, estimate = m.groups() if m else ("mean", "class")  # btrain before 2026-11-26 had only these
    return f"{'last frame' if pooling == 'last' else 'mean of all frames'}, {estimate.replace('_', ' ')}"


def ci95(x):
    if len(x) < 2:
        return float("nan")
    return 1.96 * np.std(x, ddof=1) / math.sqrt(len(x))


def wrap(d):
    return np.abs((d + 540.0) % 360.0 - 180.0)


def front_back(d):
    """Share of estimates nearer the truth mirrored about the interaural axis (180 - az) than the truth."""
    return float(np.mean(wrap(d["predicted_deg"] - (180.0 - d["azimuth_deg"])) < wrap(d["predicted_deg"] - d["azimuth_deg"])))


FULL = False  # set in main(): 72 classes over [-180, 180) when any true azimuth lies behind the head


def cls(a):
    if FULL:
        return np.floor(((a + 180.0) % 360.0) / 5.0)
    return np.clip(np.floor((a + 90.0) / 5.0), 0, 35)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pred", action="append", required=True, help="NAME=path/to/predictions.csv")
    ap.add_argument("--out", required=True)
    ap.add_argument("--pretrained")
    ap.add_argument("--scratch")
    ap.add_argument("--network", action="append", default=[],
                    help="NAME of a --pred that is another neural model (reported; never counted as a classic method)")
    ap.add_argument("--classic-group", action="append", default=[], metavar="LABEL=NAME,NAME...",
                    help="classic methods checked together in the claim (repeatable; default: every non-network --pred)")
    ap.add_argument("--shard", help="the test shard the predictions score (matched on example_index): adds MAE by "
                                    "quartile of the speech's energy share above 3 kHz")
    args = ap.parse_args()
    names = [p.partition("=")[0] for p in args.pred]
    for n in [args.pretrained, args.scratch, *args.network]:
        if n is not None and n not in names:
            raise SystemExit(f"doa_report: {n!r} names no --pred (have {', '.join(names)})")
    networks = {n for n in (args.pretrained, args.scratch, *args.network) if n is not None}
    groups = []  # (label, [classic method names]) for the claim
    for g in args.classic_group:
        label, _, members = g.rpartition("=")
        members = [m for m in members.split(",") if m]
        if not label or not members:
            raise SystemExit(f"doa_report: --classic-group {g!r}: expected LABEL=NAME,NAME...")
        for m in members:
            if m not in names or m in networks:
                raise SystemExit(f"doa_report: --classic-group {label!r}: {m!r} is not a classic method's --pred")
        groups.append((label, members))
    if not groups:
        groups = [(None, [n for n in names if n not in networks])]
    data, readouts = {}, {}  # readouts: how each btrain eval network was read out (networks read out
    for p in args.pred:       # differently are not comparable to the degree)
        name, _, path = p.partition("=")
        if not path:
            raise SystemExit(f"doa_report: --pred {p!r}: expected NAME=path")
        data[name] = load(path)
        if r := readout(path):
            readouts[name] = r
    # The shard's per-example brightness, read (and every --pred matched to it) before any output is written.
    quartile_of = {}
    if args.shard:
        for name, d in data.items():  # before reading the shard (seconds for a large grid)
            if "example_index" not in d:
                raise SystemExit(f"doa_report: --shard needs example_index in every --pred; {name}'s CSV has none")
        keys, share = speech_hf_share(args.shard)
        edges, quartile = brightness_quartiles(share)
        row = {k: i for i, k in enumerate(keys)}
        for name, d in data.items():
            idx = [row.get(k) for k in d["example_index"]]
            if any(i is None for i in idx):
                raise SystemExit(f"doa_report: {name} scores examples that --shard {args.shard} does not hold")
            quartile_of[name] = quartile[np.array(idx)]
    out = pathlib.Path(args.out)  # made only now: bad input leaves no folder behind
    out.mkdir(parents=True, exist_ok=True)

    global FULL
    FULL = any(np.any(np.abs(d["azimuth_deg"]) > 90) for d in data.values())
    cells = []
    for name, d in data.items():
        for snr in np.unique(d["snr_db"]):
            for t60 in np.unique(d["t60_s"]):
                for nt in np.unique(d["noise_type"]):
                    m = (d["snr_db"] == snr) & (d["t60_s"] == t60) & (d["noise_type"] == nt)
                    if not m.any():
                        continue
                    e = d["abs_error_deg"][m]
                    cells.append(dict(method=name, snr_db=snr, t60_s=t60, noise=NOISE.get(int(nt), str(nt)), n=int(m.sum()),
                                      mae=e.mean(), ci95=ci95(e), within10=(e <= 10).mean(),
                                      accuracy=(cls(d["predicted_deg"][m]) == cls(d["azimuth_deg"][m])).mean()))
    with open(out / "cells.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(cells[0]))
        w.writeheader()
        w.writerows(cells)

    full = FULL
    md = ["# DoA evaluation\n", "| method | examples | MAE (deg) | 95% CI | accuracy (5 deg class) | within 10 deg |"
          + (" front-back confusions |" if full else ""), "|---|---|---|---|---|---|" + ("---|" if full else "")]
    for name, d in data.items():
        e = d["abs_error_deg"]
        acc = (cls(d["predicted_deg"]) == cls(d["azimuth_deg"])).mean()
        md.append(f"| {name} | {len(e)} | {e.mean():.2f} | +-{ci95(e):.2f} | {acc:.3f} | {(e <= 10).mean():.3f} |"
                  + (f" {front_back(d):.3f} |" if full else ""))
    if readouts:
        md.append("\nNetworks read out as (model.doa_pooling, model.doa_estimate): "
                  + "; ".join(f"{n}: {r}" for n, r in readouts.items()) + ".")
    t60s = sorted({c["t60_s"] for c in cells})
    snrs = sorted({c["snr_db"] for c in cells})
    for name, d in data.items():
        md += [f"\n## {name}: MAE (deg) by SNR (rows) and T60 (columns), all noise types\n",
               "| SNR \\ T60 | " + " | ".join("anechoic" if t == 0 else f"{t:g} s" for t in t60s) + " |",
               "|---|" + "---|" * len(t60s)]
        for snr in snrs:
            row = []
            for t in t60s:
                m = (d["snr_db"] == snr) & (d["t60_s"] == t)
                row.append(f"{d['abs_error_deg'][m].mean():.1f}" if m.any() else "-")
            md.append(f"| {snr:g} dB | " + " | ".join(row) + " |")

    # By noise type: where a method fails is often the noise, not the SNR (GCC-PHAT and SRP-PHAT weight every
    # bin alike, so a steady point source outside the speech's pauses and bands can win the peak).
    noises = sorted({int(x) for d in data.values() for x in np.unique(d["noise_type"])})
    label = lambda nt: NOISE.get(nt, str(nt))  # noqa: E731
    md += ["\n## MAE (deg) by noise type, all SNRs / SNR >= 10 dB\n",
           "| method | " + " | ".join(f"{label(nt)} | {label(nt)}, >= 10 dB" for nt in noises) + " |",
           "|---|" + "---|---|" * len(noises)]
    for name, d in data.items():
        row = []
        for nt in noises:
            for m in (d["noise_type"] == nt, (d["noise_type"] == nt) & (d["snr_db"] >= 10)):
                e = d["abs_error_deg"][m]
                row.append(f"{e.mean():.1f} +-{ci95(e):.1f}" if len(e) else "-")
        md.append(f"| {name} | " + " | ".join(row) + " |")

    if args.shard:
        # By the voice's spectral balance: on the large CPU grid the classic methods halve their error from the
        # dullest to the brightest quarter while the networks do not, though MUSIC scores the same with everything
        # above 3 kHz removed: the share marks voices whose energy is not all below 500 Hz, where the
        # interaural cues resolve little (docs/results/speech-brightness-cpu).
        bounds = [share.min(), *edges, share.max()]
        md += [f"\n## MAE (deg) by the speech's energy share above {HF_HZ / 1000:g} kHz (clean pair; quartiles of the shard)\n",
               "| method | " + " | ".join(f"{lo:.1f} .. {hi:.1f} dB" for lo, hi in zip(bounds[:-1], bounds[1:])) + " |",
               "|---|" + "---|" * 4]
        for name, d in data.items():
            q = quartile_of[name]
            cells_q = [d["abs_error_deg"][q == j] for j in range(4)]
            md.append(f"| {name} | " + " | ".join(f"{e.mean():.1f} +-{ci95(e):.1f}" if len(e) else "-" for e in cells_q) + " |")

    if args.pretrained and args.scratch:
        key = lambda c: (c["snr_db"], c["t60_s"], c["noise"])  # noqa: E731
        by = {}
        for c in cells:
            by.setdefault(c["method"], {})[key(c)] = c
        pre, scr = by[args.pretrained], by[args.scratch]
        hard = [k for k in pre if k[0] <= 0 or k[1] >= 0.6]
        held = [k for k in hard if pre[k]["mae"] <= 0.8 * scr[k]["mae"]]
        # When every method scored the same examples (one test shard; btrain eval and bsim doa list them in
        # different orders), each cell's comparison is paired per example: rows are matched on example_index,
        # or where a CSV lacks it (older files, other tools) on (noise, T60, SNR, true azimuth), which is unique
        # per example; a cell counts as holding or failing only when the 95 % confidence interval of the mean
        # paired difference excludes 0; the rest are undecided.
        keys = (("example_index",) if all("example_index" in d for d in data.values())
                else ("noise_type", "t60_s", "snr_db", "azimuth_deg"))
        for name, d in data.items():
            order = np.lexsort([d[k] for k in reversed(keys)])
            data[name] = {k: v[order] for k, v in d.items()}
        first = next(iter(data.values()))
        unique = len({tuple(r) for r in np.stack([first[k] for k in keys], axis=1)}) == len(first["azimuth_deg"])
        same = lambda d: (len(d["azimuth_deg"]) == len(first["azimuth_deg"])  # noqa: E731
                          and all(np.array_equal(d[k], first[k]) for k in (*keys, "snr_db", "t60_s", "noise_type"))
                          and np.allclose(d["azimuth_deg"], first["azimuth_deg"], atol=1e-3))  # the same truths
        paired = unique and all(same(d) for d in data.values())

        noise_code = {NOISE.get(int(nt), str(nt)): nt for d in data.values() for nt in np.unique(d["noise_type"])}

        def errors(name, k):  # the cell's errors, in the paired order
            d = data[name]
            m = (d["snr_db"] == k[0]) & (d["t60_s"] == k[1]) & (d["noise_type"] == noise_code[k[2]])
            return d["abs_error_deg"][m]

        def verdict(diffs):  # paired differences, one array per comparison that must all be < 0
            bounds = [(x.mean() - ci95(x), x.mean() + ci95(x)) for x in diffs]
            return "holds" if all(hi < 0 for _, hi in bounds) else "fails" if any(lo > 0 for lo, _ in bounds) else "undecided"

        def confidence(verdicts):  # "; with 95 % paired confidence: ..." for one claim line (verdicts: a callable)
            if not paired:
                return " (no paired confidence: the predictions are not of the same examples)"
            verdicts = verdicts()
            n = {v: sum(x == v for x in verdicts) for v in ("holds", "fails", "undecided")}
            return f"; with 95 % paired confidence: holds in {n['holds']}, fails in {n['fails']}, undecided in {n['undecided']}"

        md += ["\n## The paper's claim\n",
               f"Pretrained = `{args.pretrained}`, from scratch = `{args.scratch}`.\n",
               f"- Pretrained MAE <= 0.8 x from-scratch MAE in the hard cells (SNR <= 0 dB or T60 >= 0.6 s): "
               f"{len(held)} of {len(hard)} cells ({'holds' if held and len(held) == len(hard) else 'does not hold everywhere'})"
               + confidence(lambda: [verdict([errors(args.pretrained, k) - 0.8 * errors(args.scratch, k)]) for k in hard]) + "."]
        for label, classic in groups:
            if not classic:
                md.append("- Pretrained MAE against the classic methods: none among the predictions.")
                continue
            beats = [k for k in pre if all(pre[k]["mae"] < by[m][k]["mae"] for m in classic if k in by[m])]
            sure = lambda: [verdict([errors(args.pretrained, k) - errors(m, k) for m in classic if k in by[m]])  # noqa: E731
                            for k in pre]
            md.append(f"- Pretrained MAE below every classic method{f' {label}' if label else ''} ({', '.join(classic)}): "
                      f"{len(beats)} of {len(pre)} cells ({'holds' if len(beats) == len(pre) else 'does not hold everywhere'})"
                      + confidence(sure) + ".")
    (out / "summary.md").write_text("\n".join(md) + "\n")

    # Networks solid, classic methods dashed, those of a second or later --classic-group dotted in the colour of
    # the method at the same place in the first group (so a method steered two ways is one colour, two lines).
    nets = [n for n in data if n in networks]
    look = {n: (f"C{i % 10}", "-") for i, n in enumerate(nets)}
    for g, (_, classic) in enumerate(groups):
        for j, m in enumerate(classic):
            look.setdefault(m, (f"C{(len(nets) + j) % 10}", "--" if g == 0 else ":"))
    fig, axes = plt.subplots(1, len(t60s), figsize=(4 * len(t60s) + 2.5, 3.8), sharey=True, squeeze=False)
    for ax, t in zip(axes[0], t60s):
        for name, d in data.items():
            mae = [d["abs_error_deg"][(d["snr_db"] == s) & (d["t60_s"] == t)] for s in snrs]
            color, line = look.get(name, (None, "--"))
            ax.errorbar(snrs, [x.mean() if len(x) else np.nan for x in mae],
                        yerr=[ci95(x) if len(x) else np.nan for x in mae], marker="o", markersize=4, capsize=2,
                        elinewidth=0.8, label=name, color=color, linestyle=line)
        ax.set_title("anechoic" if t == 0 else f"T60 {t:g} s")
        ax.set_xlabel("SNR (dB)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("mean absolute error (deg)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=8)
    fig.tight_layout(rect=(0, 0, 1 - 2.4 / fig.get_figwidth(), 1))
    fig.savefig(out / "mae_vs_snr.png", dpi=110)
    print((out / "summary.md").read_text())


if __name__ == "__main__":
    main()
