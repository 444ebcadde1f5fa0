#!/usr/bin/env python3
"""Issue 3's targets against one GPU check's measurements, as one table (scripts/gpu_check.sh full prints it).

Every figure comes from files the same run wrote, so that a card meets the targets in one run or not at all:
  --bench FILE          bench_gpu --benchmark_out JSON (BrirBatch, ConvolveBatch, TeacherBatch, PipelineBatch;
                        TeacherBatchFused's GCC-PHAT launch shapes, where timed, shown under the teacher, not judged)
  --pipeline LABEL FILE the whole batch again with an implementation switch set (repeatable): shown under the
                        default as what would meet the target if it became the default, not judged
  --torch FILE          bench/torch_baselines.py --json output of the same run
  --generate FILE       bsim generate --rooms 10000 --device cuda's log (its "wrote ... in S s (..., GPU busy G s)")
  --disk-seconds S      seconds to write the same bytes to the same disk (head -c + sync)
  --tests/--memcheck/--racecheck RC   exit statuses (0: passed; "skipped" or absent: not run; 124/137: stopped by
                        the time limit; 126/127: the tool was missing)
  --tests-log FILE      the gpu tests' GoogleTest output: a test that skipped (no device) leaves them unmeasured
Exit status 0 whatever the verdicts (this is a report); 2 on unreadable input.
"""
import argparse
import json
import re
import sys

ROOMS_PER_S = 50_000  # new binaural rooms per second
CONV_RATIO = 2.0      # convolution against the fastest torch variant
TEACHER_RATIO = 4.0   # GCC-PHAT teacher against torch.stft + GCC-PHAT
BATCH_MS = 10.0       # 256 examples of 4 s, wall time per batch
GENERATE_GPU_S = 0.5  # bsim generate --rooms 10000: GPU part
GENERATE_DISK = 1.2   # ... wall time within this factor of writing the same bytes


def load_benchmarks(path):
    """Benchmarks by name (errored ones left out). A file cut short (bench_gpu stopped by its time limit before it
    closed the JSON) keeps the benchmarks written before the cut."""
    with open(path) as f:
        text = f.read()
    try:
        report = json.loads(text)
    except json.JSONDecodeError:
        cut = text.rfind("\n    }")  # the end of the last whole benchmark entry (Google Benchmark's indentation)
        if cut < 0 or '"benchmarks"' not in text:
            raise
        report = json.loads(text[:cut + len("\n    }")] + "\n  ]\n}")
    return {b["name"]: b for b in report["benchmarks"] if b.get("run_type", "iteration") == "iteration"
            and "error_occurred" not in b}


def find(benches, prefix):
    """The benchmark whose name starts with prefix and continues with '/' or nothing (e.g. BM_ConvolveBatch, not
    BM_ConvolveBatchFused)."""
    for name, b in benches.items():
        if name == prefix or name.startswith(prefix + "/"):
            return b
    return None


def ms_per_iteration(b):
    scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b.get("time_unit", "ns")]
    return b["real_time"] * scale


def us_per_example(b):
    return b["us/example"] * 1e6  # an inverted rate: Google Benchmark stores seconds per example


def verdict(ok):
    return "not measured" if ok is None else ("met" if ok else "**not met**")


def rows(args):
    out = []  # (target, measured, needed, ok)
    benches = load_benchmarks(args.bench) if args.bench else {}
    torch = {}
    if args.torch:
        with open(args.torch) as f:
            torch = json.load(f)["us_per_example"]

    # New rooms: the best launch size among those that keep the responses on the device with their tails
    # (BM_BrirBatch/<rooms>/<tail>/<to host>), as the pipeline uses them.
    brir = [(b["rooms/s"], name) for name, b in benches.items()
            if re.fullmatch(r"BM_BrirBatch/\d+/1/0(/.*)?", name) and "rooms/s" in b]
    if brir:
        rate, name = max(brir)
        out.append(("new binaural rooms (tail to -60 dB)", f"{rate:,.0f} rooms/s ({name.split('/real_time')[0]})",
                    f">= {ROOMS_PER_S:,} rooms/s", rate >= ROOMS_PER_S))
    else:
        out.append(("new binaural rooms (tail to -60 dB)", "-", f">= {ROOMS_PER_S:,} rooms/s", None))

    conv = find(benches, "BM_ConvolveBatch")
    torch_conv = {k: v for k, v in torch.items() if k.startswith("conv")}
    if conv and torch_conv:
        best = min(torch_conv, key=torch_conv.get)
        mine = us_per_example(conv)
        ratio = torch_conv[best] / mine
        out.append(("convolution against the fastest torch variant",
                    f"{mine:.2f} vs {torch_conv[best]:.2f} us/example ({best}): {ratio:.2f}x", f">= {CONV_RATIO:g}x",
                    ratio >= CONV_RATIO))
    else:
        out.append(("convolution against the fastest torch variant", "-", f">= {CONV_RATIO:g}x", None))

    gcc = find(benches, "BM_TeacherBatch/0")
    torch_gcc = torch.get("stft + GCC-PHAT 17 lags")
    if gcc and torch_gcc:
        mine = us_per_example(gcc)
        ratio = torch_gcc / mine
        out.append(("GCC-PHAT teacher against torch.stft + GCC-PHAT",
                    f"{mine:.2f} vs {torch_gcc:.2f} us/example: {ratio:.2f}x", f">= {TEACHER_RATIO:g}x",
                    ratio >= TEACHER_RATIO))
        # The fused kernel's launch shapes the run timed (BM_TeacherBatchFused/0/<frames per block>/<threads>):
        # what each would give as the default, not judged (the default's shape is an open question).
        shapes = sorted((int(m.group(1)), int(m.group(2)), name) for name in benches
                        if (m := re.fullmatch(r"BM_TeacherBatchFused/0/(\d+)/(\d+)(/.*)?", name)))
        for frames, threads, name in shapes:
            us = us_per_example(benches[name])
            out.append((f"  the same with {frames} frames per block of {threads} threads",
                        f"{us:.2f} us/example: {torch_gcc / us:.2f}x", f">= {TEACHER_RATIO:g}x",
                        "info-met" if torch_gcc / us >= TEACHER_RATIO else "info-not"))
    else:
        out.append(("GCC-PHAT teacher against torch.stft + GCC-PHAT", "-", f">= {TEACHER_RATIO:g}x", None))

    def batch_text(b):
        """Wall and GPU ms, the GPU's floor where the run counted it, and each stage's ms (and floor)."""
        text = f"{ms_per_iteration(b):.2f} ms wall, {b['gpu_ms/batch']:.2f} ms GPU"
        if "floor_ms" in b:
            text += f" = {b['gpu_ms/batch'] / b['floor_ms']:.1f}x its memory floor {b['floor_ms']:.2f} ms"
        stages = [s for s in ("upload", "dry", "brir", "conv", "mix", "teacher") if f"{s}_ms" in b]
        if stages:
            floor = lambda s: f" (floor {b[s + '_floor_ms']:.2f})" if s + "_floor_ms" in b else ""
            text += "; stages " + ", ".join(f"{s} {b[s + '_ms']:.2f}{floor(s)}" for s in stages)
        return text

    batch = find(benches, "BM_PipelineBatch/256")
    if batch:
        wall = ms_per_iteration(batch)
        out.append(("batch of 256 x 4 s, default implementations", batch_text(batch), f"< {BATCH_MS:g} ms wall",
                    wall < BATCH_MS))
        for label, path in args.pipeline:
            variant = find(load_benchmarks(path), "BM_PipelineBatch/256")
            if variant:
                ok = ms_per_iteration(variant) < BATCH_MS
                out.append((f"  the same with {label}", batch_text(variant),
                            f"< {BATCH_MS:g} ms wall", "info-met" if ok else "info-not"))
    else:
        out.append(("batch of 256 x 4 s, default implementations", "-", f"< {BATCH_MS:g} ms wall", None))

    if args.generate:
        with open(args.generate) as f:
            log = f.read()
        m = re.search(r"wrote (\d+) examples to \S+ in ([\d.]+) s \(.*GPU busy ([\d.]+) s", log)
        if m and int(m.group(1)) >= 10_000:
            wall, gpu = float(m.group(2)), float(m.group(3))
            out.append(("generate --rooms 10000: GPU part", f"{gpu:.3f} s", f"< {GENERATE_GPU_S:g} s",
                        gpu < GENERATE_GPU_S))
            if args.disk_seconds:
                ratio = wall / args.disk_seconds
                out.append(("generate --rooms 10000: wall against the disk",
                            f"{wall:.1f} s vs {args.disk_seconds:.2f} s writing the same bytes: {ratio:.2f}x",
                            f"<= {GENERATE_DISK:g}x", ratio <= GENERATE_DISK))
            else:
                out.append(("generate --rooms 10000: wall against the disk", f"{wall:.1f} s, disk not timed",
                            f"<= {GENERATE_DISK:g}x", None))
        else:
            last = log.strip().splitlines()[-1] if log.strip() else "empty log"
            out.append(("generate --rooms 10000", f"failed: {last[:120]}", "runs", False))
    else:
        out.append(("generate --rooms 10000", "-", "runs", None))

    tests_note, skipped = "", 0
    if args.tests_log:
        with open(args.tests_log) as f:
            log = f.read()
        count = lambda tag: int(m.group(1)) if (m := re.search(rf"^\[\s+{tag}\s+\] (\d+) tests?", log, re.M)) else 0
        passed, skipped, failed = count("PASSED"), count("SKIPPED"), count("FAILED")
        tests_note = f": {passed} passed, {skipped} skipped, {failed} failed"
    for label, rc in (("gpu tests", args.tests), ("compute-sanitizer memcheck", args.memcheck),
                      ("compute-sanitizer racecheck", args.racecheck)):
        note = tests_note if label == "gpu tests" else ""
        if rc in (None, "", "skipped"):
            out.append((label, "not run", "exit 0", None))
        elif rc in ("124", "137"):  # stopped by its time limit (timeout / a kill): no verdict either way
            out.append((label, f"stopped by its time limit (exit {rc})", "exit 0", None))
        elif rc in ("126", "127"):  # the tool (compute-sanitizer) is not there
            out.append((label, f"not run: command not found (exit {rc})", "exit 0", None))
        elif rc == "0" and note and skipped > 0:  # a skipped test (no device) checked nothing
            out.append((label, f"exit 0{note}", "exit 0, none skipped", None))
        else:
            out.append((label, f"exit {rc}{note}", "exit 0", rc == "0"))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bench")
    p.add_argument("--pipeline", nargs=2, action="append", default=[], metavar=("LABEL", "FILE"))
    p.add_argument("--torch")
    p.add_argument("--generate")
    p.add_argument("--disk-seconds", type=float)
    p.add_argument("--tests")
    p.add_argument("--memcheck")
    p.add_argument("--racecheck")
    p.add_argument("--tests-log")
    args = p.parse_args()
    try:
        table = rows(args)
    except (OSError, ValueError, KeyError) as e:  # a missing file, broken JSON, a counter the benchmark lacks
        print(f"targets.py: cannot read the run's results: {e}", file=sys.stderr)
        return 2
    print("| issue 3 target | measured | needed | verdict |")
    print("|---|---|---|---|")
    for target, measured, needed, ok in table:
        shown = {"info-met": "would be met", "info-not": "would not be met"}.get(ok) if isinstance(ok, str) else verdict(ok)
        print(f"| {target} | {measured} | {needed} | {shown} |")
    judged = [ok for _, _, _, ok in table if not isinstance(ok, str)]
    if all(ok is True for ok in judged):
        print("\nEvery target met in this run.")
    else:
        missing = sum(ok is None for ok in judged)
        failed = sum(ok is False for ok in judged)
        print(f"\nNot every target met in this run: {failed} not met, {missing} not measured.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
