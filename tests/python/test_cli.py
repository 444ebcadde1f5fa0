"""The bsim command line on real inputs: bad input gives one line, a non-zero exit and no output file;
an interrupted run keeps only a .partial file and --resume finishes it bit-identically."""
import csv
import os
import signal
import subprocess
import time

import h5py
import numpy as np
import pytest
import scipy.io.wavfile

SMALL = ["--set", "clip_s=0.5", "--set", "room.length_m=[3,5]", "--set", "room.width_m=[3,5]"]
KEMAR = "/usr/share/libmysofa/MIT_KEMAR_normal_pinna.sofa"


def assert_one_line_error(p, *needles, code=2):
    assert p.returncode == code, (p.returncode, p.stderr)
    lines = [l for l in p.stderr.splitlines() if l.strip() and not l.startswith(("---", " "))]
    errors = [l for l in lines if l.startswith("bsim: error:")]
    assert len(errors) == 1, p.stderr
    for n in needles:
        assert n in errors[0], (n, errors[0])


def no_output(d):
    return [f for f in os.listdir(d) if f.endswith((".h5", ".partial"))] == []


def corpus_with(tmp_path, name, data):
    d = tmp_path / "corpus"
    d.mkdir(exist_ok=True)
    (d / name).write_bytes(data)
    return d


BAD_INPUTS = {
    "missing sofa": (["--set", "hrtf.sofa=/nonexistent/head.sofa"], ["/nonexistent/head.sofa", "does not exist"]),
    "unknown key": (["--set", "room.lenght_m=4"], ["unknown config key 'room.lenght_m'", "room.length_m"]),
    "ill-typed key": (["--set", "room.t60_s=long"], ["room.t60_s", "expected a number"]),
    "listener outside": (["--set", "listener.height_m=[4.5,5]"], ["listener.height_m", "outside"]),
    "source inside head": (["--set", "source.distance_m=[0.05,1]"], ["source.distance_m", "head radius"]),
    "source does not fit": (["--set", "source.distance_m=[30,40]"], ["source.distance_m"]),
    "bad teacher": (["--set", "features.teacher=mfcc"], ["features.teacher"]),
    "bad device": (["--device", "tpu"], ["--device", "cpu, cuda or cuda:N"]),
    "bad device index": (["--device", "cuda:one"], ["--device 'cuda:one'", "whole number"]),
    "head scale out of range": (["--set", "hrtf.head_scales=[1,3]"], ["hrtf.head_scales", "[0.5, 2]"]),
    "no head scale": (["--set", "hrtf.head_scales=[]"], ["hrtf.head_scales", "at least one"]),
    "tilt out of range": (["--set", "speech.tilt_db_per_octave=[-20,3]"], ["speech.tilt_db_per_octave", "[-12, 12]"]),
    "tilt reversed": (["--set", "speech.tilt_db_per_octave=[3,-3]"], ["speech.tilt_db_per_octave", "min is larger"]),
    "bad doa estimate": (["--set", "model.doa_estimate=argmax"], ["model.doa_estimate", "class, parabolic or local_mean"]),
    "bad doa pooling": (["--set", "model.doa_pooling=max"], ["model.doa_pooling", "mean or last"]),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_config_input(run, tmp_path, case):
    args, needles = BAD_INPUTS[case]
    p = run("generate", "--rooms", 4, "--out", tmp_path / "x.h5", *SMALL, *args, check=False)
    assert_one_line_error(p, *needles)
    assert no_output(tmp_path)


def test_corrupt_and_truncated_sofa(run, tmp_path):
    (tmp_path / "garbage.sofa").write_bytes(os.urandom(5000))
    (tmp_path / "cut.sofa").write_bytes(open(KEMAR, "rb").read()[:30000])
    for f in ["garbage.sofa", "cut.sofa"]:
        p = run("generate", "--rooms", 2, "--out", tmp_path / "x.h5", *SMALL,
                "--set", f"hrtf.sofa={tmp_path / f}", check=False)
        assert_one_line_error(p, f)
        assert no_output(tmp_path)


def test_unreadable_and_empty_audio(run, tmp_path):
    corpus = corpus_with(tmp_path, "broken.wav", b"RIFF....WAVEfmt garbage")
    p = run("generate", "--rooms", 2, "--out", tmp_path / "x.h5", *SMALL, "--set", f"speech.roots=[{corpus}]",
            "--set", "speech.include_dirs=[]", check=False)
    assert_one_line_error(p, "broken.wav", "cannot read audio file")
    assert no_output(tmp_path)
    os.remove(corpus / "broken.wav")
    scipy.io.wavfile.write(corpus / "empty.wav", 16000, np.zeros(0, dtype=np.int16))
    p = run("generate", "--rooms", 2, "--out", tmp_path / "x.h5", *SMALL, "--set", f"speech.roots=[{corpus}]",
            "--set", "speech.include_dirs=[]", check=False)
    assert_one_line_error(p, "empty.wav", "no samples")
    assert no_output(tmp_path)
    p = run("generate", "--rooms", 2, "--out", tmp_path / "x.h5", *SMALL, "--set", f"speech.roots=[{corpus}]",
            "--set", "speech.include_dirs=[]", "--set", "speech.skip_unreadable=false", check=False)
    assert_one_line_error(p, "empty.wav", "no samples")
    assert no_output(tmp_path)


def test_a_few_unusable_files_are_skipped_and_reported(run, tmp_path):
    corpus = corpus_with(tmp_path, "broken.wav", b"not audio")
    rng = np.random.default_rng(3)
    for k in range(3):
        scipy.io.wavfile.write(corpus / f"talker{k}.wav", 16000, (0.1 * rng.standard_normal(16000)).astype(np.float32))
    p = run("generate", "--rooms", 6, "--out", tmp_path / "x.h5", *SMALL, "--set", f"speech.roots=[{corpus}]",
            "--set", "speech.include_dirs=[]", "--quiet")
    assert "skipped 1 unusable speech file" in p.stderr and "broken.wav" in p.stderr
    assert (tmp_path / "x.h5").exists()


def test_config_file_errors(run, tmp_path):
    (tmp_path / "c.yaml").write_text("room:\n  t60_s: [0.3, 0.6]\n  colour: blue\n")
    p = run("generate", "--rooms", 2, "--out", tmp_path / "x.h5", "--config", tmp_path / "c.yaml", check=False)
    assert_one_line_error(p, "c.yaml", "room.colour")
    p = run("generate", "--rooms", 2, "--out", tmp_path / "x.h5", "--config", tmp_path / "none.yaml", check=False)
    assert_one_line_error(p, "none.yaml")
    assert no_output(tmp_path)


def test_unwritable_output_and_existing_output(run, tmp_path):
    p = run("generate", "--rooms", 2, "--out", "/nonexistent-dir/x.h5", *SMALL, check=False)
    assert_one_line_error(p, "/nonexistent-dir/x.h5.partial")
    (tmp_path / "x.h5").write_text("precious")
    p = run("generate", "--rooms", 2, "--out", tmp_path / "x.h5", *SMALL, check=False)
    assert_one_line_error(p, "already exists", "--force")
    assert (tmp_path / "x.h5").read_text() == "precious"


def test_info_rejects_non_shards(run, tmp_path):
    (tmp_path / "t.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + os.urandom(100))
    assert_one_line_error(run("info", tmp_path / "t.h5", check=False), "t.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    assert_one_line_error(run("info", tmp_path / "other.h5", check=False), "not a bsim shard")


def test_rir_geometry_errors(run, tmp_path):
    p = run("rir", "--room", "4,4,3", "--listener", "5,2,1", "--source", "1,1,1", "--out", tmp_path / "r.wav",
            check=False)
    assert_one_line_error(p, "listener position", "outside")
    p = run("rir", "--room", "4,4,3", "--listener", "2,2,1", "--source", "2.05,2,1", "--out", tmp_path / "r.wav",
            check=False)
    assert_one_line_error(p, "head radius")
    assert not (tmp_path / "r.wav").exists()


def read_all(path):
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in ["clean", "augmented", "teacher"]} | {
            "az": f["scene/azimuth_deg"][()], "complete": f.attrs["complete"]}


def test_interrupt_then_resume_is_identical(run, bsim, tmp_path):
    args = ["generate", "--rooms", 96, *SMALL, "--set", "shard.chunk_examples=8"]
    run(*args, "--out", tmp_path / "ref.h5", "--threads", 2, "--quiet")
    out = tmp_path / "x.h5"
    p = subprocess.Popen([bsim, *map(str, args), "--out", str(out), "--threads", "1"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.8)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    if p.returncode == 0:
        pytest.skip("generation finished before the interrupt on this machine")
    assert p.returncode == 130, err
    assert "--resume" in err
    assert not out.exists() and (tmp_path / "x.h5.partial").exists()
    with h5py.File(tmp_path / "x.h5.partial", "r") as f:
        assert f.attrs["complete"] == 0 and f.attrs["n_done"] < 96
    p = run(*args, "--out", out, "--resume", "--threads", 1, check=False)
    assert p.returncode == 0, p.stderr
    assert out.exists() and not (tmp_path / "x.h5.partial").exists()
    a, b = read_all(out), read_all(tmp_path / "ref.h5")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_resume_refuses_a_different_config(run, tmp_path):
    args = ["generate", "--rooms", 4, "--out", tmp_path / "x.h5", *SMALL]
    (tmp_path / "x.h5.partial").write_bytes(b"")
    p = run(*args, "--resume", check=False)
    assert_one_line_error(p, "x.h5.partial")


def test_render_writes_listenable_wavs(run, tmp_path):
    run("render", "--out-dir", tmp_path / "wav", "--count", 2, *SMALL)
    names = sorted(os.listdir(tmp_path / "wav"))
    assert "ex000000_clean.wav" in names and "ex000001_augmented.wav" in names
    fs, x = scipy.io.wavfile.read(tmp_path / "wav" / "ex000000_augmented.wav")
    assert fs == 16000 and x.shape == (8000, 2) and np.max(np.abs(x)) <= 0.99 + 1e-6
    run("render", "--out-dir", tmp_path / "scaled", "--count", 1, *SMALL, "--set", "hrtf.head_scales=[1.1]")
    assert "\nhead_scale 1.100\n" in (tmp_path / "scaled" / "ex000000_scene.txt").read_text()


def test_config_and_help(run):
    out = run("config", "--set", "room.t60_s=0.5").stdout
    assert "t60_s: [0.5, 0.5]" in out
    assert "room.t60_s" in run("help-config").stdout
    # --seed takes the whole unsigned 64-bit range (it used to saturate at 2^63 - 1 without a word)
    assert run("config", "--seed", "14920563941272094777").stdout.startswith("seed: 14920563941272094777\n")


def test_doa_report_from_predictions(tmp_path):
    import subprocess as sp
    import sys
    rng = np.random.default_rng(0)
    for name, spread in [("a", 2.0), ("b", 20.0), ("c", 0.5), ("e", 30.0)]:
        az = rng.uniform(-90, 90, 96)
        est = np.clip(az + rng.normal(0, spread, 96), -90, 90)
        with open(tmp_path / f"{name}.csv", "w") as f:
            f.write("azimuth_deg,predicted_deg,abs_error_deg,snr_db,t60_s,noise_type\n")
            for i in range(96):
                f.write(f"{az[i]},{est[i]},{abs(est[i] - az[i])},{[-5, 0, 10][i % 3]},{[0, 0.6][i % 2]},{(i // 6) % 3}\n")
    script = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "doa_report.py")
    args = [sys.executable, script, "--pred", f"a={tmp_path / 'a.csv'}", "--pred", f"b={tmp_path / 'b.csv'}",
            "--pred", f"c={tmp_path / 'c.csv'}", "--pretrained", "a", "--scratch", "b"]
    out = sp.run([*args, "--network", "c", "--out", tmp_path / "rep"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    summary = (tmp_path / "rep" / "summary.md").read_text()
    assert "| a | 96 |" in summary and "The paper's claim" in summary and "| c | 96 |" in summary
    # c is another network (more accurate than a): not a classic method that a must beat.
    assert "- Pretrained MAE against the classic methods: none among the predictions." in summary
    assert "(no paired confidence: the predictions are not of the same examples)." in summary  # each its own azimuths
    sp.run([*args, "--out", tmp_path / "rep-c-classic"], check=True, capture_output=True)
    assert "- Pretrained MAE below every classic method (c): " in (tmp_path / "rep-c-classic" / "summary.md").read_text()
    bad = sp.run([*args, "--network", "d", "--out", tmp_path / "bad"], capture_output=True, text=True)
    assert bad.returncode != 0 and "'d' names no --pred" in bad.stderr
    (tmp_path / "cols.csv").write_text("azimuth_deg,predicted_deg\n1,2\n")
    (tmp_path / "text.csv").write_text("azimuth_deg,predicted_deg,abs_error_deg,snr_db,t60_s,noise_type\n1,2,x,0,0,0\n")
    for f, why in [(tmp_path / "none.csv", "cannot read --pred file"), (tmp_path / "cols.csv", "lacks column(s) abs_error_deg"),
                   (tmp_path / "text.csv", "holds a value that is not a number")]:
        bad = sp.run([sys.executable, script, "--pred", f"x={f}", "--out", tmp_path / "bad"], capture_output=True, text=True)
        assert bad.returncode != 0 and bad.stderr.count("\n") == 1 and why in bad.stderr, bad.stderr
    # Classic groups: the claim is checked once per group. c (spread 0.5) beats a everywhere, e (spread 30) almost
    # nowhere: a is below every method of {c, e} in no cell, below e in the cells where its MAE is lower.
    grouped = sp.run([*args, "--pred", f"e={tmp_path / 'e.csv'}", "--classic-group", "own HRTFs=c,e",
                      "--classic-group", "generic=e", "--out", tmp_path / "rep-groups"], capture_output=True, text=True)
    assert grouped.returncode == 0, grouped.stderr
    claim = [l for l in (tmp_path / "rep-groups" / "summary.md").read_text().splitlines()
             if l.startswith("- Pretrained MAE below every classic method")]
    assert len(claim) == 2 and claim[0].startswith("- Pretrained MAE below every classic method own HRTFs (c, e): 0 of 18")
    cells = list(csv.DictReader(open(tmp_path / "rep-groups" / "cells.csv")))
    mae = {(r["method"], r["snr_db"], r["t60_s"], r["noise"]): float(r["mae"]) for r in cells}
    below_e = sum(v < mae[("e", *k[1:])] for k, v in mae.items() if k[0] == "a")
    assert below_e > 0  # so the two groups give different counts
    assert claim[1].startswith(f"- Pretrained MAE below every classic method generic (e): {below_e} of 18")
    for g, why in [("x=a", "'a' is not a classic"), ("x=z", "'z' is not a classic"), ("=c", "expected LABEL=NAME")]:
        bad = sp.run([*args, "--classic-group", g, "--out", tmp_path / "bad"], capture_output=True, text=True)
        assert bad.returncode != 0 and why in bad.stderr, (g, bad.stderr)
    assert "| method | diffuse | diffuse, >= 10 dB | point | point, >= 10 dB | babble | babble, >= 10 dB |" in summary
    by_noise = next(l for l in summary.splitlines() if l.startswith("| b | ") and "+-" in l and l.count("|") == 8)
    d = np.loadtxt(tmp_path / "b.csv", delimiter=",", skiprows=1)
    point_hi = d[(d[:, 5] == 1) & (d[:, 3] >= 10), 2]  # the point-noise examples at 10 dB
    assert f"{point_hi.mean():.1f} +-" in by_noise.split("|")[5]
    assert (tmp_path / "rep" / "mae_vs_snr.png").stat().st_size > 10000
    assert "read out as" not in summary  # no btrain eval folders among these predictions
    # btrain eval folders: the report says how each network was read out (its summary.md's title; an older
    # title without the keys means the old readout); bsim doa's predictions_<method>.csv have none.
    for net, title in [("new", " (model.doa_pooling: last, model.doa_estimate: parabolic)"), ("old", "")]:
        (tmp_path / net).mkdir()
        (tmp_path / net / "predictions.csv").write_bytes((tmp_path / "a.csv").read_bytes())
        (tmp_path / net / "summary.md").write_text(f"# DoA evaluation of runs/{net} at the last step{title}\n\n| x |\n")
    (tmp_path / "classic").mkdir()
    (tmp_path / "classic" / "predictions_music.csv").write_bytes((tmp_path / "b.csv").read_bytes())
    (tmp_path / "classic" / "summary.md").write_text("# DoA evaluation of runs/x at the last step (model.doa_pooling: last, "
                                                     "model.doa_estimate: class)\n")
    sp.run([sys.executable, script, "--pred", f"new={tmp_path / 'new' / 'predictions.csv'}", "--pred",
            f"old={tmp_path / 'old' / 'predictions.csv'}", "--pred", f"music={tmp_path / 'classic' / 'predictions_music.csv'}",
            "--network", "new", "--network", "old", "--out", tmp_path / "rep-readout"], check=True, capture_output=True)
    assert ("Networks read out as (model.doa_pooling, model.doa_estimate): new: last frame, parabolic; "
            "old: mean of all frames, class.\n") in (tmp_path / "rep-readout" / "summary.md").read_text()
    rows = (tmp_path / "rep" / "cells.csv").read_text().splitlines()
    assert rows[0] == "method,snr_db,t60_s,noise,n,mae,ci95,within10,accuracy" and len(rows) == 1 + 3 * 18


def test_doa_report_pairs_examples_for_the_claims_confidence(tmp_path):
    """Every method on the same 720 examples (40 per cell): the claim per cell is decided only where the paired
    95 % interval excludes 0, whatever order each file lists the examples in."""
    import subprocess as sp
    import sys
    rng = np.random.default_rng(5)
    n = 720
    cell = np.arange(n) % 18
    snr, t60, noise = np.array([-5, 0, 10])[cell % 3], np.array([0, 0.6])[cell // 3 % 2], cell // 6
    az = rng.uniform(-90, 90, n)
    for name, spread in [("pre", 2.0), ("scr", 20.0), ("sharp", 0.5), ("level", 2.0)]:
        err = np.abs(rng.normal(0, spread, n))
        order = rng.permutation(n) if name != "pre" else np.arange(n)  # each file in its own order
        with open(tmp_path / f"{name}.csv", "w") as f:
            f.write("azimuth_deg,predicted_deg,abs_error_deg,snr_db,t60_s,noise_type\n")
            for i in order:
                f.write(f"{az[i]:g},{az[i] + err[i]:g},{err[i]:g},{snr[i]},{t60[i]:g},{noise[i]}\n")
    script = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "doa_report.py")
    out = sp.run([sys.executable, script, *[a for m in ["pre", "scr", "sharp", "level"] for a in ("--pred", f"{m}={tmp_path / m}.csv")],
                  "--pretrained", "pre", "--scratch", "scr", "--classic-group", "sharp=sharp", "--classic-group", "level=level",
                  "--out", tmp_path / "rep"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    claim = [l for l in (tmp_path / "rep" / "summary.md").read_text().splitlines() if l.startswith("- Pretrained MAE")]
    # pre's errors are a tenth of scratch's: 0.8x holds, surely, in every hard cell (SNR <= 0 dB or T60 0.6: 15 of 18).
    assert claim[0].endswith("15 of 15 cells (holds); with 95 % paired confidence: holds in 15, fails in 0, undecided in 0.")
    # A classic method four times sharper: pre is surely not below it anywhere.
    assert claim[1].endswith("with 95 % paired confidence: holds in 0, fails in 18, undecided in 0.")
    # One as good as pre: mostly undecided.
    undecided = int(claim[2].split("undecided in ")[1].rstrip("."))
    assert undecided >= 12, claim[2]
    # With an example_index column the rows pair on it, even where the azimuths are printed to other precisions.
    for name, spread, fmt in [("pre", 2.0, ".7f"), ("scr", 20.0, ".4f")]:
        err = np.abs(rng.normal(0, spread, n))
        with open(tmp_path / f"{name}-idx.csv", "w") as f:
            f.write("azimuth_deg,predicted_deg,abs_error_deg,snr_db,t60_s,noise_type,example_index\n")
            for i in rng.permutation(n):
                f.write(f"{az[i]:{fmt}},{az[i] + err[i]:g},{err[i]:g},{snr[i]},{t60[i]:g},{noise[i]},{i}\n")
    idx_run = sp.run([sys.executable, script, "--pred", f"pre={tmp_path / 'pre-idx.csv'}", "--pred",
                      f"scr={tmp_path / 'scr-idx.csv'}", "--pretrained", "pre", "--scratch", "scr", "--out", tmp_path / "idx"],
                     capture_output=True, text=True)
    assert "holds in 15, fails in 0, undecided in 0." in idx_run.stdout, idx_run.stdout + idx_run.stderr
    # The same indices over other examples (truths differ) are not paired.
    shifted = (tmp_path / "scr-idx.csv").read_text().splitlines()
    (tmp_path / "scr-other.csv").write_text("\n".join([shifted[0]] + [
        ",".join([str(float(r.split(",")[0]) + 1.0), *r.split(",")[1:]]) for r in shifted[1:]]) + "\n")
    other = sp.run([sys.executable, script, "--pred", f"pre={tmp_path / 'pre-idx.csv'}", "--pred",
                    f"scr={tmp_path / 'scr-other.csv'}", "--pretrained", "pre", "--scratch", "scr", "--out", tmp_path / "other"],
                   capture_output=True, text=True)
    assert "(no paired confidence: the predictions are not of the same examples)" in other.stdout, other.stdout


def test_doa_report_by_speech_brightness(tmp_path):
    """--shard adds MAE by quartile of the clean pair's energy share above 3 kHz, matched on example_index: half the
    examples are white noise (bright), half the same noise low-passed at 1 kHz (dull); method 'treble' errs only on
    the dull ones, 'bass' only on the bright ones, and the table must say so whatever order the CSVs list them in."""
    import subprocess as sp
    import sys
    import h5py
    from scipy.signal import butter, sosfilt
    rng = np.random.default_rng(11)
    n, t, fs = 48, 4000, 16000.0
    x = rng.normal(0, 0.1, (n, 2, t))
    dull = np.arange(n) % 2 == 1
    x[dull] = sosfilt(butter(8, 1000.0, fs=fs, output="sos"), x[dull], axis=2)
    index = 1000 + np.arange(n)[::-1]  # global indices, not rows
    with h5py.File(tmp_path / "grid.h5", "w") as f:
        f.attrs["sample_rate_hz"] = fs
        f["clean"] = x.astype(np.float16)
        f["scene/example_index"] = index.astype(np.int64)
    az = rng.uniform(-90, 90, n)
    for name, bad in [("treble", dull), ("bass", ~dull)]:
        err = np.where(bad, 30.0, 1.0)
        with open(tmp_path / f"{name}.csv", "w") as f:
            f.write("azimuth_deg,predicted_deg,abs_error_deg,snr_db,t60_s,noise_type,example_index\n")
            for i in rng.permutation(n):
                f.write(f"{az[i]:g},{az[i] + err[i]:g},{err[i]:g},0,0,0,{index[i]}\n")
    script = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "doa_report.py")
    args = [sys.executable, script, "--pred", f"treble={tmp_path / 'treble.csv'}", "--pred", f"bass={tmp_path / 'bass.csv'}"]
    out = sp.run([*args, "--shard", tmp_path / "grid.h5", "--out", tmp_path / "rep"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    lines = (tmp_path / "rep" / "summary.md").read_text().splitlines()
    head = lines.index("## MAE (deg) by the speech's energy share above 3 kHz (clean pair; quartiles of the shard)")
    rows = {l.split("|")[1].strip(): [c.strip() for c in l.split("|")[2:6]] for l in lines[head + 4:head + 6]}
    # quartiles from dull to bright: the two dull ones first
    assert rows["treble"] == ["30.0 +-0.0", "30.0 +-0.0", "1.0 +-0.0", "1.0 +-0.0"], rows
    assert rows["bass"] == ["1.0 +-0.0", "1.0 +-0.0", "30.0 +-0.0", "30.0 +-0.0"], rows
    # bad input: one line each
    (tmp_path / "noidx.csv").write_text("azimuth_deg,predicted_deg,abs_error_deg,snr_db,t60_s,noise_type\n1,2,1,0,0,0\n")
    (tmp_path / "other.csv").write_text("azimuth_deg,predicted_deg,abs_error_deg,snr_db,t60_s,noise_type,example_index\n1,2,1,0,0,0,7\n")
    with h5py.File(tmp_path / "plain.h5", "w") as f:
        f["x"] = np.zeros(3)
    with h5py.File(tmp_path / "flat.h5", "w") as f:
        f.attrs["sample_rate_hz"] = fs
        f["clean"] = np.zeros((n, t), np.float16)
    for pred, shard, why in [("noidx.csv", "grid.h5", "has none"), ("other.csv", "grid.h5", "does not hold"),
                             ("treble.csv", "plain.h5", "is not a bsim shard"), ("treble.csv", "flat.h5", "is not a bsim shard"),
                             ("treble.csv", "none.h5", "cannot open --shard")]:
        bad = sp.run([sys.executable, script, "--pred", f"x={tmp_path / pred}", "--shard", tmp_path / shard,
                      "--out", tmp_path / "bad"], capture_output=True, text=True)
        assert bad.returncode != 0 and bad.stderr.count("\n") == 1 and why in bad.stderr, bad.stderr
        assert not (tmp_path / "bad").exists()  # nothing written


def test_configs_default_yaml_is_the_embedded_default(run):
    root = os.path.join(os.path.dirname(__file__), "..", "..")
    text = open(os.path.join(root, "configs", "default.yaml")).read()
    body = "".join(l for l in text.splitlines(keepends=True) if not l.startswith("#"))
    assert body == run("config").stdout, "regenerate configs/default.yaml with `bsim config`"
    for name in os.listdir(os.path.join(root, "configs")):  # every shipped config parses and validates
        if name.endswith(".yaml"):
            run("config", "--config", os.path.join(root, "configs", name))
