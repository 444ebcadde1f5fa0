"""Shards read with h5py match the documented schema (docs/shard-format.md), and the teacher features
stored in them agree with an independent numpy/scipy computation from the stored clean audio."""
import math
import os
import subprocess

import h5py
import numpy as np
import pytest
import scipy.io.wavfile
import scipy.signal
import yaml

SMALL = ["--set", "clip_s=1.0", "--set", "room.length_m=[3,6]", "--set", "room.width_m=[3,6]"]


def generate(run, path, *extra, rooms=6):
    run("generate", "--rooms", rooms, "--out", path, "--quiet", *SMALL, *extra)
    return h5py.File(path, "r")


def stft(x, n_fft=512, win=400, hop=160):
    """bsim's documented STFT: no centring, periodic Hann at the start of an n_fft frame."""
    w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    frames = 1 + (len(x) - win) // hop
    idx = np.arange(win)[None, :] + hop * np.arange(frames)[:, None]
    return np.fft.rfft(x[idx] * w, n=n_fft, axis=1)  # [frame, bin]


def test_documented_stft_is_scipys_stft():
    x = np.random.default_rng(0).standard_normal(16000)
    _, _, z = scipy.signal.stft(x, fs=16000, window="hann", nperseg=400, noverlap=240, nfft=512,
                                boundary=None, padded=False, detrend=False)
    w = scipy.signal.get_window("hann", 400)
    np.testing.assert_allclose(stft(x), z.T * w.sum(), rtol=1e-9, atol=1e-9)


@pytest.fixture(scope="module")
def gcc_shard(run, tmp_path_factory):
    path = tmp_path_factory.mktemp("shard") / "gcc.h5"
    with generate(run, path, "--set", "shard.audio_dtype=float32") as f:
        yield {k: f[k][()] for k in ["clean", "augmented", "teacher"]} | {
            "attrs": dict(f.attrs), "scene": {k: f["scene"][k][()] for k in f["scene"]},
            "speech_files": f["speech_files"][()], "hrtf_files": f["hrtf_files"][()]}


def test_schema(gcc_shard):
    s = gcc_shard
    a = s["attrs"]
    assert a["format"] == "bsim-shard"
    assert a["format_version"] == 1
    assert a["complete"] == 1 and a["n_done"] == 6 and a["n_examples"] == 6
    assert a["sample_rate_hz"] == 16000 and a["teacher"] == "gcc_phat"
    cfg = yaml.safe_load(a["config"])
    assert cfg["clip_s"] == 1.0 and cfg["room"]["length_m"] == [3.0, 6.0]
    assert s["clean"].shape == (6, 2, 16000) and s["clean"].dtype == np.float32
    assert s["augmented"].shape == (6, 2, 16000)
    frames = 1 + (16000 - 400) // 160
    assert s["teacher"].shape == (6, 33, frames) and s["teacher"].dtype == np.float32
    sc = s["scene"]
    for name, width in [("azimuth_deg", 1), ("elevation_deg", 1), ("room_size_m", 3), ("t60_s", 1),
                        ("listener_pos_m", 3), ("source_pos_m", 3), ("head_yaw_deg", 1), ("snr_db", 1),
                        ("noise_type", 1), ("hrtf_index", 1), ("speech_index", 1), ("noise_pos_m", 3)]:
        assert sc[name].shape == ((6,) if width == 1 else (6, width)), name
    assert len(s["speech_files"]) > 1000 and len(s["hrtf_files"]) == 1
    assert all(b"/en/" not in p for p in s["speech_files"]), "English is held out by default"
    assert np.all((sc["speech_index"] >= 0) & (sc["speech_index"] < len(s["speech_files"])))


def test_labels_agree_with_positions(gcc_shard):
    sc = gcc_shard["scene"]
    v = sc["source_pos_m"] - sc["listener_pos_m"]
    yaw = np.radians(sc["head_yaw_deg"])
    hx = np.cos(yaw) * v[:, 0] + np.sin(yaw) * v[:, 1]
    hy = -np.sin(yaw) * v[:, 0] + np.cos(yaw) * v[:, 1]
    np.testing.assert_allclose(np.degrees(np.arctan2(hy, hx)), sc["azimuth_deg"], atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), sc["distance_m"], atol=1e-9)
    assert np.all((sc["source_pos_m"] > 0) & (sc["source_pos_m"] < sc["room_size_m"]))


def test_gcc_phat_teacher_matches_numpy(gcc_shard):
    for i in range(gcc_shard["clean"].shape[0]):
        left, right = gcc_shard["clean"][i].astype(np.float64)
        XL, XR = stft(left), stft(right)
        eps = 1e-10 * np.mean(np.concatenate([np.abs(XL) ** 2, np.abs(XR) ** 2])) + 1e-30
        G = XL * np.conj(XR)
        G = G / np.maximum(np.abs(G), eps)
        r = np.fft.irfft(G, n=512, axis=1)
        lags = np.arange(-16, 17)
        ref = r[:, lags % 512].T  # [lag, frame]
        # PHAT gives every bin unit weight, so the float32 rounding of near-empty bins (above the
        # resampler's passband) shows as ~1e-3 noise on values whose peak is ~0.2-1: tolerance 5e-3 on
        # any value, 2e-4 on the mean, and the peak lag of every frame exactly.
        np.testing.assert_allclose(gcc_shard["teacher"][i], ref, atol=5e-3)
        assert np.mean(np.abs(gcc_shard["teacher"][i] - ref)) < 2e-4
        np.testing.assert_array_equal(np.argmax(gcc_shard["teacher"][i], axis=0), np.argmax(ref, axis=0))


def test_clean_pair_peak_lag_follows_azimuth(gcc_shard):
    """The teacher's mean GCC-PHAT peaks at a negative lag (left ear leads) for sources on the left."""
    az = gcc_shard["scene"]["azimuth_deg"]
    for i in range(len(az)):
        if abs(az[i]) < 20:
            continue
        peak_lag = np.argmax(gcc_shard["teacher"][i].mean(axis=1)) - 16
        assert math.copysign(1, -peak_lag) == math.copysign(1, az[i]), (az[i], peak_lag)


def test_ipd_ild_teacher_matches_numpy(run, tmp_path):
    with generate(run, tmp_path / "ipd.h5", "--set", "features.teacher=ipd_ild",
                  "--set", "shard.audio_dtype=float32", rooms=2) as f:
        clean, teacher = f["clean"][()], f["teacher"][()]
    bins = 257
    assert teacher.shape[1] == 3 * bins
    for i in range(2):
        XL, XR = stft(clean[i, 0].astype(np.float64)), stft(clean[i, 1].astype(np.float64))
        eps = 1e-10 * np.mean(np.concatenate([np.abs(XL) ** 2, np.abs(XR) ** 2])) + 1e-30
        G = XL * np.conj(XR)
        G = G / np.maximum(np.abs(G), eps)  # IPD: the PHAT-weighted cross-spectrum (0 where no energy)
        ild = 10 * np.log10((np.abs(XL) ** 2 + eps) / (np.abs(XR) ** 2 + eps)).T
        # Where the cross-spectrum carries energy, tightly; in every bin, looser: near eps (above the
        # resampler's passband) float32 rounding reaches 0.16 in the IPD and 0.16 dB in the ILD in < 0.1 % of
        # the values (measured), as for GCC-PHAT; the mean over all values is what a training target sees.
        strong = (np.abs(XL * np.conj(XR)) > 1e-5 * np.abs(XL * np.conj(XR)).max()).T
        for got, want, near, anywhere, mean in ((teacher[i, :bins], G.real.T, 2e-3, 0.25, 5e-4),
                                                (teacher[i, bins:2 * bins], G.imag.T, 2e-3, 0.25, 5e-4),
                                                (teacher[i, 2 * bins:], ild, 1e-2, 0.5, 5e-3)):  # ILD in dB
            np.testing.assert_allclose(got[strong], want[strong], atol=near)
            np.testing.assert_allclose(got, want, atol=anywhere)
            assert np.mean(np.abs(got - want)) < mean


def test_default_audio_is_float16(run, tmp_path):
    with generate(run, tmp_path / "f16.h5", rooms=2) as f:
        assert f["clean"].dtype == np.float16 and f["augmented"].dtype == np.float16
        x = f["augmented"][()].astype(np.float32)
        rms = np.sqrt(np.mean(x ** 2, axis=(1, 2)))
        np.testing.assert_allclose(rms, 0.05, rtol=0.02)  # mixture at -26 dBFS unless a peak forced less


def test_one_hrtf_subject_is_drawn_per_example(run, tmp_path, shared_hrtf_dir):
    if shared_hrtf_dir is None:
        pytest.skip("no ../shared/hrtf beside the checkout")
    sofas = ["/usr/share/libmysofa/MIT_KEMAR_normal_pinna.sofa", str(shared_hrtf_dir / "hrtf_c_nh898.sofa"),
             str(shared_hrtf_dir / "CIPIC_subject_003_hrir_final.sofa")]
    with generate(run, tmp_path / "multi.h5", "--set", f"hrtf.sofa=[{','.join(sofas)}]", rooms=24) as f:
        idx = f["scene/hrtf_index"][()]
        assert [p.decode() for p in f["hrtf_files"][()]] == sofas
    assert set(idx.tolist()) == {0, 1, 2}


def test_head_size_scaling_is_drawn_recorded_and_scales_the_interaural_delay(run, tmp_path):
    with generate(run, tmp_path / "scaled.h5", "--set", "hrtf.head_scales=[0.85,1.2]", rooms=16) as f:
        assert set(f["scene/head_scale"][()].tolist()) == {0.85, 1.2}
    with generate(run, tmp_path / "measured.h5", rooms=2) as f:
        assert np.all(f["scene/head_scale"][()] == 1.0)
    # A single factor draws nothing: the same scenes with a smaller and a larger head. The clean pair's
    # interaural delay (GCC-PHAT peak, 16x interpolated) must grow by the ratio of the factors, 1.2 / 0.85.
    lags = {}
    for s in (0.85, 1.2):
        with generate(run, tmp_path / f"s{s}.h5", "--set", f"hrtf.head_scales=[{s}]", rooms=8) as f:
            az = f["scene/azimuth_deg"][()]
            x = f["clean"][()].astype(np.float64)
        cross = np.fft.rfft(x[:, 0], 2 * x.shape[2]) * np.conj(np.fft.rfft(x[:, 1], 2 * x.shape[2]))
        r = np.fft.irfft(cross / (np.abs(cross) + 1e-12), 16 * 2 * x.shape[2])  # interpolated by zero padding
        r = np.concatenate([r[:, -16 * 40:], r[:, :16 * 40 + 1]], axis=1)  # lags -40..40 samples
        lags[s] = (np.argmax(r, axis=1) - 16 * 40) / 16.0
    lateral = np.abs(az) > 40
    assert lateral.sum() >= 2, az
    ratio = lags[1.2][lateral] / lags[0.85][lateral]
    np.testing.assert_allclose(ratio, 1.2 / 0.85, rtol=0.08)


def test_speech_tilt_is_drawn_recorded_and_tilts_the_clean_pair(run, tmp_path):
    with generate(run, tmp_path / "drawn.h5", "--set", "speech.tilt_db_per_octave=[-5,5]", rooms=16) as f:
        tilt = f["scene/speech_tilt_db_per_octave"][()]
    assert np.all(np.abs(tilt) <= 5) and tilt.min() < -1 and tilt.max() > 1 and len(set(tilt.tolist())) == 16
    # A single value draws nothing: the same scenes untilted and tilted by 4 dB per octave. Measured with numpy
    # on the stored clean pair, the tilted spectrum over the plain one rises 4 dB per octave (250 Hz .. 6 kHz).
    f32 = ["--set", "shard.audio_dtype=float32"]
    with generate(run, tmp_path / "plain.h5", *f32, rooms=4) as f:
        plain = f["clean"][()].astype(np.float64)
        assert np.all(f["scene/speech_tilt_db_per_octave"][()] == 0)
    with generate(run, tmp_path / "tilted.h5", *f32, "--set", "speech.tilt_db_per_octave=4", rooms=4) as f:
        tilted = f["clean"][()].astype(np.float64)
        assert np.all(f["scene/speech_tilt_db_per_octave"][()] == 4)
    freq = np.fft.rfftfreq(plain.shape[2], 1 / 16000)
    for a, b in zip(plain.reshape(-1, plain.shape[2]), tilted.reshape(-1, plain.shape[2])):
        A, B = np.abs(np.fft.rfft(a)), np.abs(np.fft.rfft(b))
        keep = (freq >= 250) & (freq <= 6000) & (A > 1e-2 * A.max())
        slope = np.polyfit(np.log2(freq[keep] / 1000), 20 * np.log10(B[keep] / A[keep]), 1)[0]
        assert abs(slope - 4) < 0.05, slope


def test_recorded_point_noise_is_used(run, tmp_path):
    noise_dir = tmp_path / "noise"
    noise_dir.mkdir()
    rng = np.random.default_rng(1)
    scipy.io.wavfile.write(noise_dir / "fan.wav", 44100, (0.1 * rng.standard_normal(44100)).astype(np.float32))
    scipy.io.wavfile.write(noise_dir / "hum.flac.wav", 8000, (0.1 * rng.standard_normal(4000)).astype(np.float32))
    with generate(run, tmp_path / "noise.h5", "--set", f"noise.roots=[{noise_dir}]",
                  "--set", "noise.type_weights={point: 1}", rooms=4) as f:
        assert np.all(f["scene/noise_type"][()] == 1)
        assert np.all(f["scene/noise_index"][()] >= 0)
        assert len(f["noise_files"][()]) == 2
        assert np.all(np.isfinite(f["scene/noise_pos_m"][()]))


def test_test_grid_assigns_every_cell(run, tmp_path):
    grid = ["--set", "test_grid.enabled=true", "--set", "test_grid.snr_db=[-5,10]", "--set", "test_grid.t60_s=[0,0.6]",
            "--set", "test_grid.noise_types=[diffuse,babble]"]
    with generate(run, tmp_path / "grid.h5", *grid, rooms=16) as f:
        sc = {k: f["scene"][k][()] for k in ["snr_db", "t60_s", "anechoic", "noise_type"]}
    cells = {(s, a, n) for s, a, n in zip(sc["snr_db"], sc["anechoic"], sc["noise_type"])}
    assert cells == {(s, a, n) for s in (-5.0, 10.0) for a in (0, 1) for n in (0, 2)}
    assert np.all(sc["t60_s"][sc["anechoic"] == 1] == 0) and np.all(sc["t60_s"][sc["anechoic"] == 0] == 0.6)
    for i in range(16):  # example i -> cell i mod 8, SNR fastest
        assert sc["snr_db"][i] == (-5.0, 10.0)[i % 2]


def test_classic_doa_on_a_shard(run, tmp_path):
    shard = tmp_path / "doa.h5"
    generate(run, shard, "--set", "room.anechoic_prob=1", "--set", "noise.snr_db=30",
             "--set", "noise.type_weights={diffuse: 1}", rooms=8).close()
    p = run("doa", "--shards", shard, "--report", tmp_path / "rep")
    for m in ["gcc_phat", "srp_phat", "music", "gcc_phat_frames", "srp_phat_frames"]:  # all five by default
        rows = (tmp_path / "rep" / f"predictions_{m}.csv").read_text().splitlines()
        assert rows[0] == "azimuth_deg,predicted_deg,abs_error_deg,snr_db,t60_s,noise_type,example_index" and len(rows) == 9
        assert [int(r.split(",")[6]) for r in rows[1:]] == list(range(8))
        err = np.array([float(r.split(",")[2]) for r in rows[1:]])
        assert np.median(err) < 5, (m, err)  # anechoic, 30 dB diffuse noise: near-perfect
        assert f"{m}" in p.stdout
    # example_index is the shard's own (scene/example_index), not the row: here a part starting at example 100.
    generate(run, tmp_path / "part.h5", "--first-index", 100, "--set", "room.anechoic_prob=1", rooms=2).close()
    run("doa", "--shards", tmp_path / "part.h5", "--methods", "music", "--report", tmp_path / "part")
    rows = (tmp_path / "part" / "predictions_music.csv").read_text().splitlines()
    assert [int(r.split(",")[6]) for r in rows[1:]] == [100, 101]
    # A missing steering set names the flag it came from, and leaves no report behind.
    bad = run("doa", "--shards", shard, "--sofa", tmp_path / "none.sofa", "--report", tmp_path / "bad", check=False)
    assert bad.returncode == 2 and "none.sofa' does not exist: check --sofa" in bad.stderr, bad.stderr
    assert not (tmp_path / "bad").exists()


def test_ranks_write_disjoint_parts_of_one_dataset(run, bsim, tmp_path):
    with generate(run, tmp_path / "all.h5", rooms=8) as f:
        whole = f["augmented"][()]
        assert list(f["scene/example_index"][()]) == list(range(8))
    with generate(run, tmp_path / "part.h5", "--first-index", 4, rooms=4) as f:
        np.testing.assert_array_equal(f["augmented"][()], whole[4:])
        assert f.attrs["first_index"] == "4"
    env = dict(os.environ, RANK="1")
    p = subprocess.run([bsim, "generate", "--rooms", "4", "--out", str(tmp_path / "rank1.h5"), *SMALL], env=env,
                       capture_output=True, text=True)
    assert p.returncode == 0 and "RANK=1: examples 4..7" in p.stderr, p.stderr
    with h5py.File(tmp_path / "rank1.h5") as f:
        np.testing.assert_array_equal(f["augmented"][()], whole[4:])
    # A launcher runs one command line on every rank: {rank} in --out gives each its own file; without it, a
    # launch of several ranks stops before any of them writes (they would all write one file).
    env = dict(os.environ, RANK="1", WORLD_SIZE="2")
    p = subprocess.run([bsim, "generate", "--rooms", "4", "--out", str(tmp_path / "shared.h5"), *SMALL], env=env,
                       capture_output=True, text=True)
    assert p.returncode == 2 and "RANK=1 of 2: every rank would write" in p.stderr and "{rank}" in p.stderr, p.stderr
    assert not (tmp_path / "shared.h5").exists()
    p = subprocess.run([bsim, "generate", "--rooms", "4", "--out", str(tmp_path / "part_{rank}.h5"), *SMALL], env=env,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    with h5py.File(tmp_path / "part_1.h5") as f:
        np.testing.assert_array_equal(f["augmented"][()], whole[4:])
    env = dict(os.environ, SLURM_PROCID="two")
    p = subprocess.run([bsim, "generate", "--rooms", "4", "--out", str(tmp_path / "x.h5"), *SMALL], env=env,
                       capture_output=True, text=True)
    assert p.returncode == 2 and "SLURM_PROCID='two' is not a rank number" in p.stderr, p.stderr
