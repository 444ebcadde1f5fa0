"""bench/ncu_batch.py, the per-kernel breakdown of a pipeline batch that scripts/gpu_check.sh prints from Nsight
Compute's CSV: both CSV layouts ncu writes, its units row, kernel names with namespaces, templates and parameters,
and the whole batches (a batch that ncu's launch count cut short is left out). Runs only on a lent GPU otherwise, where a parsing slip costs a lease."""
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "ncu_batch.py"
HEAD = '"ID","Process ID","Process Name","Host Name","Kernel Name","Context","Stream","Block Size","Grid Size","Device","CC"'
BATCH = [  # (ncu's name, ns, bytes) of one batch
    ("void bsim::cuda::synthetic_spectra(const bsim::cuda::ExampleParams *, float2 *)", 100_000, 0),
    ("void bsim::cuda::mix_noise(const bsim::cuda::ExampleParams *, const double *)", 300_000, 600_000_000),
    ("void bsim::cuda::conv_output_blocks<16>(const float2 *, bsim::cuda::FusedConvParams, float *)", 2_000_000, 1_000_000_000),
    ("void regular_fft_factor<81000, float2>(unsigned int)", 100_000, 100_000_000),
    ("void bsim::cuda::finalise(const float *, const bsim::cuda::Gains *, int, int)", 400_000, 1_000_000_000),
]
KERNELS = BATCH * 2 + BATCH[:2]  # two whole batches, then one cut short


def run(tmp_path, text, *args):
    f = tmp_path / "ncu.csv"
    f.write_text(text)
    return subprocess.run([sys.executable, str(SCRIPT), str(f), *args], capture_output=True, text=True)


def check_table(out):
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in out.splitlines()
            if line.startswith("| ") and not line.startswith("| kernel")}
    assert set(rows) == {"synthetic_spectra", "mix_noise", "conv_output_blocks", "regular_fft_factor", "finalise"}
    assert rows["conv_output_blocks"][:2] == ["1", "2.000"]  # launches and ms per batch (2 batches)
    assert rows["conv_output_blocks"][4] == "500"  # 1 GB in 2 ms
    assert rows["mix_noise"][:2] == ["1", "0.300"] and rows["mix_noise"][3] == "0.600"  # not the cut batch's
    assert rows["finalise"][5] == "50 %"  # 2,500 GB/s of 5,000
    assert "2.90 ms of kernel time" in out and "2 profiled batch(es)" in out
    assert list(rows)[0] == "conv_output_blocks"  # the largest first


def wide_csv(byte_unit, time_unit, byte_scale, ns_scale):
    """ncu's wide layout: a units row under the header, then one row per launch (values in the units given)."""
    lines = ["==PROF== Connected to process 42 (bench_gpu)", HEAD + ',"dram__bytes.sum","gpu__time_duration.sum"',
             '"","","","","","","","","","",""' + f',"{byte_unit}","{time_unit}"']
    for i, (name, ns, b) in enumerate(KERNELS):
        lines.append(f'"{i}","42","bench_gpu","127.0.0.1","{name}","1","7","(256, 1, 1)","(16, 256, 1)","0","9.0",'
                     f'"{b / byte_scale:,.3f}","{ns / ns_scale:,.3f}"')
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("units", [
    ("Mbyte", "usecond", 1e6, 1e3),
    ("byte", "ns", 1, 1),  # `--print-units base` as GPU run 8's ncu wrote it (a scale of 1 for "ns" made picoseconds)
])
def test_wide_layout_with_units_row(tmp_path, units):
    r = run(tmp_path, wide_csv(*units), "--peak-gb-s", "5000")
    assert r.returncode == 0, r.stderr
    check_table(r.stdout)


def test_an_unknown_unit_is_an_error(tmp_path):
    r = run(tmp_path, wide_csv("byte", "cycle", 1, 1))
    assert r.returncode == 2 and "unit 'cycle'" in r.stderr and r.stdout == ""


def test_long_layout(tmp_path):
    lines = [HEAD + ',"Section Name","Metric Name","Metric Unit","Metric Value"']
    for i, (name, ns, b) in enumerate(KERNELS):
        common = f'"{i}","42","bench_gpu","127.0.0.1","{name}","1","7","(256, 1, 1)","(16, 256, 1)","0","9.0",""'
        lines.append(common + f',"gpu__time_duration.sum","nsecond","{ns:,}"')
        lines.append(common + f',"dram__bytes.sum","byte","{b:,}"')
    r = run(tmp_path, "\n".join(lines) + "\n", "--peak-gb-s", "5000")
    assert r.returncode == 0, r.stderr
    check_table(r.stdout)


def test_no_whole_batch_is_an_error(tmp_path):
    lines = [HEAD + ',"gpu__time_duration.sum"', '"0","42","bench_gpu","h","void bsim::cuda::mix_noise(int)","1","7","","","0","9.0","5"']
    r = run(tmp_path, "\n".join(lines) + "\n")
    assert r.returncode == 2 and "no whole batch" in r.stderr


def test_a_missing_file_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "absent.csv")], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "cannot read" in r.stderr and "absent.csv" in r.stderr
