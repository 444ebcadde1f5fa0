"""scripts/recipe_doa.sh end to end with stand-in binaries: the real recipe takes 12 minutes (small) to hours, so
its control flow (which runs it starts with which arguments, the choice of the pretrained variant on validation,
resuming, the two steerings of the classic methods, the report) is checked here with bsim/btrain stand-ins that
log their arguments and write outputs of the real formats, and the real doa_report.py."""
import csv
import os
import pathlib
import stat
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]

# Validation MAE per encoder learning-rate scale (None: from scratch); x0.1 is the best, so the recipe must choose it.
STUB_BTRAIN = r'''
import os, pathlib, sys
args = sys.argv[1:]
open(os.environ["STUB_LOG"], "a").write("btrain " + " ".join(args) + "\n")
opt = lambda k: args[args.index(k) + 1] if k in args else None
sets = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
if args[0] == "pretrain":
    out = pathlib.Path(opt("--out")); out.mkdir(parents=True, exist_ok=True); (out / "encoder.pt").write_bytes(b"pt")
elif args[0] == "finetune":
    out = pathlib.Path(opt("--out")); (out / "best").mkdir(parents=True, exist_ok=True)
    scale = next((s.split("=")[1] for s in sets if s.startswith("train.encoder_lr_scale=")), None)
    mae = {"1": 13.0, "0.1": 11.5, "0": 12.25, None: 20.0}[scale]
    (out / "best" / "state.yaml").write_text(f"step: 300\nval_mae_deg: {mae}\n")
elif args[0] == "eval":
    model, report = pathlib.Path(opt("--model")), pathlib.Path(opt("--report"))
    report.mkdir(parents=True, exist_ok=True)
    spread = {"doa-pretrained": 8, "doa-pretrained_enclr0.1": 6, "doa-pretrained_frozen": 7, "doa-scratch": 12}[model.name]
    spread -= {"test_grid.h5": 0, "shift-head.h5": 1, "shift-speech.h5": 2}[pathlib.Path(opt("--shards")).name]
    rows = ["azimuth_deg,predicted_deg,abs_error_deg,snr_db,t60_s,noise_type,example_index"]
    for i in range(144):
        c = i % 72
        rows.append(f"0,{spread + c % 5},{spread + c % 5},{[-5, 0, 5, 10, 15, 20][c % 6]},{[0, 0.3, 0.6, 0.9][c // 6 % 4]},{c // 24},{i}")
    (report / "predictions.csv").write_text("\n".join(rows) + "\n")
'''

STUB_BSIM = r'''
import os, pathlib, sys
args = sys.argv[1:]
open(os.environ["STUB_LOG"], "a").write("bsim " + " ".join(args) + "\n")
opt = lambda k: args[args.index(k) + 1] if k in args else None
if args[0] in ("generate", "info"):
    import h5py, numpy as np
if args[0] == "generate":  # a shard with what doa_report --shard reads: clean audio, its rate, example indices
    n = int(opt("--rooms"))
    with h5py.File(opt("--out"), "w") as f:
        f.attrs["sample_rate_hz"] = 16000.0
        f["clean"] = np.random.default_rng(n).normal(size=(n, 2, 64)).astype(np.float16)
        f["scene/example_index"] = np.arange(n, dtype=np.int64)
elif args[0] == "info":  # the line of the real `bsim info` that the recipe reads
    n = len(h5py.File(args[1], "r")["clean"])
    print(f"  examples      {n} of {n} written")
elif args[0] == "doa":
    if os.environ.get("STUB_DOA_FAIL") and "--sofa" in args:
        sys.stderr.write("[####....] 10/576 examples\nbsim: error: steering failed for a test\n")
        sys.exit(2)
    report = pathlib.Path(opt("--report")); report.mkdir(parents=True, exist_ok=True)
    base = 9 if opt("--sofa") else 4  # the generic head steers worse than the test head's own HRTFs
    for k, m in enumerate(["gcc_phat", "srp_phat", "music", "gcc_phat_frames", "srp_phat_frames"]):
        rows = ["azimuth_deg,predicted_deg,abs_error_deg,snr_db,t60_s,noise_type,example_index"]
        for i in range(144):
            c = i % 72
            e = base + k + (c % 3)
            rows.append(f"0,{e},{e},{[-5, 0, 5, 10, 15, 20][c % 6]},{[0, 0.3, 0.6, 0.9][c // 6 % 4]},{c // 24},{i}")
        (report / f"predictions_{m}.csv").write_text("\n".join(rows) + "\n")
'''


def _stub(path, body):
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def _recipe(tmp_path, out, expect_rc=0, **env):
    log = tmp_path / "calls.log"
    env = {**os.environ, "BSIM": _stub(tmp_path / "bsim", STUB_BSIM), "BTRAIN": _stub(tmp_path / "btrain", STUB_BTRAIN),
           "PY": sys.executable, "HEADS": "kemar", "STUB_LOG": str(log), **env}
    p = subprocess.run(["bash", str(ROOT / "scripts" / "recipe_doa.sh"), "small", str(out)], env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == expect_rc, p.stdout + p.stderr
    calls = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return (p.stdout, calls) if expect_rc == 0 else (p.stderr, calls)


def test_recipe_runs_every_stage_and_chooses_on_validation(tmp_path):
    out = tmp_path / "recipe"
    (tmp_path / "generic.sofa").write_bytes(b"")  # the stand-in bsim does not read it; the recipe checks it exists
    stdout, calls = _recipe(tmp_path, out, GENERIC_SOFA=str(tmp_path / "generic.sofa"))
    assert calls[0].startswith("bsim config --set speech.include_dirs=[nl, cs]")  # settings checked first
    assert calls[1].startswith("bsim generate --rooms 576 ") and "configs/test_grid.yaml" in calls[1]
    pre = [c for c in calls if c.startswith("btrain pretrain")]
    assert len(pre) == 1 and "--set train.steps=1200" in pre[0]
    fin = [c for c in calls if c.startswith("btrain finetune")]
    assert len(fin) == 4
    for c, scale in zip(fin[:3], ["1", "0.1", "0"]):  # the pretrained variants: from the pretrained encoder
        assert f"--init {out}/pre " in c and f"train.encoder_lr_scale={scale} " in c
    assert "--init" not in fin[3] and "encoder_lr_scale" not in fin[3] and f"--out {out}/doa-scratch " in fin[3]
    for c in fin:  # same budget for every fine-tuning run: steps, labels, validation, seed
        for a in ["train.steps=500", "train.labelled_examples=512", "train.val_examples=256", "--seed 4321"]:
            assert a in c, (a, c)
    evals = [c for c in calls if c.startswith("btrain eval")]
    assert len(evals) == 12 and all(f"--shards {out}/test_grid.h5" in c for c in evals[:4])
    doa = [c for c in calls if c.startswith("bsim doa")]
    assert len(doa) == 4 and "--sofa" not in doa[0] and f"--sofa {tmp_path / 'generic.sofa'}" in doa[1]
    # The distribution-shift grids: the same seed and grid with a training head, then also the training speech;
    # every network and the classic methods (steered with the grid's own head) scored on each.
    gen = [c for c in calls if c.startswith("bsim generate")]
    assert len(gen) == 3 and all("--rooms 576 " in c and "configs/test_grid.yaml" in c for c in gen)
    kemar = "--set hrtf.sofa=[/usr/share/libmysofa/MIT_KEMAR_normal_pinna.sofa]"
    assert kemar not in gen[0] and kemar in gen[1] and "speech.include_dirs" not in gen[1]
    assert kemar in gen[2] and "--set speech.include_dirs=[nl, cs]" in gen[2]
    for g, first in [("head", 4), ("speech", 8)]:
        assert all(f"--shards {out}/shift-{g}.h5" in c for c in evals[first:first + 4])
        assert f"--shards {out}/shift-{g}.h5" in " ".join(doa[2:]) and "--sofa" not in " ".join(doa[2:])
    assert "chosen on validation: pretrained_enclr0.1" in stdout

    summary = (out / "report" / "summary.md").read_text()
    assert "Pretrained = `pretrained_enclr0.1`, from scratch = `scratch`." in summary
    assert "below every classic method steered with the test head's own HRTFs (gcc_phat, srp_phat, music, " in summary
    assert "below every classic method steered with a generic head (generic.sofa) (gcc_phat_generic, " in summary
    assert "| pretrained_enclr0.1 | 0.1 | 300 | 11.50 |" in summary  # the selection table
    # the test grid is given to the report: MAE by the speech's brightness, every method
    bright = summary.split("## MAE (deg) by the speech's energy share above 3 kHz")[1].split("\n## ")[0]
    assert bright.count("\n| ") == 1 + 14 and "| music_generic | " in bright
    shift = (out / "shift.md").read_text().splitlines()
    assert len(shift) == 5 and "## What the distribution shift costs" in summary
    assert [l.split(" |")[0] for l in shift[2:]] == ["| unseen head and speech (the test grid)",
                                                      "| training head, unseen speech", "| training head and speech"]
    for row, folder in zip(shift[2:], [out, out / "shift-head", out / "shift-speech"]):  # each row from its own grid
        errors = [float(r["abs_error_deg"]) for r in csv.DictReader(open(folder / "eval-pretrained_frozen" / "predictions.csv"))]
        assert row.split("|")[4].strip() == f"{sum(errors) / len(errors):.2f}"  # the frozen variant's MAE
    assert shift[2].split("|")[4] != shift[3].split("|")[4] != shift[4].split("|")[4]
    methods = {r["method"] for r in csv.DictReader(open(out / "report" / "cells.csv"))}
    assert methods == {"pretrained", "pretrained_enclr0.1", "pretrained_frozen", "scratch",
                       *(m + s for m in ["gcc_phat", "srp_phat", "music", "gcc_phat_frames", "srp_phat_frames"]
                         for s in ["", "_generic"])}


def test_recipe_resumes_without_retraining(tmp_path):
    out = tmp_path / "recipe"
    _recipe(tmp_path, out)
    _, calls = _recipe(tmp_path, out)
    # Finished stages are kept: no new test grid, pretraining or fine-tuning; evaluation and the report run again.
    assert sum(c.startswith("bsim info") for c in calls) == 3  # each kept grid's size checked
    assert not any(c.startswith(("bsim generate", "btrain pretrain", "btrain finetune")) for c in calls), calls
    assert sum(c.startswith("btrain eval") for c in calls) == 12
    # The default generic head is the embedded KEMAR set.
    assert any(c.startswith("bsim doa") and "--sofa /usr/share/libmysofa/MIT_KEMAR_normal_pinna.sofa" in c for c in calls)


def test_recipe_resumes_an_interrupted_stage_from_its_checkpoint(tmp_path):
    out = tmp_path / "recipe"
    _, first = _recipe(tmp_path, out, SHIFT="0")
    train = [c for c in first if c.startswith(("btrain pretrain", "btrain finetune"))]
    assert len(train) == 5 and not any("--resume" in c or "  " in c for c in train), train  # no empty argument
    # Pretraining and one fine-tuning run stopped before they finished: their checkpoints are there, no .done.
    (out / "pre" / ".done").unlink()
    (out / "pre" / "checkpoint").mkdir()
    (out / "doa-pretrained_enclr0.1" / ".done").unlink()
    (out / "doa-pretrained_enclr0.1" / "checkpoint").mkdir()
    _, calls = _recipe(tmp_path, out, SHIFT="0")
    again = [c for c in calls if c.startswith(("btrain pretrain", "btrain finetune"))]
    assert len(again) == 2 and all(c.endswith(" --resume") for c in again), again
    assert f"--out {out}/doa-pretrained_enclr0.1 " in again[1]


def test_recipe_shift_can_be_skipped(tmp_path):
    out = tmp_path / "recipe"
    _, calls = _recipe(tmp_path, out, SHIFT="0")
    assert sum(c.startswith("bsim generate") for c in calls) == 1 and sum(c.startswith("btrain eval") for c in calls) == 4
    assert not (out / "shift.md").exists()


def test_recipe_head_scales_reach_training_not_the_test_grid(tmp_path):
    _, calls = _recipe(tmp_path, tmp_path / "recipe", HEAD_SCALES="[0.9, 1.1]", SHIFT="0")
    train = [c for c in calls if c.startswith(("btrain pretrain", "btrain finetune"))]
    assert len(train) == 5 and all("--set hrtf.head_scales=[0.9, 1.1]" in c for c in train), train
    assert not any("hrtf.head_scales" in c for c in calls if c.startswith(("bsim generate", "bsim doa", "btrain eval")))


def test_recipe_training_speech_reaches_training_and_the_shift_grid_not_the_test_grid(tmp_path):
    _, calls = _recipe(tmp_path, tmp_path / "recipe", TRAIN_SPEECH="[cs]")
    train = [c for c in calls if c.startswith(("btrain pretrain", "btrain finetune"))]
    assert len(train) == 5 and all("--set speech.include_dirs=[cs]" in c for c in train), train
    gen = [c for c in calls if c.startswith("bsim generate")]
    assert "speech.include_dirs" not in gen[0] + gen[1] and "--set speech.include_dirs=[cs]" in gen[2], gen
    assert calls[0] == "bsim config --set speech.include_dirs=[cs]"  # SHIFT_SPEECH follows it; checked first
    bsim = os.environ.get("BSIM", str(ROOT / "build" / "apps" / "bsim"))
    err, calls = _recipe(tmp_path, tmp_path / "bad", expect_rc=2, BSIM=bsim, SHIFT="0", TRAIN_SPEECH="{cs: 1}")
    assert "config key 'speech.include_dirs'" in err and "TRAIN_SPEECH is not a valid value" in err, err
    assert calls == [] and not (tmp_path / "bad").exists()


def test_recipe_speech_tilt_reaches_training_not_the_grids(tmp_path):
    _, calls = _recipe(tmp_path, tmp_path / "recipe", SPEECH_TILT="[-4, 4]")
    train = [c for c in calls if c.startswith(("btrain pretrain", "btrain finetune"))]
    assert len(train) == 5 and all("--set speech.tilt_db_per_octave=[-4, 4]" in c for c in train), train
    assert not any("tilt_db" in c for c in calls if c.startswith(("bsim generate", "bsim doa", "btrain eval")))
    assert "bsim config --set speech.tilt_db_per_octave=[-4, 4]" in calls  # checked before any work
    assert (tmp_path / "recipe" / "recipe-settings.txt").read_text().strip().endswith("speech_tilt=[-4, 4]")
    bsim = os.environ.get("BSIM", str(ROOT / "build" / "apps" / "bsim"))
    err, calls = _recipe(tmp_path, tmp_path / "bad", expect_rc=2, BSIM=bsim, SHIFT="0", SPEECH_TILT="[-30, 4]")
    assert "config key 'speech.tilt_db_per_octave'" in err and "SPEECH_TILT is not a valid value" in err, err
    assert calls == [] and not (tmp_path / "bad").exists()


def test_recipe_refuses_to_rerun_a_folder_on_other_training_data(tmp_path):
    out = tmp_path / "recipe"
    _recipe(tmp_path, out, SHIFT="0")
    for env, now in [({"TRAIN_SPEECH": "[cs]"}, "train_speech=[cs]"), ({"HEAD_SCALES": "[0.9, 1]"}, "head_scales=[0.9, 1]"),
                     ({"HEADS": "multi"}, "heads=multi"), ({"SPEECH_TILT": "[-4, 4]"}, "speech_tilt=[-4, 4]")]:
        err, calls = _recipe(tmp_path, out, expect_rc=2, SHIFT="0", **env)
        assert f"recipe_doa.sh: {out} holds a run with size=small heads=kemar head_scales= train_speech=, not " in err, err
        assert now in err and not any(c.startswith(("btrain", "bsim generate", "bsim doa")) for c in calls), calls
    _recipe(tmp_path, out, SHIFT="0")  # the same settings: resumes


def test_recipe_refuses_a_missing_sofa_before_any_work(tmp_path):
    for var in ["GENERIC_SOFA", "SHIFT_SOFA"]:
        err, calls = _recipe(tmp_path, tmp_path / var, expect_rc=2, **{var: "/no/such/head.sofa"})
        assert err.strip() == f"recipe_doa.sh: {var} file '/no/such/head.sofa' does not exist: set {var} to a SOFA file"
        assert calls == [] and not (tmp_path / var).exists()
    _recipe(tmp_path, tmp_path / "no-shift", SHIFT="0", SHIFT_SOFA="/no/such/head.sofa")  # not used: not checked


def test_recipe_shows_why_bsim_doa_failed(tmp_path):
    err, _ = _recipe(tmp_path, tmp_path / "recipe", expect_rc=3, STUB_DOA_FAIL="1")
    assert "recipe_doa.sh: bsim doa failed" in err and "bsim: error: steering failed for a test" in err


def test_recipe_test_examples_per_cell_can_be_set(tmp_path):
    _, calls = _recipe(tmp_path, tmp_path / "recipe", TEST_PER_CELL="200", SHIFT="0")
    assert next(c for c in calls if c.startswith("bsim generate")).startswith("bsim generate --rooms 14400 ")
    err, calls = _recipe(tmp_path, tmp_path / "bad", expect_rc=2, TEST_PER_CELL="many")
    assert "TEST_PER_CELL must be a positive whole number" in err and calls == []


def test_recipe_training_steps_can_be_set(tmp_path):
    out = tmp_path / "recipe"
    _, calls = _recipe(tmp_path, out, PRE_STEPS="3000", FIN_STEPS="40", SHIFT="0")
    pre = [c for c in calls if c.startswith("btrain pretrain")]
    fin = [c for c in calls if c.startswith("btrain finetune")]
    assert len(pre) == 1 and "--set train.steps=3000 " in pre[0]
    assert len(fin) == 4 and all("--set train.steps=40 " in c for c in fin)
    assert (out / "recipe-settings.txt").read_text().split()[-2:] == ["pre_steps=3000", "fin_steps=40"]
    # A kept folder holds networks of its own steps: another budget into it is refused before any work.
    err, calls = _recipe(tmp_path, out, expect_rc=2, PRE_STEPS="6000", FIN_STEPS="40", SHIFT="0")
    assert "pre_steps=3000 fin_steps=40, not" in err and "pre_steps=6000" in err
    assert not any(c.startswith(("btrain", "bsim generate", "bsim doa")) for c in calls)
    for var, value in [("PRE_STEPS", "1e4"), ("FIN_STEPS", "0")]:
        err, calls = _recipe(tmp_path, tmp_path / var, expect_rc=2, **{var: value})
        assert err.strip() == f"recipe_doa.sh: {var} must be a positive whole number, not '{value}'" and calls == []


def test_recipe_refuses_a_kept_grid_of_another_size(tmp_path):
    out = tmp_path / "recipe"
    _recipe(tmp_path, out, SHIFT="0")
    err, calls = _recipe(tmp_path, out, expect_rc=2, SHIFT="0", TEST_PER_CELL="9")
    assert f"recipe_doa.sh: {out}/test_grid.h5 holds 576 examples, not 72 x 9: remove it or set TEST_PER_CELL" in err
    assert not any(c.startswith(("btrain", "bsim generate", "bsim doa")) for c in calls)


def test_recipe_checks_config_values_from_the_environment_with_bsim(tmp_path):
    bsim = os.environ.get("BSIM", str(ROOT / "build" / "apps" / "bsim"))
    for var, value, key in [("HEAD_SCALES", "[3]", "hrtf.head_scales"), ("SHIFT_SPEECH", "{nl: 1}", "speech.include_dirs")]:
        err, calls = _recipe(tmp_path, tmp_path / var, expect_rc=2, BSIM=bsim, **{var: value})
        assert f"config key '{key}'" in err and "HEAD_SCALES or SHIFT_SPEECH is not a valid value" in err, err
        assert calls == [] and not (tmp_path / var).exists()  # the real bsim logs nothing; no training started
    err, _ = _recipe(tmp_path, tmp_path / "shift", expect_rc=2, SHIFT="yes")
    assert err.strip() == "recipe_doa.sh: SHIFT must be 0 or 1, not 'yes'"
