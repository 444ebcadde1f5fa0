#!/usr/bin/env python3
"""Where a pipeline batch's GPU time goes, kernel by kernel, from Nsight Compute's CSV (scripts/gpu_check.sh).

The GPU check profiles every kernel launch of a few batches of BM_PipelineBatch with two metrics
(gpu__time_duration.sum, dram__bytes.sum; `ncu --csv --page raw --print-units base --log-file FILE`), and this
script sums them per kernel over the whole batches among them: from the first launch of `synthetic_spectra`, the
pipeline's first kernel of a batch (BATCH_START), up to its last launch (what follows is a batch cut short by
ncu's launch count). Kernels are named without namespace, template arguments or parameters; cuFFT's keep their
own names. ncu runs kernels one at a time, so the sum is not the batch's wall time; the shares and each kernel's
bandwidth are what it is for. Reads both of ncu's CSV layouts (one row per launch with a column per metric, or
one row per launch and metric). Exit status 0; 2 on input without a whole batch.

  ncu_batch.py FILE [--peak-gb-s G]   (G: the card's peak memory bandwidth, for each kernel's share of it)
"""
import argparse
import csv
import re
import sys
from collections import defaultdict

BATCH_START = "synthetic_spectra"
TIME = "gpu__time_duration.sum"
BYTES = "dram__bytes.sum"
# Units as ncu writes them: `--print-units base` gives "ns" and "byte" (GPU run 8, ncu 2025.3); the long
# spellings and scaled units are accepted too. Any other unit stops the script (a silent scale of 1 put run 8's
# table in picoseconds).
UNIT_SCALE = {"ns": 1e-9, "nsecond": 1e-9, "us": 1e-6, "usecond": 1e-6, "ms": 1e-3, "msecond": 1e-3,
              "s": 1.0, "second": 1.0, "byte": 1.0, "B": 1.0, "Kbyte": 1e3, "KB": 1e3, "Mbyte": 1e6, "MB": 1e6,
              "Gbyte": 1e9, "GB": 1e9}


class UnitError(ValueError):
    pass


def scale(unit, default):
    unit = (unit or default).strip() or default
    if unit not in UNIT_SCALE:
        raise UnitError(f"unit '{unit}' is not one this script knows ({', '.join(sorted(UNIT_SCALE))}): add it to UNIT_SCALE")
    return UNIT_SCALE[unit]


def short_name(name):
    """`void bsim::cuda::conv_output_blocks<16>(const float2 *, ...)` -> `conv_output_blocks`."""
    name = re.sub(r"\(.*$", "", name.strip())
    while "<" in name:  # template arguments, nested ones too
        stripped = re.sub(r"<[^<>]*>", "", name)
        if stripped == name:
            break
        name = stripped
    return name.split()[-1].split("::")[-1] if name.split() else name


def kernel_name(row):
    for key in ("Kernel Name", "Function Name", "Demangled Name", "Name"):
        if row.get(key):
            return row[key]
    return "?"


def number(text):
    return float(text.replace(",", ""))


def launches(lines):
    """(kernel name, seconds, bytes) per launch."""
    start = next((i for i, line in enumerate(lines) if line.startswith('"ID"')), None)
    if start is None:
        return []
    rows = list(csv.DictReader(lines[start:]))
    if not rows:
        return []
    out = []
    if "Metric Name" in rows[0]:  # long layout: one row per (launch, metric)
        per_id = defaultdict(dict)
        for r in rows:
            try:
                value = number(r["Metric Value"])
            except ValueError:
                continue
            if r["Metric Name"] in (TIME, BYTES):
                value *= scale(r.get("Metric Unit"), "ns" if r["Metric Name"] == TIME else "byte")
            per_id[r["ID"]]["name"] = kernel_name(r)
            per_id[r["ID"]][r["Metric Name"]] = value
        for v in per_id.values():
            if TIME in v:
                out.append((short_name(v["name"]), v[TIME], v.get(BYTES, 0.0)))
        return out
    units = rows[0] if not rows[0].get("ID", "").strip().isdigit() else {}  # wide layout: a units row first
    time_scale, byte_scale = scale(units.get(TIME), "ns"), scale(units.get(BYTES), "byte")
    for r in rows:
        if not r.get("ID", "").strip().isdigit():
            continue
        try:
            t = number(r[TIME]) * time_scale
            b = number(r[BYTES]) * byte_scale if r.get(BYTES) else 0.0
        except (KeyError, ValueError):
            continue
        out.append((short_name(kernel_name(r)), t, b))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv_file")
    ap.add_argument("--peak-gb-s", type=float, default=0.0)
    a = ap.parse_args(argv)
    try:
        with open(a.csv_file, errors="replace") as f:
            rows = launches(f.read().splitlines())
    except OSError as e:
        print(f"ncu_batch: cannot read {a.csv_file}: {e.strerror} (give the CSV that ncu --log-file wrote)",
              file=sys.stderr)
        return 2
    except UnitError as e:
        print(f"ncu_batch: {a.csv_file}: {e}", file=sys.stderr)
        return 2
    starts = [i for i, (name, _, _) in enumerate(rows) if name == BATCH_START]
    if len(starts) < 2:
        print(f"ncu_batch: {a.csv_file} holds no whole batch ({len(starts)} launches of {BATCH_START}, "
              f"{len(rows)} launches in all)", file=sys.stderr)
        return 2
    batches = len(starts) - 1
    rows = rows[starts[0]:starts[-1]]
    total = defaultdict(lambda: [0, 0.0, 0.0])  # launches, seconds, bytes
    for name, t, b in rows:
        total[name][0] += 1
        total[name][1] += t
        total[name][2] += b
    all_s = sum(v[1] for v in total.values())
    print(f"Kernels of {batches} profiled batch(es), per batch ({all_s / batches * 1e3:.2f} ms of kernel time, "
          "one kernel at a time under ncu):\n")
    peak = f" | % of {a.peak_gb_s:.0f} GB/s" if a.peak_gb_s > 0 else ""
    print(f"| kernel | launches | ms | share | GB | GB/s{peak} |")
    print("|---|---|---|---|---|---|" + ("---|" if peak else ""))
    for name, (n, t, b) in sorted(total.items(), key=lambda kv: -kv[1][1]):
        gb_s = b / t / 1e9 if t > 0 else 0.0
        row = (f"| {name} | {n / batches:g} | {t / batches * 1e3:.3f} | {100 * t / all_s:.1f} % | "
               f"{b / batches / 1e9:.3f} | {gb_s:.0f} |")
        if peak:
            row += f" {100 * gb_s / a.peak_gb_s:.0f} % |"
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
