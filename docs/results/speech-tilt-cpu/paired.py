#!/usr/bin/env python3
"""Paired comparison of networks' predictions on one test shard: MAE over the grid and per quartile of the clean
pair's energy share above 3 kHz (scripts/doa_report.py's measure and reader), each against a baseline on the same
examples (matched on example_index). Prints a markdown table.

  paired.py --shard test_grid.h5 --base NAME=predictions.csv --pred NAME=predictions.csv [--pred ...]
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "scripts"))
from doa_report import brightness_quartiles, ci95, load, speech_hf_share  # noqa: E402


def named(arg):
    name, sep, path = arg.partition("=")
    if not sep or not name or not path:
        raise SystemExit(f"paired.py: expected NAME=path/to/predictions.csv, not '{arg}'")
    return name, path


def read(path):
    d = load(path)
    if "example_index" not in d:
        raise SystemExit(f"paired.py: {path} has no example_index column: rerun btrain eval / bsim doa")
    return d


def errors_by_key(path, d, keys):
    where = {k: i for i, k in enumerate(d["example_index"])}
    missing = [k for k in keys if k not in where]
    if missing:
        raise SystemExit(f"paired.py: {path} lacks {len(missing)} of the shard's examples (first: {int(missing[0])})")
    return d["abs_error_deg"][[where[k] for k in keys]]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shard", required=True)
    ap.add_argument("--base", required=True, type=named)
    ap.add_argument("--pred", required=True, action="append", type=named)
    a = ap.parse_args()
    preds = {path: read(path) for _, path in [a.base, *a.pred]}  # every CSV checked before the shard is read
    keys, share = speech_hf_share(a.shard)
    _, quart = brightness_quartiles(share)
    base_name, base_path = a.base
    base = errors_by_key(base_path, preds[base_path], keys)
    print("| network | MAE | paired vs " + base_name + " | quartiles, dull -> bright | paired, by quartile |")
    print("|---|---|---|---|---|")
    for name, path in [a.base, *a.pred]:
        e = errors_by_key(path, preds[path], keys)
        q = " / ".join(f"{e[quart == i].mean():.1f}" for i in range(4))
        if name == base_name:
            print(f"| {name} | {e.mean():.2f} +-{ci95(e):.2f} | | {q} | |")
            continue
        d = e - base
        dq = " / ".join(f"{d[quart == i].mean():+.1f} +-{ci95(d[quart == i]):.1f}" for i in range(4))
        print(f"| {name} | {e.mean():.2f} +-{ci95(e):.2f} | {d.mean():+.2f} +-{ci95(d):.2f} | {q} | {dq} |")


if __name__ == "__main__":
    main()
